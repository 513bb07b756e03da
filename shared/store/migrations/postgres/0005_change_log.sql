-- What each run did (or, previewed, would do) to each object, and why.
ALTER TABLE pending_removals ADD COLUMN reason TEXT NOT NULL DEFAULT '';

CREATE TABLE change_log (
    run_id      TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    sequence    BIGINT NOT NULL,
    anchor      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    dn          TEXT NOT NULL,
    operation   TEXT NOT NULL,
    fields      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (run_id, sequence)
);
CREATE INDEX change_log_by_object ON change_log (account_id, anchor, at);
