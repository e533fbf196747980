-- Generation records replace the charge ledger; sub-keys and the codes' creators.
-- Invariant: api_keys.usage_nanos == sum(generations.cost_nanos) for the key.

ALTER TABLE api_keys ADD COLUMN parent_key_hash text REFERENCES api_keys (hash);

CREATE INDEX api_keys_by_parent ON api_keys (parent_key_hash)
    WHERE parent_key_hash IS NOT NULL;

ALTER TABLE auth_codes ADD COLUMN creator_key_hash text;

CREATE INDEX auth_codes_pending_by_creator ON auth_codes (creator_key_hash)
    WHERE creator_key_hash IS NOT NULL AND used_at IS NULL;

-- A sub-key's reservations also count against the key that minted it.
ALTER TABLE reservations ADD COLUMN parent_key_hash text;

CREATE INDEX reservations_by_parent ON reservations (parent_key_hash, expires_at)
    WHERE parent_key_hash IS NOT NULL;

CREATE TABLE generations (
    id                         text PRIMARY KEY,
    key_hash                   text NOT NULL REFERENCES api_keys (hash),
    user_id                    text NOT NULL,
    app_id                     bigint,
    model                      text NOT NULL,
    provider                   text NOT NULL,
    upstream_model             text NOT NULL,
    api_type                   text NOT NULL,
    created_at                 timestamptz NOT NULL,
    cost_nanos                 bigint NOT NULL CHECK (cost_nanos >= 0),
    reserved_nanos             bigint NOT NULL CHECK (reserved_nanos >= 0),
    prompt_tokens              bigint NOT NULL,
    completion_tokens          bigint NOT NULL,
    reasoning_tokens           bigint NOT NULL,
    cached_tokens              bigint NOT NULL,
    cache_write_tokens         bigint NOT NULL,
    prompt_cost_nanos          bigint NOT NULL,
    completion_cost_nanos      bigint NOT NULL,
    request_cost_nanos         bigint NOT NULL,
    estimated                  boolean NOT NULL,
    usage_exceeded_reservation boolean NOT NULL,
    streamed                   boolean NOT NULL,
    cancelled                  boolean NOT NULL,
    upstream_id                text,
    finish_reason              text,
    native_finish_reason       text,
    native_tokens_prompt       bigint,
    native_tokens_completion   bigint,
    native_tokens_reasoning    bigint,
    native_tokens_cached       bigint,
    latency_ms                 integer,
    generation_time_ms         integer,
    origin                     text,
    referer                    text,
    user_agent                 text,
    external_user              text,
    session_id                 text
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
       c.estimated, false, false, false
FROM charges c JOIN api_keys k ON k.hash = c.key_hash;

DROP TABLE charges;

-- Metering in one round trip each, as in 0005, now against every budget a request
-- draws on (the key's own limit and the limit of the key that minted it) and
-- counting the request's own worst case: the arithmetic of modelgates.admission.
--
-- Lock order: the minting key's row, then the key's own, then reservations and
-- generations (a generation inserted first would lock the key row FOR KEY SHARE
-- through its foreign key and deadlock with an admission's FOR UPDATE).

DROP FUNCTION modelgates_reserve(text, text, bigint, timestamptz, timestamptz,
                                 timestamptz, timestamptz, timestamptz);
DROP FUNCTION modelgates_settle(text, text, text, text, bigint, bigint, bigint, boolean,
                                timestamptz, timestamptz, timestamptz, timestamptz);
DROP FUNCTION modelgates_exceeded_limit(api_keys, numeric, timestamptz, timestamptz,
                                        timestamptz);
DROP FUNCTION modelgates_window_spend(api_keys, timestamptz, timestamptz, timestamptz);

-- Spend of key k in the window of kind p_reset (NULL: lifetime), as UsageCounters.in_window.
CREATE FUNCTION modelgates_spend_in(
    p_reset text, k api_keys, p_day timestamptz, p_week timestamptz, p_month timestamptz
) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_reset
        WHEN 'daily' THEN CASE WHEN k.usage_day_start = p_day
                               THEN k.usage_day_nanos ELSE 0 END
        WHEN 'weekly' THEN CASE WHEN k.usage_week_start = p_week
                                THEN k.usage_week_nanos ELSE 0 END
        WHEN 'monthly' THEN CASE WHEN k.usage_month_start = p_month
                                 THEN k.usage_month_nanos ELSE 0 END
        ELSE k.usage_nanos
    END
$$;

-- Credit left under k's limit: the limit minus what k and its sub-keys spent in k's
-- window, minus their live reservations. One statement, so one snapshot: a sub-key's
-- settlement (which deletes its reservation and raises its counters at once) is
-- seen whole or not at all.
CREATE FUNCTION modelgates_remaining(
    k api_keys, p_now timestamptz, p_day timestamptz, p_week timestamptz, p_month timestamptz
) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT k.limit_nanos::numeric
        - modelgates_spend_in(k.limit_reset, k, p_day, p_week, p_month)
        - coalesce((SELECT sum(modelgates_spend_in(k.limit_reset, c, p_day, p_week, p_month))
                    FROM api_keys c WHERE c.parent_key_hash = k.hash), 0)
        - coalesce((SELECT sum(r.amount_nanos) FROM reservations r
                    WHERE (r.key_hash = k.hash OR r.parent_key_hash = k.hash)
                      AND r.expires_at > p_now), 0)
$$;

-- Ask.affordable: the most output tokens whose amount fits p_remaining (-1: none).
CREATE FUNCTION modelgates_affordable(
    p_fixed numeric, p_per_million numeric, p_remaining numeric
) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_fixed > p_remaining THEN -1
        WHEN p_per_million = 0 THEN 1000000000
        ELSE least(1000000000, div((p_remaining - p_fixed) * 1000000, p_per_million))
    END::bigint
$$;

-- Store.reserve: lock the budgets, decide (admission.decide), and insert the
-- reservation if admitted. No row when the key does not exist.
CREATE FUNCTION modelgates_reserve(
    p_key_hash text, p_id text, p_fixed bigint, p_per_million numeric, p_tokens bigint,
    p_cap bigint, p_now timestamptz, p_expires_at timestamptz,
    p_day timestamptz, p_week timestamptz, p_month timestamptz,
    OUT key_row api_keys, OUT amount bigint, OUT granted bigint,
    OUT refused_scope text, OUT refused text, OUT affordable bigint
) RETURNS SETOF record
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    parent_hash text;
    parent api_keys;
    needed bigint;
    own bigint;
    up bigint;
    tokens bigint;
BEGIN
    SELECT parent_key_hash INTO parent_hash FROM api_keys WHERE hash = p_key_hash;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF parent_hash IS NOT NULL THEN
        SELECT * INTO parent FROM api_keys WHERE hash = parent_hash FOR UPDATE;
    END IF;
    SELECT * INTO key_row FROM api_keys WHERE hash = p_key_hash FOR UPDATE;
    DELETE FROM reservations WHERE key_hash = p_key_hash AND expires_at <= p_now;
    needed := coalesce(p_tokens, least(1, p_cap));
    amount := 0;
    IF key_row.limit_nanos IS NOT NULL THEN
        own := modelgates_affordable(
            p_fixed, p_per_million,
            modelgates_remaining(key_row, p_now, p_day, p_week, p_month));
        IF own < needed THEN
            refused_scope := 'key_limit';
            refused := coalesce(key_row.limit_reset, 'total');
            affordable := greatest(own, 0);
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    IF parent.hash IS NOT NULL AND parent.limit_nanos IS NOT NULL THEN
        up := modelgates_affordable(
            p_fixed, p_per_million, modelgates_remaining(parent, p_now, p_day, p_week, p_month));
        IF up < needed THEN
            refused_scope := 'parent_key';
            refused := coalesce(parent.limit_reset, 'total');
            affordable := greatest(up, 0);
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    IF p_tokens IS NOT NULL THEN
        tokens := p_tokens;
    ELSE
        tokens := least(p_cap, own, up);  -- least() ignores NULLs
        granted := tokens;
    END IF;
    amount := least(p_fixed + ceil(tokens * p_per_million / 1000000), 1000000000000000);
    INSERT INTO reservations (id, key_hash, parent_key_hash, amount_nanos, created_at, expires_at)
        VALUES (p_id, p_key_hash, parent_hash, amount, p_now, p_expires_at);
    RETURN NEXT;
END
$$;

-- Store.settle: add the cost to the key's counters (rolling each window over lazily,
-- as rows.window_increments does for SQLite, saturating at 2^62), then drop the
-- reservation and insert the generation record (given as JSON, one column a key).
CREATE FUNCTION modelgates_settle(
    p_reservation_id text, p_record jsonb,
    p_day timestamptz, p_week timestamptz, p_month timestamptz
) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c bigint := (p_record ->> 'cost_nanos')::bigint;
    top constant bigint := 4611686018427387904;
BEGIN
    UPDATE api_keys SET
        usage_nanos = least(usage_nanos + c, top),
        usage_day_nanos = CASE WHEN usage_day_start = p_day THEN least(usage_day_nanos + c, top)
                               WHEN usage_day_start > p_day THEN usage_day_nanos
                               ELSE c END,
        usage_day_start = CASE WHEN usage_day_start > p_day THEN usage_day_start
                               ELSE p_day END,
        usage_week_nanos = CASE WHEN usage_week_start = p_week
                                THEN least(usage_week_nanos + c, top)
                                WHEN usage_week_start > p_week THEN usage_week_nanos
                                ELSE c END,
        usage_week_start = CASE WHEN usage_week_start > p_week THEN usage_week_start
                                ELSE p_week END,
        usage_month_nanos = CASE WHEN usage_month_start = p_month
                                 THEN least(usage_month_nanos + c, top)
                                 WHEN usage_month_start > p_month THEN usage_month_nanos
                                 ELSE c END,
        usage_month_start = CASE WHEN usage_month_start > p_month THEN usage_month_start
                                 ELSE p_month END,
        last_used_at = (p_record ->> 'created_at')::timestamptz
    WHERE hash = p_record ->> 'key_hash';
    DELETE FROM reservations WHERE id = p_reservation_id;
    INSERT INTO generations SELECT * FROM jsonb_populate_record(NULL::generations, p_record);
END
$$;
