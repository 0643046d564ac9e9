-- Indexes for the operator's console, whose counts read the whole backlog: applications
-- by status (decided and pending ones are counted from it alone) and by the time they
-- were imported (the burn-down), decisions by officer and by time (each officer's work,
-- decisions per hour). Each turns a scan of wide rows into one of a narrow index.
CREATE INDEX applications_by_status ON applications(status, id);
CREATE INDEX applications_by_created ON applications(created_at);
CREATE INDEX decisions_by_officer ON decisions(officer_id, decided_at);
CREATE INDEX decisions_by_time ON decisions(decided_at);
