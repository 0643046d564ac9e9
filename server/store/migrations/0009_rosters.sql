-- Rosters and appointments. Officers declare when they can interview (roster windows);
-- `schedule` books each appointment into officers' slots (slot holds) so that an
-- officer's slot holds at most one interview. An appointment is reserved before its
-- interview exists (interview_id NULL until then): a booking cut short keeps its slots
-- held rather than letting them be booked twice. Applications gain the language and time
-- zone their invitations and pages use (a NULL zone: the operator's default).
CREATE TABLE roster_windows (
    id         INTEGER PRIMARY KEY,
    officer_id INTEGER NOT NULL REFERENCES officers(account_id),
    starts_at  TEXT NOT NULL,
    ends_at    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX roster_windows_by_officer ON roster_windows(officer_id, starts_at);
CREATE INDEX roster_windows_by_start ON roster_windows(starts_at);

CREATE TABLE appointments (
    id             TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications(id),
    interview_id   TEXT UNIQUE REFERENCES interviews(id),
    mode           TEXT NOT NULL CHECK (mode IN ('joint', 'two_step')),
    starts_at      TEXT NOT NULL,
    ends_at        TEXT NOT NULL,
    origin         TEXT NOT NULL CHECK (origin IN ('schedule', 're_invite')),
    reschedules    INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    CHECK (ends_at > starts_at)
) WITHOUT ROWID;
CREATE INDEX appointments_by_application ON appointments(application_id);

CREATE TABLE slot_holds (
    appointment_id TEXT NOT NULL REFERENCES appointments(id),
    officer_id     INTEGER NOT NULL REFERENCES officers(account_id),
    agency         TEXT NOT NULL CHECK (agency IN ('CBSA', 'CBP')),
    starts_at      TEXT NOT NULL,
    ends_at        TEXT NOT NULL,
    PRIMARY KEY (appointment_id, officer_id),
    CHECK (ends_at > starts_at)
) WITHOUT ROWID;
CREATE INDEX slot_holds_by_officer ON slot_holds(officer_id, starts_at);
CREATE INDEX slot_holds_by_start ON slot_holds(starts_at);

-- What the no-show rule did with each missed interview; those missed before the rule
-- existed count as done, so that its first sweep does not act on old ones.
CREATE TABLE no_show_follow_ups (
    interview_id TEXT PRIMARY KEY REFERENCES interviews(id),
    outcome      TEXT NOT NULL CHECK (outcome IN ('re_invited', 'returned', 'left', 'before_rules')),
    at           TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO no_show_follow_ups (interview_id, outcome, at)
SELECT id, 'before_rules', updated_at FROM interviews WHERE phase = 'no_show';

ALTER TABLE applications ADD COLUMN language TEXT NOT NULL DEFAULT 'en'
    CHECK (language IN ('en', 'fr'));
ALTER TABLE applications ADD COLUMN time_zone TEXT;
