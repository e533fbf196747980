-- Budget alerts: a durable outbox. A threshold of a key's limit or a user's budget
-- (MODELGATES_ALERT_THRESHOLDS) reached by a charge is recorded in budget_alerts in
-- the charge's own transaction, at most once per (scope, subject, threshold, window):
-- the unique constraint is what makes "once per window" hold across processes. The
-- delivery task fans each alert out into alert_deliveries (one per destination: the
-- global webhook, the user's webhook, the user's e-mail), claims due deliveries under
-- a lease, and logs every try in alert_attempts.
-- Lifetime limits have period 'total' and window_start '1970-01-01T00:00:00Z'.

CREATE TABLE alert_webhooks (
    user_id    TEXT PRIMARY KEY REFERENCES users (id),
    url        TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE budget_alerts (
    id            TEXT PRIMARY KEY,
    scope         TEXT NOT NULL CHECK (scope IN ('key_limit', 'user_budget')),
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    key_hash      TEXT NOT NULL,
    threshold     INTEGER NOT NULL,
    period        TEXT NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'total')),
    window_start  TEXT NOT NULL,
    limit_nanos   INTEGER NOT NULL,
    usage_nanos   INTEGER NOT NULL,
    generation_id TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    payload       TEXT,
    fanned_out_at TEXT,
    UNIQUE (scope, subject, threshold, period, window_start)
);

CREATE INDEX budget_alerts_unsent ON budget_alerts (created_at) WHERE fanned_out_at IS NULL;
CREATE INDEX budget_alerts_by_time ON budget_alerts (created_at);

CREATE TABLE alert_deliveries (
    id              TEXT PRIMARY KEY,
    alert_id        TEXT NOT NULL REFERENCES budget_alerts (id),
    channel         TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
    destination     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    lease_until     TEXT,
    lease_token     TEXT,
    last_http_status INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    delivered_at    TEXT,
    UNIQUE (alert_id, channel, destination)
);

CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX alert_deliveries_by_time ON alert_deliveries (created_at);

CREATE TABLE alert_attempts (
    delivery_id  TEXT NOT NULL REFERENCES alert_deliveries (id),
    number       INTEGER NOT NULL,
    attempted_at TEXT NOT NULL,
    http_status  INTEGER,
    error        TEXT,
    PRIMARY KEY (delivery_id, number)
);
