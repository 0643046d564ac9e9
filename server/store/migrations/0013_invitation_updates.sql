-- An interview's messages after a move or a cancellation: 'update' tells the applicant the
-- new time, 'cancellation' that it was cancelled (and takes the entry off their calendar).
-- An appointment may move more than once, and each move may need its own update and
-- reminder, so a message is unique per interview, kind and revision (the appointment's
-- move count when it was queued; 0 for the first invitation and reminder). SQLite changes
-- a CHECK or a UNIQUE only by rebuilding the table; every row keeps its id and values.
-- A sent message keeps its Message-ID: a bounce that comes back later (a delivery status
-- notification, RFC 3464) names it, and so marks the message it reports on.
CREATE TABLE invitations_new (
    id           INTEGER PRIMARY KEY,
    interview_id TEXT NOT NULL REFERENCES interviews(id),
    kind         TEXT NOT NULL
        CHECK (kind IN ('invitation', 'reminder', 'update', 'cancellation')),
    revision     INTEGER NOT NULL DEFAULT 0 CHECK (revision >= 0),
    status       TEXT NOT NULL
        CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'bounced', 'dropped')),
    recipient    TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    due_at       TEXT NOT NULL,
    reason       TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    sent_at      TEXT,
    message_id   TEXT,
    UNIQUE (interview_id, kind, revision)
);
INSERT INTO invitations_new (id, interview_id, kind, revision, status, recipient, attempts,
    due_at, reason, created_at, updated_at, sent_at)
SELECT id, interview_id, kind, 0, status, recipient, attempts, due_at, reason, created_at,
    updated_at, sent_at
FROM invitations;
DROP TABLE invitations;
ALTER TABLE invitations_new RENAME TO invitations;
CREATE INDEX invitations_due ON invitations(status, due_at);
CREATE UNIQUE INDEX invitations_by_message_id ON invitations(message_id)
    WHERE message_id IS NOT NULL;
