-- Pod and node incidents: one row per group (cluster, namespace, owning
-- workload, container, reason). A relapse after resolution reopens the same
-- row; its count and reopen count keep adding up.

CREATE TABLE incidents (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster_id     INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    -- '' for node incidents
    namespace      TEXT    NOT NULL DEFAULT '',
    workload_kind  TEXT    NOT NULL,
    workload_name  TEXT    NOT NULL,
    -- '' when the incident is not about one container
    container      TEXT    NOT NULL DEFAULT '',
    reason         TEXT    NOT NULL,
    severity       TEXT    NOT NULL CHECK (severity IN ('warning', 'critical')),
    status         TEXT    NOT NULL CHECK (status IN ('open', 'resolved', 'unknown')),
    count          INTEGER NOT NULL CHECK (count >= 0),
    reopen_count   INTEGER NOT NULL DEFAULT 0 CHECK (reopen_count >= 0),
    first_seen_at  INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    resolved_at    INTEGER,
    last_exit_code INTEGER,
    message        TEXT,
    image          TEXT,
    -- the Git revision last synced to the cluster when the incident opened
    revision       TEXT,
    -- JSON arrays of the affected pods and nodes
    pods           TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(pods) AND json_type(pods) = 'array'),
    nodes          TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(nodes) AND json_type(nodes) = 'array'),
    -- captured once, at the first occurrence: the container's last log lines
    -- and the pod's recent events (a JSON array)
    logs           TEXT,
    events         TEXT    CHECK (events IS NULL OR json_valid(events)),
    acked_at       INTEGER,
    acked_by       TEXT,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX incidents_key
    ON incidents (cluster_id, namespace, workload_kind, workload_name, container, reason);
CREATE INDEX incidents_last_seen ON incidents (last_seen_at DESC, id DESC);
CREATE INDEX incidents_status ON incidents (status, resolved_at);
