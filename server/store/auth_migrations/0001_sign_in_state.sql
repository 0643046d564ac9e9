-- What both web processes (the interview server and the audit console) must share about
-- signing in: the sessions they issued, and each username's failures, lock and last code.
CREATE TABLE sessions (
    id_hash      BLOB PRIMARY KEY,          -- SHA-256 of the id the cookie carries
    role         TEXT NOT NULL CHECK (role IN ('applicant', 'officer', 'auditor')),
    account_id   INTEGER,
    agency       TEXT,
    interview_id TEXT,
    created_at   REAL NOT NULL,
    last_seen_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_account ON sessions(account_id);
CREATE INDEX sessions_by_interview ON sessions(interview_id);

-- Keyed by username, known or not, so that an unknown name locks exactly like a real one.
CREATE TABLE sign_in_guards (
    username     TEXT PRIMARY KEY COLLATE NOCASE,
    failures     INTEGER NOT NULL DEFAULT 0,
    locked_until REAL,
    totp_step    INTEGER NOT NULL DEFAULT 0,
    updated_at   REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX sign_in_guards_by_update ON sign_in_guards(updated_at);
