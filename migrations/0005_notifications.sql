-- Incident notifications, after Alertmanager: receivers (where to send, with
-- their configuration sealed), routes (which incidents go to which receiver,
-- grouped and throttled how), silences (which incidents to keep quiet, and
-- until when), the state of each notification group, and an outbox of
-- deliveries. Group states and new outbox rows are written in one
-- transaction, so a restart neither loses nor repeats a notification.

-- Where notifications go. The configuration (webhook URLs, tokens, SMTP
-- credentials) is JSON sealed with the master key under the context
-- `receiver:NAME`, in the same three columns as a cluster's kubeconfig.
CREATE TABLE receivers (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('slack', 'webhook', 'email')),
    config_key_id     TEXT    NOT NULL,
    config_nonce      BLOB    NOT NULL,
    config_ciphertext BLOB    NOT NULL,
    -- a JSON description without secrets (e.g. the channel), shown by the API
    summary           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(summary)),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX receivers_name ON receivers (name);

-- Which incidents go to which receiver, evaluated in (position, id) order.
-- A receiver cannot be deleted while a route sends to it.
CREATE TABLE routes (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    position           INTEGER NOT NULL,
    receiver_id        INTEGER NOT NULL REFERENCES receivers (id) ON DELETE RESTRICT,
    -- JSON array of label matchers (interpreted by the notifier)
    matchers           TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(matchers) AND json_type(matchers) = 'array'),
    -- JSON array of the label names incidents are grouped by
    group_by           TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(group_by) AND json_type(group_by) = 'array'),
    -- wait before a new group's first notification
    group_wait_ms      INTEGER NOT NULL CHECK (group_wait_ms >= 0),
    -- wait before notifying about changes of a group already notified
    group_interval_ms  INTEGER NOT NULL CHECK (group_interval_ms > 0),
    -- wait before repeating an unchanged notification
    repeat_interval_ms INTEGER NOT NULL CHECK (repeat_interval_ms > 0),
    send_resolved      INTEGER NOT NULL DEFAULT 1 CHECK (send_resolved IN (0, 1)),
    -- keep evaluating the next routes after this one matched
    continue_matching  INTEGER NOT NULL DEFAULT 0 CHECK (continue_matching IN (0, 1)),
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE INDEX routes_position ON routes (position, id);
-- Refusing to delete a receiver that a route uses looks routes up by receiver.
CREATE INDEX routes_receiver ON routes (receiver_id);

-- Incidents matching a silence are not notified while it is active:
-- starts_at <= now < ends_at and not expired. Expiring one ends it at once;
-- an expired silence that had not started yet is empty (ends_at = starts_at).
CREATE TABLE silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- JSON array of label matchers (interpreted by the notifier)
    matchers   TEXT    NOT NULL CHECK (json_valid(matchers) AND json_type(matchers) = 'array'),
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    author     TEXT    NOT NULL,
    comment    TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expired_at INTEGER,
    CHECK (ends_at > starts_at OR (expired_at IS NOT NULL AND ends_at = starts_at))
) STRICT;

CREATE INDEX silences_ends_at ON silences (ends_at);

-- The silence an incident is muted by (NULL: not silenced); purging a
-- silence unmutes its incidents.
ALTER TABLE incidents ADD COLUMN silenced_by INTEGER REFERENCES silences (id) ON DELETE SET NULL;

CREATE INDEX incidents_silenced_by ON incidents (silenced_by);

-- The notifier's state of each group of a route (what was last sent, when
-- the next flush is due), opaque JSON to the store.
CREATE TABLE notification_groups (
    route_id   INTEGER NOT NULL REFERENCES routes (id) ON DELETE CASCADE,
    group_key  TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (json_valid(state)),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (route_id, group_key)
) STRICT;

-- Notifications to deliver, delivered, or given up on. A pending row has
-- neither delivered_at nor failed_at and is due at next_attempt_at.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver_id     INTEGER NOT NULL REFERENCES receivers (id) ON DELETE CASCADE,
    -- the route that produced it (NULL once that route is deleted)
    route_id        INTEGER REFERENCES routes (id) ON DELETE SET NULL,
    group_key       TEXT    NOT NULL,
    -- the notification, rendered by the notifier (JSON)
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    -- when delivery was given up
    failed_at       INTEGER,
    last_error      TEXT,
    CHECK (delivered_at IS NULL OR failed_at IS NULL)
) STRICT;

-- The delivery worker picks the pending rows that are due.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
-- Listing a receiver's deliveries, newest first (and deleting a receiver's).
CREATE INDEX outbox_receiver ON outbox (receiver_id, id);
-- Deleting a route clears route_id of its deliveries.
CREATE INDEX outbox_route ON outbox (route_id);
