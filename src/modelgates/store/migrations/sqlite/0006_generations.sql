-- Generation records replace the charge ledger; sub-keys and the codes' creators.
-- Invariant: api_keys.usage_nanos == sum(generations.cost_nanos) for the key.

ALTER TABLE api_keys ADD COLUMN parent_key_hash TEXT REFERENCES api_keys (hash);

CREATE INDEX api_keys_by_parent ON api_keys (parent_key_hash)
    WHERE parent_key_hash IS NOT NULL;

ALTER TABLE auth_codes ADD COLUMN creator_key_hash TEXT;

CREATE INDEX auth_codes_pending_by_creator ON auth_codes (creator_key_hash)
    WHERE creator_key_hash IS NOT NULL AND used_at IS NULL;

-- A sub-key's reservations also count against the key that minted it.
ALTER TABLE reservations ADD COLUMN parent_key_hash TEXT;

CREATE INDEX reservations_by_parent ON reservations (parent_key_hash, expires_at)
    WHERE parent_key_hash IS NOT NULL;

CREATE TABLE generations (
    id                         TEXT PRIMARY KEY,
    key_hash                   TEXT NOT NULL REFERENCES api_keys (hash),
    user_id                    TEXT NOT NULL,
    app_id                     INTEGER,
    model                      TEXT NOT NULL,
    provider                   TEXT NOT NULL,
    upstream_model             TEXT NOT NULL,
    api_type                   TEXT NOT NULL,
    created_at                 TEXT NOT NULL,
    cost_nanos                 INTEGER NOT NULL CHECK (cost_nanos >= 0),
    reserved_nanos             INTEGER NOT NULL CHECK (reserved_nanos >= 0),
    prompt_tokens              INTEGER NOT NULL,
    completion_tokens          INTEGER NOT NULL,
    reasoning_tokens           INTEGER NOT NULL,
    cached_tokens              INTEGER NOT NULL,
    cache_write_tokens         INTEGER NOT NULL,
    prompt_cost_nanos          INTEGER NOT NULL,
    completion_cost_nanos      INTEGER NOT NULL,
    request_cost_nanos         INTEGER NOT NULL,
    estimated                  INTEGER NOT NULL,
    usage_exceeded_reservation INTEGER NOT NULL,
    streamed                   INTEGER NOT NULL,
    cancelled                  INTEGER NOT NULL,
    upstream_id                TEXT,
    finish_reason              TEXT,
    native_finish_reason       TEXT,
    native_tokens_prompt       INTEGER,
    native_tokens_completion   INTEGER,
    native_tokens_reasoning    INTEGER,
    native_tokens_cached       INTEGER,
    latency_ms                 INTEGER,
    generation_time_ms         INTEGER,
    origin                     TEXT,
    referer                    TEXT,
    user_agent                 TEXT,
    external_user              TEXT,
    session_id                 TEXT
);

CREATE INDEX generations_by_key ON generations (key_hash, created_at);
CREATE INDEX generations_by_time ON generations (created_at);

INSERT INTO generations (
    id, key_hash, user_id, app_id, model, provider, upstream_model, api_type, created_at,
    cost_nanos, reserved_nanos, prompt_tokens, completion_tokens, reasoning_tokens,
    cached_tokens, cache_write_tokens, prompt_cost_nanos, completion_cost_nanos,
    request_cost_nanos, estimated, usage_exceeded_reservation, streamed, cancelled
)
SELECT c.id, c.key_hash, k.user_id, k.app_id, c.model, '', '', 'chat', c.created_at,
       c.cost_nanos, c.cost_nanos, c.prompt_tokens, c.completion_tokens, 0, 0, 0, 0, 0, 0,
       c.estimated, 0, 0, 0
FROM charges c JOIN api_keys k ON k.hash = c.key_hash;

DROP TABLE charges;
