-- dripgate ledger, version 1 (PostgreSQL). Times are milliseconds since the Unix epoch.
-- No password and no password hash is ever stored here: only an HMAC fingerprint of the hash.
CREATE TABLE ledger_users (
    user_key          TEXT    NOT NULL PRIMARY KEY,
    state             TEXT    NOT NULL
        CHECK (state IN ('claimed', 'created', 'migrated', 'conflict', 'blocked_policy')),
    provider_user_id  TEXT,
    attempts          BIGINT  NOT NULL DEFAULT 0,
    last_error        TEXT,
    legacy_format     TEXT,
    hash_fingerprint  TEXT,
    lease_owner       TEXT,
    lease_expires_at  BIGINT  NOT NULL DEFAULT 0,
    epoch             BIGINT  NOT NULL DEFAULT 0,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    migrated_at       BIGINT
);
CREATE INDEX ledger_users_state ON ledger_users (state);
CREATE TABLE ledger_meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
