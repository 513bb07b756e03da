-- API tokens: every RPC acts for the account of its token. The secret is
-- kept only as a SHA-256.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX api_tokens_by_account ON api_tokens (account_id);
