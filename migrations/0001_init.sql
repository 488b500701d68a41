-- Registered clusters and API tokens.
--
-- Timestamps are unix milliseconds (INTEGER). Enumerations are lowercase TEXT
-- checked against their allowed values. Tables are STRICT so a wrong type is
-- an error instead of a silent conversion.

-- One row per registered cluster. Its kubeconfig is stored only as an AEAD
-- ciphertext sealed with the master key (which never enters the database);
-- `credentials_key_id` names the key that sealed it, for key rotation.
CREATE TABLE clusters (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    name                   TEXT    NOT NULL,
    cloud                  TEXT    NOT NULL CHECK (cloud IN ('aks', 'gke', 'eks', 'other')),
    cloud_source           TEXT    NOT NULL CHECK (cloud_source IN ('declared', 'detected', 'default')),
    server_url             TEXT    NOT NULL,
    context                TEXT    NOT NULL,
    -- a JSON object of string keys to string values
    labels                 TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(labels) AND json_type(labels) = 'object'),
    kubernetes_version     TEXT,
    credentials_key_id     TEXT    NOT NULL,
    credentials_nonce      BLOB    NOT NULL,
    credentials_ciphertext BLOB    NOT NULL,
    reachability           TEXT    NOT NULL DEFAULT 'unknown' CHECK (reachability IN ('unknown', 'reachable', 'unreachable')),
    last_error             TEXT,
    last_check_at          INTEGER,
    -- NULL: never checked, due now
    next_check_at          INTEGER,
    consecutive_failures   INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
) STRICT;

-- Lookups by name and keyset pagination in name order.
CREATE UNIQUE INDEX clusters_name ON clusters (name);
-- The background connectivity checker picks the clusters that are due.
CREATE INDEX clusters_next_check_at ON clusters (next_check_at);

-- API bearer tokens. Only the SHA-256 of the secret is stored; the secret is
-- shown once, when the token is created. Revoked tokens are kept (with
-- `revoked_at`) so their ids are never reused.
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    scope         TEXT    NOT NULL CHECK (scope IN ('read', 'write')),
    secret_sha256 BLOB    NOT NULL CHECK (length(secret_sha256) = 32),
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
) STRICT;

CREATE UNIQUE INDEX api_tokens_secret_sha256 ON api_tokens (secret_sha256);
