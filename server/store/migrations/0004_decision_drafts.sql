-- An officer's decision in the making (verdict, reason codes, notes), kept as they type so
-- that a reloaded console gives it back; deleted once their agency's decision is recorded.
CREATE TABLE decision_drafts (
    interview_id TEXT NOT NULL REFERENCES interviews(id),
    officer_id   INTEGER NOT NULL REFERENCES officers(account_id),
    agency       TEXT NOT NULL CHECK (agency IN ('CBSA', 'CBP')),
    verdict      TEXT CHECK (verdict IN ('approve', 'deny', 'refer')),
    reason_codes TEXT NOT NULL,
    notes        TEXT NOT NULL,
    saved_at     TEXT NOT NULL,
    PRIMARY KEY (interview_id, officer_id)
) WITHOUT ROWID;
