-- Drift detection: ignore rules, scan reports (a new row only when the
-- result changed; a repeat of the same result moves `last_seen_at`), the
-- drifted objects of each report with their field diffs, and per-object
-- episodes that say when drift started and ended.

-- What never counts as drift, globally (cluster_id NULL) or for one cluster.
-- A rule targets objects by API group, kind, namespace and name ('*' and
-- NULL namespace match any) and ignores either a JSON pointer (and what is
-- under it) or the fields a field manager owns.
CREATE TABLE drift_ignore_rules (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster_id INTEGER REFERENCES clusters (id) ON DELETE CASCADE,
    api_group  TEXT    NOT NULL DEFAULT '*',
    kind       TEXT    NOT NULL DEFAULT '*',
    namespace  TEXT,
    name       TEXT    NOT NULL DEFAULT '*',
    pointer    TEXT,
    managed_by TEXT,
    created_at INTEGER NOT NULL,
    CHECK ((pointer IS NULL) <> (managed_by IS NULL))
) STRICT;

CREATE INDEX drift_ignore_rules_cluster ON drift_ignore_rules (cluster_id);

-- One row per distinct scan result of a cluster.
CREATE TABLE drift_reports (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster_id   INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    trigger      TEXT    NOT NULL CHECK (trigger IN ('schedule', 'sync', 'manual')),
    status       TEXT    NOT NULL CHECK (status IN ('in_sync', 'drifted', 'unknown')),
    -- the revision whose desired state was compared
    revision     TEXT,
    -- why the scan could not tell (status 'unknown')
    error        TEXT,
    in_sync      INTEGER NOT NULL DEFAULT 0,
    modified     INTEGER NOT NULL DEFAULT 0,
    missing      INTEGER NOT NULL DEFAULT 0,
    extra        INTEGER NOT NULL DEFAULT 0,
    unknown      INTEGER NOT NULL DEFAULT 0,
    -- SHA-256 of the result (status, error, revision, drifted objects and
    -- their diffs): equal results share one row
    fingerprint  TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    -- the last scan that found this same result
    last_seen_at INTEGER NOT NULL,
    scans        INTEGER NOT NULL DEFAULT 1 CHECK (scans >= 1),
    -- how long the last scan with this result took
    last_duration_ms INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX drift_reports_cluster ON drift_reports (cluster_id, id);

-- The objects of a report that are not in sync.
CREATE TABLE drift_objects (
    report_id   INTEGER NOT NULL REFERENCES drift_reports (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    api_version TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    namespace   TEXT    NOT NULL DEFAULT '',
    name        TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('modified', 'missing', 'extra', 'unknown')),
    -- a JSON array of {path, live, desired} (secret values already masked)
    diffs       TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(diffs) AND json_type(diffs) = 'array'),
    -- why the object could not be compared (state 'unknown')
    message     TEXT,
    -- a readable unified diff of the object, live against desired (secrets masked)
    unified     TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (report_id, position)
) STRICT;

-- When each object's drift started and ended (NULL: still drifted).
CREATE TABLE drift_episodes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster_id  INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
    api_version TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    namespace   TEXT    NOT NULL DEFAULT '',
    name        TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('modified', 'missing', 'extra', 'unknown')),
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER
) STRICT;

CREATE INDEX drift_episodes_cluster ON drift_episodes (cluster_id, id);
-- at most one open episode per object
CREATE UNIQUE INDEX drift_episodes_open ON drift_episodes (cluster_id, kind, namespace, name, api_version)
    WHERE ended_at IS NULL;
