-- The deletion guard: why a run held its removals, and the exact set held
-- for an admin's approval.
ALTER TABLE runs ADD COLUMN hold_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN pending BIGINT NOT NULL DEFAULT 0;

CREATE TABLE pending_removals (
    run_id      TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    anchor      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    action      TEXT NOT NULL,
    PRIMARY KEY (run_id, anchor)
);
