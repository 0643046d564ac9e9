-- Operators sign in to their console: sessions accept their role. SQLite changes a CHECK
-- only by rebuilding the table.
CREATE TABLE sessions_new (
    id_hash      BLOB PRIMARY KEY,          -- SHA-256 of the id the cookie carries
    role         TEXT NOT NULL CHECK (role IN ('applicant', 'officer', 'auditor', 'operator')),
    account_id   INTEGER,
    agency       TEXT,
    interview_id TEXT,
    created_at   REAL NOT NULL,
    last_seen_at REAL NOT NULL
) WITHOUT ROWID;
INSERT INTO sessions_new SELECT id_hash, role, account_id, agency, interview_id, created_at,
    last_seen_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_by_account ON sessions(account_id);
CREATE INDEX sessions_by_interview ON sessions(interview_id);
