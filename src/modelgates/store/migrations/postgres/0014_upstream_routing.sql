-- Upstream routing. The endpoints a routed request tried, the serving one last, as a
-- JSON list (NULL for a request that had one endpoint to try).
ALTER TABLE generations ADD COLUMN attempts TEXT;

-- The cool-down state of upstream endpoints ("provider:upstream_model"), shared by every
-- server process when no Redis is configured. A healthy endpoint has no row.
CREATE TABLE upstream_health (
    endpoint    TEXT PRIMARY KEY,
    failures    INTEGER NOT NULL DEFAULT 0,
    trips       INTEGER NOT NULL DEFAULT 0,
    open_until  DOUBLE PRECISION NOT NULL DEFAULT 0,
    probe_until DOUBLE PRECISION NOT NULL DEFAULT 0
);
