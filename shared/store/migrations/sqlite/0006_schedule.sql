-- Scheduled syncs: the account's time zone and default times, and the slot
-- a scheduled run belongs to (one run per integration and slot, even when
-- a job is replayed after the bus's dedupe window).
ALTER TABLE accounts ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE accounts ADD COLUMN schedule TEXT NOT NULL DEFAULT '08:00,13:00,23:00';
ALTER TABLE runs ADD COLUMN slot TEXT;
CREATE UNIQUE INDEX runs_one_per_slot ON runs (integration_id, slot);
