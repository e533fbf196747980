-- Upstream routing: the endpoints a routed request tried, the serving one last, as a
-- JSON list (NULL for a request that had one endpoint to try).
ALTER TABLE generations ADD COLUMN attempts TEXT;
