-- A customer's own choices from their preferences page: the follow-ups (cadence ids,
-- ';'-separated) they turned off, and a pause of everything until a time.
ALTER TABLE contacts ADD COLUMN declined TEXT NOT NULL DEFAULT '';
ALTER TABLE contacts ADD COLUMN paused_until BIGINT;
