-- Applications, staff accounts, interviews, decisions, access log.
CREATE TABLE applications (
    id               TEXT PRIMARY KEY,
    program          TEXT NOT NULL CHECK (program IN ('NEXUS', 'FAST')),
    application_type TEXT NOT NULL CHECK (application_type IN ('new', 'renewal')),
    surname          TEXT NOT NULL,
    given_names      TEXT NOT NULL,
    date_of_birth    TEXT NOT NULL,
    citizenship      TEXT NOT NULL,
    email            TEXT NOT NULL,
    applied_on       TEXT NOT NULL,
    card_expiry      TEXT,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'scheduled', 'approved', 'denied', 'referred')),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CHECK ((application_type = 'renewal') = (card_expiry IS NOT NULL))
) WITHOUT ROWID;

CREATE TABLE application_status_history (
    id             INTEGER PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications(id),
    from_status    TEXT,
    to_status      TEXT NOT NULL,
    reason         TEXT NOT NULL,
    actor          TEXT NOT NULL,
    at             TEXT NOT NULL
);
CREATE INDEX application_status_history_by_application
    ON application_status_history(application_id, id);

CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name   TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('officer', 'auditor')),
    password_hash  TEXT NOT NULL,
    totp_secret    TEXT NOT NULL,
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    locked_until   TEXT,
    created_at     TEXT NOT NULL
);

CREATE TABLE officers (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id),
    agency     TEXT NOT NULL CHECK (agency IN ('CBSA', 'CBP')),
    country    TEXT NOT NULL CHECK (length(country) = 2),
    available  INTEGER NOT NULL DEFAULT 0 CHECK (available IN (0, 1))
);

CREATE TABLE auditors (
    account_id   INTEGER PRIMARY KEY REFERENCES accounts(id),
    organisation TEXT NOT NULL
);

CREATE TABLE interviews (
    id               TEXT PRIMARY KEY,
    application_id   TEXT NOT NULL REFERENCES applications(id),
    mode             TEXT NOT NULL CHECK (mode IN ('joint', 'two_step')),
    window_start     TEXT NOT NULL,
    window_end       TEXT NOT NULL,
    token_hash       BLOB NOT NULL UNIQUE,
    state            TEXT NOT NULL DEFAULT 'scheduled'
                     CHECK (state IN ('scheduled', 'in_progress', 'completed', 'cancelled')),
    cbsa_officer_id  INTEGER REFERENCES officers(account_id),
    cbp_officer_id   INTEGER REFERENCES officers(account_id),
    dob_failures     INTEGER NOT NULL DEFAULT 0,
    dob_confirmed_at TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CHECK (window_end > window_start)
);
CREATE INDEX interviews_by_application ON interviews(application_id);
CREATE INDEX interviews_by_state ON interviews(state, window_start);

CREATE TABLE decisions (
    interview_id TEXT NOT NULL REFERENCES interviews(id),
    agency       TEXT NOT NULL CHECK (agency IN ('CBSA', 'CBP')),
    verdict      TEXT NOT NULL CHECK (verdict IN ('approve', 'deny', 'refer')),
    reason_codes TEXT NOT NULL,
    notes        TEXT NOT NULL,
    officer_id   INTEGER NOT NULL REFERENCES officers(account_id),
    decided_at   TEXT NOT NULL,
    PRIMARY KEY (interview_id, agency)
) WITHOUT ROWID;

CREATE TABLE access_log (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    role    TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL,
    client  TEXT NOT NULL DEFAULT ''
);
