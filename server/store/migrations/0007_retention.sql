-- Retention: legal holds keep a session record past its retention period; a record whose
-- key material was destroyed (crypto-shredded) is listed once, with when and why.
CREATE TABLE legal_holds (
    interview_id TEXT PRIMARY KEY REFERENCES interviews(id),
    reason       TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    placed_by    TEXT NOT NULL,
    placed_at    TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE shredded_records (
    interview_id TEXT PRIMARY KEY REFERENCES interviews(id),
    reason       TEXT NOT NULL,
    files        INTEGER NOT NULL,
    shredded_at  TEXT NOT NULL
) WITHOUT ROWID;
