-- User budgets: a limit across every key of a user, with the user's own spend counters
-- (kept in step with the keys' by every settlement, in the same transaction); disabled
-- users; and key rotation (a rotated key points at its successor, and its old secret
-- answers as the successor until grace_until).
-- Invariant: users.usage_nanos == sum(api_keys.usage_nanos) over the user's keys.

ALTER TABLE users
    ADD COLUMN limit_nanos bigint,
    ADD COLUMN limit_reset text CHECK (limit_reset IN ('daily', 'weekly', 'monthly')),
    ADD COLUMN disabled boolean NOT NULL DEFAULT false,
    ADD COLUMN updated_at timestamptz,
    ADD COLUMN usage_nanos bigint NOT NULL DEFAULT 0,
    ADD COLUMN usage_day_nanos bigint NOT NULL DEFAULT 0,
    ADD COLUMN usage_day_start timestamptz,
    ADD COLUMN usage_week_nanos bigint NOT NULL DEFAULT 0,
    ADD COLUMN usage_week_start timestamptz,
    ADD COLUMN usage_month_nanos bigint NOT NULL DEFAULT 0,
    ADD COLUMN usage_month_start timestamptz;

-- The users' counters from their keys': the lifetime sum, and for each window the sum
-- over the keys whose counter is of the latest window any of them holds (the others'
-- count zero there). Sums saturate at 2^62, as the counters do.
UPDATE users u SET
    usage_nanos = s.total,
    usage_day_start = s.day_start,
    usage_week_start = s.week_start,
    usage_month_start = s.month_start
FROM (SELECT user_id, least(sum(usage_nanos), 4611686018427387904)::bigint AS total,
             max(usage_day_start) AS day_start, max(usage_week_start) AS week_start,
             max(usage_month_start) AS month_start
      FROM api_keys GROUP BY user_id) s
WHERE s.user_id = u.id;

UPDATE users u SET
    usage_day_nanos = coalesce((SELECT least(sum(k.usage_day_nanos), 4611686018427387904)
                                FROM api_keys k WHERE k.user_id = u.id
                                AND k.usage_day_start = u.usage_day_start), 0),
    usage_week_nanos = coalesce((SELECT least(sum(k.usage_week_nanos), 4611686018427387904)
                                 FROM api_keys k WHERE k.user_id = u.id
                                 AND k.usage_week_start = u.usage_week_start), 0),
    usage_month_nanos = coalesce((SELECT least(sum(k.usage_month_nanos), 4611686018427387904)
                                  FROM api_keys k WHERE k.user_id = u.id
                                  AND k.usage_month_start = u.usage_month_start), 0);

ALTER TABLE api_keys
    ADD COLUMN rotated_to text,
    ADD COLUMN grace_until timestamptz;

-- Every reservation also counts against its user's budget.
ALTER TABLE reservations ADD COLUMN user_id text;

CREATE INDEX reservations_by_user ON reservations (user_id, expires_at)
    WHERE user_id IS NOT NULL;

CREATE INDEX users_by_created ON users (created_at, id);

-- Metering now also draws on the user's budget, in the same one round trip each.
--
-- Lock order: the user's row, then the minting key's, then the key's own, then
-- reservations and generations. Admission, settlement and rotation all take the user's
-- row first, so a rotation has either committed whole or not begun when they read
-- which key a hash stands for.

-- Spend of user u in the window of kind p_reset (NULL: lifetime), as UsageCounters.in_window.
CREATE FUNCTION modelgates_user_spend_in(
    p_reset text, u users, p_day timestamptz, p_week timestamptz, p_month timestamptz
) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_reset
        WHEN 'daily' THEN CASE WHEN u.usage_day_start = p_day
                               THEN u.usage_day_nanos ELSE 0 END
        WHEN 'weekly' THEN CASE WHEN u.usage_week_start = p_week
                                THEN u.usage_week_nanos ELSE 0 END
        WHEN 'monthly' THEN CASE WHEN u.usage_month_start = p_month
                                 THEN u.usage_month_nanos ELSE 0 END
        ELSE u.usage_nanos
    END
$$;

-- Credit left under u's budget: the budget minus the user's spend in its window, minus
-- the live reservations of every key of the user.
CREATE FUNCTION modelgates_user_remaining(
    u users, p_now timestamptz, p_day timestamptz, p_week timestamptz, p_month timestamptz
) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT u.limit_nanos::numeric
        - modelgates_user_spend_in(u.limit_reset, u, p_day, p_week, p_month)
        - coalesce((SELECT sum(r.amount_nanos) FROM reservations r
                    WHERE r.user_id = u.id AND r.expires_at > p_now), 0)
$$;

-- Store.reserve: lock the budgets (user, minting key, key), decide (admission.decide),
-- and insert the reservation if admitted. No row when the key does not exist; the
-- scope 'user_disabled' when its user is disabled.
CREATE OR REPLACE FUNCTION modelgates_reserve(
    p_key_hash text, p_id text, p_fixed bigint, p_per_million numeric, p_tokens bigint,
    p_cap bigint, p_now timestamptz, p_expires_at timestamptz,
    p_day timestamptz, p_week timestamptz, p_month timestamptz,
    OUT key_row api_keys, OUT amount bigint, OUT granted bigint,
    OUT refused_scope text, OUT refused text, OUT affordable bigint
) RETURNS SETOF record
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    owner_id text;
    owner users;
    v_hash text;
    parent_hash text;
    parent api_keys;
    needed bigint;
    own bigint;
    up bigint;
    mine bigint;
    tokens bigint;
BEGIN
    SELECT user_id INTO owner_id FROM api_keys WHERE hash = p_key_hash;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO owner FROM users WHERE id = owner_id FOR UPDATE;
    -- A rotated key's requests are its successor's.
    SELECT coalesce(rotated_to, hash) INTO v_hash FROM api_keys WHERE hash = p_key_hash;
    SELECT parent_key_hash INTO parent_hash FROM api_keys WHERE hash = v_hash;
    IF parent_hash IS NOT NULL THEN
        SELECT * INTO parent FROM api_keys WHERE hash = parent_hash FOR UPDATE;
    END IF;
    SELECT * INTO key_row FROM api_keys WHERE hash = v_hash FOR UPDATE;
    amount := 0;
    IF owner.disabled THEN
        refused_scope := 'user_disabled';
        refused := 'total';
        affordable := 0;
        RETURN NEXT;
        RETURN;
    END IF;
    DELETE FROM reservations WHERE key_hash = v_hash AND expires_at <= p_now;
    needed := coalesce(p_tokens, least(1, p_cap));
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
    IF owner.limit_nanos IS NOT NULL THEN
        mine := modelgates_affordable(
            p_fixed, p_per_million,
            modelgates_user_remaining(owner, p_now, p_day, p_week, p_month));
        IF mine < needed THEN
            refused_scope := 'user_budget';
            refused := coalesce(owner.limit_reset, 'total');
            affordable := greatest(mine, 0);
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    IF p_tokens IS NOT NULL THEN
        tokens := p_tokens;
    ELSE
        tokens := least(p_cap, own, up, mine);  -- least() ignores NULLs
        granted := tokens;
    END IF;
    amount := least(p_fixed + ceil(tokens * p_per_million / 1000000), 1000000000000000);
    INSERT INTO reservations
        (id, key_hash, parent_key_hash, user_id, amount_nanos, created_at, expires_at)
        VALUES (p_id, v_hash, parent_hash, owner_id, amount, p_now, p_expires_at);
    RETURN NEXT;
END
$$;

-- Store.settle: add the cost to the user's counters, then to the key's (the key that
-- was charged, or its successor if it was rotated meanwhile), rolling each window over
-- lazily as rows.window_increments does for SQLite and saturating at 2^62; then drop
-- the reservation and insert the generation record under that key.
CREATE OR REPLACE FUNCTION modelgates_settle(
    p_reservation_id text, p_record jsonb,
    p_day timestamptz, p_week timestamptz, p_month timestamptz
) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c bigint := (p_record ->> 'cost_nanos')::bigint;
    top constant bigint := 4611686018427387904;
    target text;
BEGIN
    UPDATE users SET
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
                                 ELSE p_month END
    WHERE id = p_record ->> 'user_id';
    SELECT coalesce(rotated_to, hash) INTO target FROM api_keys
        WHERE hash = p_record ->> 'key_hash';
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
    WHERE hash = target;
    DELETE FROM reservations WHERE id = p_reservation_id;
    INSERT INTO generations SELECT * FROM jsonb_populate_record(
        NULL::generations, p_record || jsonb_build_object('key_hash', target));
END
$$;
