-- An application's language may be unknown (NULL): its invitations are then written in
-- English and French, and its pages follow the browser. SQLite changes a column's NOT NULL
-- and CHECK only by rebuilding the table; every other column, constraint and row stays as
-- it was, and no writer leaves the language out, so it has no default. Rows imported
-- before keep their value: an 'en' the old default gave cannot be told apart from an 'en'
-- the file gave, so none is guessed to be unknown (importing the file again refreshes it).
CREATE TABLE applications_new (
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
    language         TEXT CHECK (language IS NULL OR language IN ('en', 'fr')),
    time_zone        TEXT,
    CHECK ((application_type = 'renewal') = (card_expiry IS NOT NULL))
) WITHOUT ROWID;
INSERT INTO applications_new (id, program, application_type, surname, given_names,
    date_of_birth, citizenship, email, applied_on, card_expiry, status, created_at,
    updated_at, language, time_zone)
SELECT id, program, application_type, surname, given_names, date_of_birth, citizenship,
    email, applied_on, card_expiry, status, created_at, updated_at, language, time_zone
FROM applications;
DROP TABLE applications;
ALTER TABLE applications_new RENAME TO applications;
