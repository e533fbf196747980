-- Budget alerts: a durable outbox. A threshold of a key's limit or a user's budget
-- (MODELGATES_ALERT_THRESHOLDS) reached by a charge is recorded in budget_alerts in
-- the charge's own transaction, at most once per (scope, subject, threshold, window):
-- the unique constraint is what makes "once per window" hold across processes. The
-- delivery task fans each alert out into alert_deliveries (one per destination: the
-- global webhook, the user's webhook, the user's e-mail), claims due deliveries under
-- a lease (FOR UPDATE SKIP LOCKED), and logs every try in alert_attempts.
-- Lifetime limits have period 'total' and window_start 'epoch'.

CREATE TABLE alert_webhooks (
    user_id    text PRIMARY KEY REFERENCES users (id),
    url        text NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE budget_alerts (
    id            text PRIMARY KEY,
    scope         text NOT NULL CHECK (scope IN ('key_limit', 'user_budget')),
    subject       text NOT NULL,
    user_id       text NOT NULL,
    key_hash      text NOT NULL,
    threshold     integer NOT NULL,
    period        text NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'total')),
    window_start  timestamptz NOT NULL,
    limit_nanos   bigint NOT NULL,
    usage_nanos   bigint NOT NULL,
    generation_id text NOT NULL,
    created_at    timestamptz NOT NULL,
    payload       text,
    fanned_out_at timestamptz,
    UNIQUE (scope, subject, threshold, period, window_start)
);

CREATE INDEX budget_alerts_unsent ON budget_alerts (created_at) WHERE fanned_out_at IS NULL;
CREATE INDEX budget_alerts_by_time ON budget_alerts (created_at);

CREATE TABLE alert_deliveries (
    id              text PRIMARY KEY,
    alert_id        text NOT NULL REFERENCES budget_alerts (id),
    channel         text NOT NULL CHECK (channel IN ('webhook', 'email')),
    destination     text NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    lease_until     timestamptz,
    lease_token     text,
    last_http_status integer,
    last_error      text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    UNIQUE (alert_id, channel, destination)
);

CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX alert_deliveries_by_time ON alert_deliveries (created_at);

CREATE TABLE alert_attempts (
    delivery_id  text NOT NULL REFERENCES alert_deliveries (id),
    number       integer NOT NULL,
    attempted_at timestamptz NOT NULL,
    http_status  integer,
    error        text,
    PRIMARY KEY (delivery_id, number)
);

-- The alerts a settled charge fires, in the settlement's transaction (called right
-- after modelgates_settle, in the same statement: see postgres_metering.settle): for
-- the key that was charged (its successor if rotated) and for its user, every
-- threshold (percent) that the spend in the limit's current window has reached,
-- unless already recorded for that window. Returns how many were recorded.
CREATE FUNCTION modelgates_record_alerts(
    p_record jsonb, p_thresholds integer[],
    p_day timestamptz, p_week timestamptz, p_month timestamptz
) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k api_keys;
    u users;
    spend bigint;
    fired integer := 0;
    n integer;
    charged_at timestamptz := (p_record ->> 'created_at')::timestamptz;
BEGIN
    IF coalesce(cardinality(p_thresholds), 0) = 0 THEN
        RETURN 0;
    END IF;
    SELECT * INTO k FROM api_keys WHERE hash = (
        SELECT coalesce(rotated_to, hash) FROM api_keys WHERE hash = p_record ->> 'key_hash');
    SELECT * INTO u FROM users WHERE id = p_record ->> 'user_id';
    IF k.limit_nanos > 0 THEN
        spend := modelgates_spend_in(k.limit_reset, k, p_day, p_week, p_month);
        INSERT INTO budget_alerts (id, scope, subject, user_id, key_hash, threshold, period,
                                   window_start, limit_nanos, usage_nanos, generation_id,
                                   created_at)
        SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), 'key_limit', k.hash,
               k.user_id, k.hash, t, coalesce(k.limit_reset, 'total'),
               CASE k.limit_reset WHEN 'daily' THEN p_day WHEN 'weekly' THEN p_week
                                  WHEN 'monthly' THEN p_month ELSE 'epoch' END,
               k.limit_nanos, spend, p_record ->> 'id', charged_at
        FROM unnest(p_thresholds) AS t
        WHERE spend::numeric * 100 >= t::numeric * k.limit_nanos
        ORDER BY t
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS n = ROW_COUNT;
        fired := fired + n;
    END IF;
    IF u.limit_nanos > 0 THEN
        spend := modelgates_user_spend_in(u.limit_reset, u, p_day, p_week, p_month);
        INSERT INTO budget_alerts (id, scope, subject, user_id, key_hash, threshold, period,
                                   window_start, limit_nanos, usage_nanos, generation_id,
                                   created_at)
        SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), 'user_budget', u.id,
               u.id, coalesce(k.hash, p_record ->> 'key_hash'), t,
               coalesce(u.limit_reset, 'total'),
               CASE u.limit_reset WHEN 'daily' THEN p_day WHEN 'weekly' THEN p_week
                                  WHEN 'monthly' THEN p_month ELSE 'epoch' END,
               u.limit_nanos, spend, p_record ->> 'id', charged_at
        FROM unnest(p_thresholds) AS t
        WHERE spend::numeric * 100 >= t::numeric * u.limit_nanos
        ORDER BY t
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS n = ROW_COUNT;
        fired := fired + n;
    END IF;
    RETURN fired;
END
$$;

-- Store.settle with alerts: the settlement, then the alerts it fires, in one
-- transaction and one round trip.
CREATE FUNCTION modelgates_settle_alerting(
    p_reservation_id text, p_record jsonb,
    p_day timestamptz, p_week timestamptz, p_month timestamptz, p_thresholds integer[]
) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM modelgates_settle(p_reservation_id, p_record, p_day, p_week, p_month);
    RETURN modelgates_record_alerts(p_record, p_thresholds, p_day, p_week, p_month);
END
$$;
