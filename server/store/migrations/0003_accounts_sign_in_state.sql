-- Failures, locks and used codes moved to the auth store (shared with the audit console);
-- an operator can disable an account; TOTP secrets are sealed from now on (the server
-- seals the ones stored before at its next start).
ALTER TABLE accounts DROP COLUMN totp_last_step;
ALTER TABLE accounts DROP COLUMN failed_logins;
ALTER TABLE accounts DROP COLUMN locked_until;
ALTER TABLE accounts ADD COLUMN disabled_at TEXT;
