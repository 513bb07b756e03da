-- Sign-in attempts and failures, counted against the sign-in limits by
-- every gateway alike (a restart or a second replica does not reset or
-- double them). Kept for the longest limit window, then deleted.
CREATE TABLE sign_in_events (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    address     TEXT NOT NULL,
    failed      BOOLEAN NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX sign_in_events_by_account ON sign_in_events (account_id, at);
CREATE INDEX sign_in_events_by_address ON sign_in_events (account_id, address, at);
