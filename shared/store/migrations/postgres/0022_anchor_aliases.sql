-- Returning users: the objectGUID of a new directory object that adopted
-- a kept unmanaged account (same primary address), and that account's
-- anchor, its id, which stays. Runs read the directory's objectGUIDs
-- through this table.
CREATE TABLE anchor_aliases (
    account_id     TEXT NOT NULL,
    source_anchor  TEXT NOT NULL,
    anchor         TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (account_id, source_anchor)
);
-- The unmanaged users a new one may adopt, by primary address.
CREATE INDEX objects_unmanaged_users ON objects (account_id, primary_address)
    WHERE NOT managed AND kind = 'user';
