-- User budgets: a limit across every key of a user, with the user's own spend counters
-- (kept in step with the keys' by every settlement, in the same transaction); disabled
-- users; and key rotation (a rotated key points at its successor, and its old secret
-- answers as the successor until grace_until).
-- Invariant: users.usage_nanos == sum(api_keys.usage_nanos) over the user's keys.

ALTER TABLE users ADD COLUMN limit_nanos INTEGER;
ALTER TABLE users ADD COLUMN limit_reset TEXT
    CHECK (limit_reset IN ('daily', 'weekly', 'monthly'));
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN updated_at TEXT;
ALTER TABLE users ADD COLUMN usage_nanos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN usage_day_nanos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN usage_day_start TEXT;
ALTER TABLE users ADD COLUMN usage_week_nanos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN usage_week_start TEXT;
ALTER TABLE users ADD COLUMN usage_month_nanos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN usage_month_start TEXT;

-- The users' counters from their keys': the lifetime sum, and for each window the sum
-- over the keys whose counter is of the latest window any of them holds (the others'
-- count zero there). Sums saturate at 2^62, as the counters do.
UPDATE users SET
    usage_nanos = (SELECT CAST(min(total(usage_nanos), 4611686018427387904.0) AS INTEGER)
                   FROM api_keys WHERE api_keys.user_id = users.id),
    usage_day_start = (SELECT max(usage_day_start) FROM api_keys
                       WHERE api_keys.user_id = users.id),
    usage_week_start = (SELECT max(usage_week_start) FROM api_keys
                        WHERE api_keys.user_id = users.id),
    usage_month_start = (SELECT max(usage_month_start) FROM api_keys
                         WHERE api_keys.user_id = users.id);

UPDATE users SET
    usage_day_nanos = (SELECT CAST(min(total(usage_day_nanos), 4611686018427387904.0) AS INTEGER)
                       FROM api_keys WHERE api_keys.user_id = users.id
                       AND api_keys.usage_day_start = users.usage_day_start),
    usage_week_nanos = (SELECT CAST(min(total(usage_week_nanos), 4611686018427387904.0)
                                    AS INTEGER)
                        FROM api_keys WHERE api_keys.user_id = users.id
                        AND api_keys.usage_week_start = users.usage_week_start),
    usage_month_nanos = (SELECT CAST(min(total(usage_month_nanos), 4611686018427387904.0)
                                     AS INTEGER)
                         FROM api_keys WHERE api_keys.user_id = users.id
                         AND api_keys.usage_month_start = users.usage_month_start);

ALTER TABLE api_keys ADD COLUMN rotated_to TEXT;
ALTER TABLE api_keys ADD COLUMN grace_until TEXT;

-- Every reservation also counts against its user's budget.
ALTER TABLE reservations ADD COLUMN user_id TEXT;

CREATE INDEX reservations_by_user ON reservations (user_id, expires_at)
    WHERE user_id IS NOT NULL;

CREATE INDEX users_by_created ON users (created_at, id);
