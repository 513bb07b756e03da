CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE integrations (
    id                   TEXT PRIMARY KEY,
    account_id           TEXT NOT NULL REFERENCES accounts (id),
    name                 TEXT NOT NULL,
    settings             TEXT NOT NULL,
    password_key_id      TEXT,
    password_nonce       BYTEA,
    password_ciphertext  BYTEA,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL,
    integration_id  TEXT NOT NULL,
    state           TEXT NOT NULL,
    trigger         TEXT NOT NULL,
    attempt         BIGINT NOT NULL DEFAULT 0,
    host            TEXT NOT NULL DEFAULT '',
    error           TEXT NOT NULL DEFAULT '',
    warnings        TEXT NOT NULL DEFAULT '[]',
    collected       BIGINT NOT NULL DEFAULT 0,
    added           BIGINT NOT NULL DEFAULT 0,
    updated         BIGINT NOT NULL DEFAULT 0,
    removed         BIGINT NOT NULL DEFAULT 0,
    unchanged       BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT
);
CREATE INDEX runs_by_integration ON runs (account_id, integration_id, created_at);

CREATE TABLE staged_batches (
    run_id    TEXT NOT NULL,
    attempt   BIGINT NOT NULL,
    sequence  BIGINT NOT NULL,
    entries   BIGINT NOT NULL,
    payload   BYTEA NOT NULL,
    PRIMARY KEY (run_id, attempt, sequence)
);

CREATE TABLE objects (
    account_id       TEXT NOT NULL,
    anchor           TEXT NOT NULL,
    integration_id   TEXT NOT NULL,
    kind             TEXT NOT NULL,
    dn               TEXT NOT NULL,
    display_name     TEXT NOT NULL,
    primary_address  TEXT,
    disabled         BOOLEAN NOT NULL,
    managed          BOOLEAN NOT NULL,
    record           TEXT NOT NULL,
    content_hash     TEXT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (account_id, anchor)
);
CREATE INDEX objects_by_integration ON objects (account_id, integration_id);
CREATE INDEX objects_by_kind ON objects (account_id, kind, display_name);

CREATE TABLE addresses (
    account_id  TEXT NOT NULL,
    address     TEXT NOT NULL,
    anchor      TEXT NOT NULL,
    is_primary  BOOLEAN NOT NULL,
    origin      TEXT NOT NULL,
    PRIMARY KEY (account_id, address)
);
CREATE INDEX addresses_by_anchor ON addresses (account_id, anchor);

CREATE TABLE members (
    account_id     TEXT NOT NULL,
    group_anchor   TEXT NOT NULL,
    member_anchor  TEXT NOT NULL,
    PRIMARY KEY (account_id, group_anchor, member_anchor)
);
CREATE INDEX members_by_member ON members (account_id, member_anchor);
