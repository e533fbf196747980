-- Per-key model allowlists: a JSON array of entries (model ids or "author/*"), or NULL
-- for every model. A code carries the list its minted key gets.
ALTER TABLE api_keys ADD COLUMN allowed_models TEXT;
ALTER TABLE auth_codes ADD COLUMN allowed_models TEXT;
