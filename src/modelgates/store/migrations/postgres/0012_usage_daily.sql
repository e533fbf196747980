-- Usage history: one row per UTC day, user, key, model and provider (and the upstream
-- model that served), summed from the generation records. A trigger adds each record
-- as it is inserted, so the rollup is written in the transaction of the charge whose
-- record it is (modelgates_settle's, still one round trip) and cannot drift from the
-- records. Its row is locked last, after the user's and the key's (0010's lock order).
-- The purge of old records leaves these rows alone: history outlives the raw records.
-- Invariant: for every (day, key) the rollup's sums equal the records' (unpurged ones).

CREATE TABLE usage_daily (
    day               date NOT NULL,  -- UTC
    user_id           text NOT NULL,
    key_hash          text NOT NULL,
    model             text NOT NULL,
    provider          text NOT NULL,
    upstream_model    text NOT NULL,
    requests          bigint NOT NULL,
    cost_nanos        bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    reasoning_tokens  bigint NOT NULL,
    cached_tokens     bigint NOT NULL,
    PRIMARY KEY (user_id, day, key_hash, model, provider, upstream_model)
);

CREATE INDEX usage_daily_by_key ON usage_daily (key_hash, day);

CREATE FUNCTION modelgates_usage_daily_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_daily AS u (day, user_id, key_hash, model, provider, upstream_model,
                                  requests, cost_nanos, prompt_tokens, completion_tokens,
                                  reasoning_tokens, cached_tokens)
    VALUES ((NEW.created_at AT TIME ZONE 'UTC')::date, NEW.user_id, NEW.key_hash, NEW.model,
            NEW.provider, NEW.upstream_model, 1, NEW.cost_nanos, NEW.prompt_tokens,
            NEW.completion_tokens, NEW.reasoning_tokens, NEW.cached_tokens)
    ON CONFLICT (user_id, day, key_hash, model, provider, upstream_model) DO UPDATE SET
        requests = u.requests + 1,
        cost_nanos = u.cost_nanos + excluded.cost_nanos,
        prompt_tokens = u.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = u.completion_tokens + excluded.completion_tokens,
        reasoning_tokens = u.reasoning_tokens + excluded.reasoning_tokens,
        cached_tokens = u.cached_tokens + excluded.cached_tokens;
    RETURN NULL;
END
$$;

CREATE TRIGGER usage_daily_add_generation AFTER INSERT ON generations
    FOR EACH ROW EXECUTE FUNCTION modelgates_usage_daily_add();

-- The records kept so far.
INSERT INTO usage_daily (day, user_id, key_hash, model, provider, upstream_model, requests,
                         cost_nanos, prompt_tokens, completion_tokens, reasoning_tokens,
                         cached_tokens)
SELECT (created_at AT TIME ZONE 'UTC')::date, user_id, key_hash, model, provider,
       upstream_model, count(*), sum(cost_nanos), sum(prompt_tokens), sum(completion_tokens),
       sum(reasoning_tokens), sum(cached_tokens)
FROM generations
GROUP BY 1, 2, 3, 4, 5, 6;

-- A user's recent records, newest first (the usage page).
CREATE INDEX generations_by_user ON generations (user_id, created_at);
