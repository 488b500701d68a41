-- GitOps sync: the desired-state repository, the revisions Pilothouse acted
-- on, what happened to the repository, each cluster's sync mode and state,
-- every sync with its per-object results, and the inventory of what was
-- applied to each cluster (the set prune works from).
--
-- Same conventions as 0001: unix milliseconds, lowercase checked enums,
-- STRICT tables, secrets only as AEAD ciphertexts with the id of their key.

-- The desired-state repository: exactly one row once configured.
CREATE TABLE repository (
    id                          INTEGER PRIMARY KEY CHECK (id = 1),
    url                         TEXT    NOT NULL,
    branch                      TEXT    NOT NULL,
    -- sub-path inside the repository holding manifests/, overlays/, gitops/
    path                        TEXT    NOT NULL DEFAULT '',
    poll_interval_secs          INTEGER NOT NULL CHECK (poll_interval_secs > 0),
    credentials_kind            TEXT    NOT NULL DEFAULT 'none'
                                        CHECK (credentials_kind IN ('none', 'token', 'ssh_key')),
    credentials_key_id          TEXT,
    credentials_nonce           BLOB,
    credentials_ciphertext      BLOB,
    webhook_secret_key_id       TEXT,
    webhook_secret_nonce        BLOB,
    webhook_secret_ciphertext   BLOB,
    -- the branch head at the last successful fetch
    head_revision               TEXT,
    last_fetch_at               INTEGER,
    last_fetch_error            TEXT,
    consecutive_fetch_failures  INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_fetch_failures >= 0),
    updated_at                  INTEGER NOT NULL,
    CHECK ((credentials_kind = 'none') = (credentials_ciphertext IS NULL))
) STRICT;

-- Every commit Pilothouse fetched as a branch head (and so may act on).
CREATE TABLE revisions (
    id           TEXT    PRIMARY KEY,
    author       TEXT    NOT NULL,
    summary      TEXT    NOT NULL,
    committed_at INTEGER NOT NULL,
    seen_at      INTEGER NOT NULL
) STRICT;

-- What happened to the repository: fetches of a new head, failed fetches,
-- webhook deliveries, pushes. Trimmed to the most recent rows by the store.
CREATE TABLE repository_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('fetched', 'fetch_failed', 'webhook', 'pushed', 'push_failed')),
    revision TEXT,
    message  TEXT    NOT NULL
) STRICT;

-- Each cluster's sync mode and the state of its syncs.
ALTER TABLE clusters ADD COLUMN sync_mode TEXT NOT NULL DEFAULT 'auto'
    CHECK (sync_mode IN ('manual', 'auto', 'self_heal'));
-- the revision of the last successful sync: the one in force on the cluster
ALTER TABLE clusters ADD COLUMN synced_revision TEXT;
ALTER TABLE clusters ADD COLUMN sync_status TEXT NOT NULL DEFAULT 'never'
    CHECK (sync_status IN ('never', 'succeeded', 'failed'));
-- the revision the last finished sync worked on, succeeded or not
ALTER TABLE clusters ADD COLUMN last_sync_revision TEXT;
ALTER TABLE clusters ADD COLUMN last_sync_id INTEGER;
ALTER TABLE clusters ADD COLUMN last_sync_at INTEGER;
ALTER TABLE clusters ADD COLUMN sync_error TEXT;
-- failed syncs in a row (drives the retry backoff) and when to retry
ALTER TABLE clusters ADD COLUMN sync_failures INTEGER NOT NULL DEFAULT 0 CHECK (sync_failures >= 0);
ALTER TABLE clusters ADD COLUMN next_sync_at INTEGER;
ALTER TABLE clusters ADD COLUMN health TEXT NOT NULL DEFAULT 'unknown'
    CHECK (health IN ('healthy', 'progressing', 'degraded', 'missing', 'unknown'));
ALTER TABLE clusters ADD COLUMN health_checked_at INTEGER;

-- One row per sync of one cluster.
CREATE TABLE syncs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster_id  INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    trigger     TEXT    NOT NULL CHECK (trigger IN ('manual', 'auto', 'self_heal', 'retry')),
    status      TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    -- the revision synced; known once the sync starts
    revision    TEXT,
    error       TEXT,
    health      TEXT    CHECK (health IN ('healthy', 'progressing', 'degraded', 'missing', 'unknown')),
    queued_at   INTEGER NOT NULL,
    started_at  INTEGER,
    finished_at INTEGER
) STRICT;

CREATE INDEX syncs_cluster ON syncs (cluster_id, id);
-- at most one queued sync per cluster: queuing again returns it
CREATE UNIQUE INDEX syncs_one_queued ON syncs (cluster_id) WHERE status = 'queued';

-- The result of a sync for each object, in the order they were applied
-- (then pruned).
CREATE TABLE sync_objects (
    sync_id        INTEGER NOT NULL REFERENCES syncs (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    api_version    TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    namespace      TEXT    NOT NULL DEFAULT '',
    name           TEXT    NOT NULL,
    action         TEXT    NOT NULL
                           CHECK (action IN ('created', 'configured', 'unchanged', 'pruned', 'prune_skipped', 'failed')),
    message        TEXT,
    health         TEXT    CHECK (health IN ('healthy', 'progressing', 'degraded', 'missing', 'unknown')),
    health_message TEXT,
    PRIMARY KEY (sync_id, position)
) STRICT;

-- Every object Pilothouse applied to a cluster and still owns: what prune
-- compares the next desired set with. Keys are version-independent (API
-- group, kind, namespace — '' for cluster-scoped — and name).
CREATE TABLE inventory (
    cluster_id       INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    api_group        TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    namespace        TEXT    NOT NULL DEFAULT '',
    name             TEXT    NOT NULL,
    api_version      TEXT    NOT NULL,
    manifest_sha256  TEXT    NOT NULL,
    resource_version TEXT    NOT NULL,
    uid              TEXT    NOT NULL,
    health           TEXT    CHECK (health IN ('healthy', 'progressing', 'degraded', 'missing', 'unknown')),
    health_message   TEXT,
    position         INTEGER NOT NULL,
    PRIMARY KEY (cluster_id, api_group, kind, namespace, name)
) STRICT;
