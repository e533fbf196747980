-- Metering in one round trip each: admission and settlement run server side, so a
-- busy key's row lock is held for a few statements instead of several round trips.
--
-- Lock order: both functions lock the key row before they touch reservations or
-- charges. A charge inserted first would lock the key row FOR KEY SHARE through
-- its foreign key before the counter UPDATE, and deadlock with an admission's
-- FOR UPDATE caught in between.
--
-- Under READ COMMITTED each statement of a VOLATILE PL/pgSQL function takes a
-- fresh snapshot, so the statements after the row lock see every settlement
-- that committed before the lock was granted.

-- Spend of a key in the window its limit counts (UsageCounters.in_window): a
-- window counter counts only while its stored start is the current window's.
CREATE FUNCTION modelgates_window_spend(
    k api_keys, p_day timestamptz, p_week timestamptz, p_month timestamptz
) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE k.limit_reset
        WHEN 'daily' THEN CASE WHEN k.usage_day_start = p_day
                               THEN k.usage_day_nanos ELSE 0 END
        WHEN 'weekly' THEN CASE WHEN k.usage_week_start = p_week
                                THEN k.usage_week_nanos ELSE 0 END
        WHEN 'monthly' THEN CASE WHEN k.usage_month_start = p_month
                                 THEN k.usage_month_nanos ELSE 0 END
        ELSE k.usage_nanos
    END
$$;

-- Which limit refuses a new request with p_reserved in flight (pricing.exceeded_limit):
-- NULL while window spend plus live reservations is below the limit.
CREATE FUNCTION modelgates_exceeded_limit(
    k api_keys, p_reserved numeric, p_day timestamptz, p_week timestamptz, p_month timestamptz
) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN k.limit_nanos IS NULL THEN NULL
        WHEN modelgates_window_spend(k, p_day, p_week, p_month) + p_reserved < k.limit_nanos
            THEN NULL
        ELSE coalesce(k.limit_reset, 'total')
    END
$$;

-- Store.reserve: lock the key, drop its expired reservations, decide, and insert
-- the reservation if admitted. No row when the key does not exist; otherwise the
-- key as locked, the other live reservations' sum and the refusing limit (or NULL).
CREATE FUNCTION modelgates_reserve(
    p_key_hash text, p_id text, p_amount bigint, p_now timestamptz, p_expires_at timestamptz,
    p_day timestamptz, p_week timestamptz, p_month timestamptz,
    OUT key_row api_keys, OUT reserved numeric, OUT refused text
) RETURNS SETOF record
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT * INTO key_row FROM api_keys WHERE hash = p_key_hash FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    DELETE FROM reservations WHERE key_hash = p_key_hash AND expires_at <= p_now;
    SELECT coalesce(sum(amount_nanos), 0) INTO reserved
        FROM reservations WHERE key_hash = p_key_hash;
    refused := modelgates_exceeded_limit(key_row, reserved, p_day, p_week, p_month);
    IF refused IS NULL THEN
        INSERT INTO reservations (id, key_hash, amount_nanos, created_at, expires_at)
            VALUES (p_id, p_key_hash, p_amount, p_now, p_expires_at);
    END IF;
    RETURN NEXT;
END
$$;

-- Store.settle: add the cost to the key's counters (rolling each window over
-- lazily, as rows.window_increments does for SQLite), then drop the reservation
-- and record the charge, all in the caller's one statement's transaction.
CREATE FUNCTION modelgates_settle(
    p_reservation_id text, p_charge_id text, p_key_hash text, p_model text,
    p_prompt_tokens bigint, p_completion_tokens bigint, p_cost bigint, p_estimated boolean,
    p_created_at timestamptz, p_day timestamptz, p_week timestamptz, p_month timestamptz
) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    UPDATE api_keys SET
        usage_nanos = usage_nanos + p_cost,
        usage_day_nanos = CASE WHEN usage_day_start = p_day THEN usage_day_nanos + p_cost
                               WHEN usage_day_start > p_day THEN usage_day_nanos
                               ELSE p_cost END,
        usage_day_start = CASE WHEN usage_day_start > p_day THEN usage_day_start
                               ELSE p_day END,
        usage_week_nanos = CASE WHEN usage_week_start = p_week THEN usage_week_nanos + p_cost
                                WHEN usage_week_start > p_week THEN usage_week_nanos
                                ELSE p_cost END,
        usage_week_start = CASE WHEN usage_week_start > p_week THEN usage_week_start
                                ELSE p_week END,
        usage_month_nanos = CASE WHEN usage_month_start = p_month
                                 THEN usage_month_nanos + p_cost
                                 WHEN usage_month_start > p_month THEN usage_month_nanos
                                 ELSE p_cost END,
        usage_month_start = CASE WHEN usage_month_start > p_month THEN usage_month_start
                                 ELSE p_month END,
        last_used_at = p_created_at
    WHERE hash = p_key_hash;
    DELETE FROM reservations WHERE id = p_reservation_id;
    INSERT INTO charges (id, key_hash, model, prompt_tokens, completion_tokens,
                         cost_nanos, estimated, created_at)
        VALUES (p_charge_id, p_key_hash, p_model, p_prompt_tokens, p_completion_tokens,
                p_cost, p_estimated, p_created_at);
END
$$;
