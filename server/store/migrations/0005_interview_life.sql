-- The interview's life (server/lifecycle.py) as the store keeps it: `life` is the whole
-- state as JSON; `phase` and `step` are copies for queries, written with it. The state
-- column gains the ends that are not a decision: a no-show and an interruption.
CREATE TABLE interviews_new (
    id               TEXT PRIMARY KEY,
    application_id   TEXT NOT NULL REFERENCES applications(id),
    mode             TEXT NOT NULL CHECK (mode IN ('joint', 'two_step')),
    window_start     TEXT NOT NULL,
    window_end       TEXT NOT NULL,
    token_hash       BLOB NOT NULL UNIQUE,
    state            TEXT NOT NULL DEFAULT 'scheduled'
                     CHECK (state IN ('scheduled', 'in_progress', 'completed', 'cancelled',
                                      'no_show', 'interrupted')),
    cbsa_officer_id  INTEGER REFERENCES officers(account_id),
    cbp_officer_id   INTEGER REFERENCES officers(account_id),
    dob_failures     INTEGER NOT NULL DEFAULT 0,
    dob_confirmed_at TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    life             TEXT,
    phase            TEXT NOT NULL DEFAULT 'scheduled'
                     CHECK (phase IN ('scheduled', 'waiting', 'in_call', 'awaiting_decisions',
                                      'closed', 'cancelled', 'no_show', 'interrupted')),
    step             TEXT CHECK (step IN ('joint', 'CBSA', 'CBP')),
    call_ended_at    TEXT,
    CHECK (window_end > window_start)
);
INSERT INTO interviews_new (id, application_id, mode, window_start, window_end, token_hash,
    state, cbsa_officer_id, cbp_officer_id, dob_failures, dob_confirmed_at, created_at,
    updated_at, phase)
SELECT id, application_id, mode, window_start, window_end, token_hash, state,
    cbsa_officer_id, cbp_officer_id, dob_failures, dob_confirmed_at, created_at, updated_at,
    CASE state WHEN 'completed' THEN 'closed' WHEN 'cancelled' THEN 'cancelled'
               ELSE 'scheduled' END
FROM interviews;
DROP TABLE interviews;
ALTER TABLE interviews_new RENAME TO interviews;
CREATE INDEX interviews_by_application ON interviews(application_id);
CREATE INDEX interviews_by_state ON interviews(state, window_start);
CREATE INDEX interviews_by_phase ON interviews(phase, window_start);
