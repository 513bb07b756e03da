-- Delta sync. A run reads the whole Root DN (full) or what changed since
-- the integration's cursor (delta); a delta that could not read a delta
-- ran in full and says why. A cursor is where the last applied run left
-- a directory's change stream, per domain controller: written in the
-- transaction that applies the run.
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'full';
ALTER TABLE runs ADD COLUMN full_reason TEXT NOT NULL DEFAULT '';
CREATE TABLE sync_cursors (
    account_id      TEXT NOT NULL,
    integration_id  TEXT NOT NULL,
    source          TEXT NOT NULL,
    server          TEXT NOT NULL,
    value           BYTEA NOT NULL,
    run_id          TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (integration_id, source, server)
);
