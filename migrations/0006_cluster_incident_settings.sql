-- Per-cluster incident detection settings (namespaces, pod name patterns,
-- containers and reasons to ignore, the pending threshold), merged over the
-- service-wide ones. NULL: the service-wide settings alone.

ALTER TABLE clusters ADD COLUMN incident_settings TEXT
    CHECK (incident_settings IS NULL OR (json_valid(incident_settings) AND json_type(incident_settings) = 'object'));
