-- Admin console sessions, opened with an API token. The secret is kept
-- only as a SHA-256; a session ends at expires_at, on sign-out, or when
-- its token is revoked.
CREATE TABLE console_sessions (
    id           TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL,
    account_id   TEXT NOT NULL,
    token_id     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER
);
CREATE INDEX console_sessions_by_token ON console_sessions (token_id);
