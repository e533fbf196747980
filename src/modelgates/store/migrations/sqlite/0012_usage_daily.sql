-- Usage history: one row per UTC day, user, key, model and provider (and the upstream
-- model that served), summed from the generation records. A trigger adds each record
-- as it is inserted, so the rollup is written in the transaction of the charge whose
-- record it is (the settlement's) and cannot drift from the records.
-- The purge of old records leaves these rows alone: history outlives the raw records.
-- Invariant: for every (day, key) the rollup's sums equal the records' (unpurged ones).

CREATE TABLE usage_daily (
    day               TEXT NOT NULL,  -- YYYY-MM-DD, UTC
    user_id           TEXT NOT NULL,
    key_hash          TEXT NOT NULL,
    model             TEXT NOT NULL,
    provider          TEXT NOT NULL,
    upstream_model    TEXT NOT NULL,
    requests          INTEGER NOT NULL,
    cost_nanos        INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    reasoning_tokens  INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    PRIMARY KEY (user_id, day, key_hash, model, provider, upstream_model)
) WITHOUT ROWID;

CREATE INDEX usage_daily_by_key ON usage_daily (key_hash, day);

CREATE TRIGGER usage_daily_add_generation AFTER INSERT ON generations
BEGIN
    INSERT INTO usage_daily (day, user_id, key_hash, model, provider, upstream_model,
                             requests, cost_nanos, prompt_tokens, completion_tokens,
                             reasoning_tokens, cached_tokens)
    VALUES (substr(NEW.created_at, 1, 10), NEW.user_id, NEW.key_hash, NEW.model,
            NEW.provider, NEW.upstream_model, 1, NEW.cost_nanos, NEW.prompt_tokens,
            NEW.completion_tokens, NEW.reasoning_tokens, NEW.cached_tokens)
    ON CONFLICT (user_id, day, key_hash, model, provider, upstream_model) DO UPDATE SET
        requests = requests + 1,
        cost_nanos = cost_nanos + excluded.cost_nanos,
        prompt_tokens = prompt_tokens + excluded.prompt_tokens,
        completion_tokens = completion_tokens + excluded.completion_tokens,
        reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,
        cached_tokens = cached_tokens + excluded.cached_tokens;
END;

-- The records kept so far.
INSERT INTO usage_daily (day, user_id, key_hash, model, provider, upstream_model, requests,
                         cost_nanos, prompt_tokens, completion_tokens, reasoning_tokens,
                         cached_tokens)
SELECT substr(created_at, 1, 10), user_id, key_hash, model, provider, upstream_model,
       count(*), sum(cost_nanos), sum(prompt_tokens), sum(completion_tokens),
       sum(reasoning_tokens), sum(cached_tokens)
FROM generations
GROUP BY 1, 2, 3, 4, 5, 6;

-- A user's recent records, newest first (the usage page).
CREATE INDEX generations_by_user ON generations (user_id, created_at);
