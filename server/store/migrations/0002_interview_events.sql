-- What happened in each interview room: joins, drops, rejoins, leaves, the end.
CREATE TABLE interview_events (
    id           INTEGER PRIMARY KEY,
    interview_id TEXT NOT NULL REFERENCES interviews(id),
    at           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    seat         TEXT,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX interview_events_by_interview ON interview_events(interview_id, id);
