-- Invitation links and the e-mail outbox. Each message carries a link of its own, so an
-- interview has many links; only their SHA-256 hashes are kept. An interview's first link
-- stays in interviews.token_hash as well (older code reads it); every link, that one
-- included, is in interview_links, which the link lookup reads.
CREATE TABLE interview_links (
    token_hash   BLOB PRIMARY KEY,
    interview_id TEXT NOT NULL REFERENCES interviews(id),
    created_at   TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX interview_links_by_interview ON interview_links(interview_id);
INSERT INTO interview_links (token_hash, interview_id, created_at)
SELECT token_hash, id, created_at FROM interviews;

-- One row per message to send: the invitation and its reminder. The message itself is
-- not stored: it is rendered, with a freshly minted link, when it is sent.
CREATE TABLE invitations (
    id           INTEGER PRIMARY KEY,
    interview_id TEXT NOT NULL REFERENCES interviews(id),
    kind         TEXT NOT NULL CHECK (kind IN ('invitation', 'reminder')),
    status       TEXT NOT NULL
        CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'bounced', 'dropped')),
    recipient    TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    due_at       TEXT NOT NULL,
    reason       TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    sent_at      TEXT,
    UNIQUE (interview_id, kind)
);
CREATE INDEX invitations_due ON invitations(status, due_at);
