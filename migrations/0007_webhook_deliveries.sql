-- Git webhook deliveries already accepted (GitHub's X-GitHub-Delivery), so a
-- replayed delivery is refused; rows older than the replay window are purged
-- when a new delivery is recorded.
CREATE TABLE webhook_deliveries (
    delivery_id TEXT PRIMARY KEY NOT NULL,
    seen_at INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_deliveries_seen_at ON webhook_deliveries (seen_at);
