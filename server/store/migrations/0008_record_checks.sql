-- The server's own check of each closed session record (signatures, hash chain, segments,
-- its listing among the closed sessions): the last outcome, for the operator's console.
CREATE TABLE record_checks (
    interview_id TEXT PRIMARY KEY,
    checked_at   TEXT NOT NULL,
    ok           INTEGER NOT NULL CHECK (ok IN (0, 1)),
    problems     TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
