-- Operators sign in to the web app (their console) like officers and auditors: the role
-- column accepts them. SQLite changes a CHECK only by rebuilding the table.
CREATE TABLE accounts_new (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name   TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('officer', 'auditor', 'operator')),
    password_hash  TEXT NOT NULL,
    totp_secret    TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    disabled_at    TEXT
);
INSERT INTO accounts_new (id, username, display_name, role, password_hash, totp_secret,
    created_at, disabled_at)
SELECT id, username, display_name, role, password_hash, totp_secret, created_at, disabled_at
FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_new RENAME TO accounts;
