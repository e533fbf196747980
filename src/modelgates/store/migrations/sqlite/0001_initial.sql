-- Users, apps, API keys (hashes only) and authorization codes (hashes only).
-- Timestamps are fixed-width ISO 8601 UTC text ("2026-11-29T10:30:00.000000Z").
-- Money is integer nano-dollars.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE apps (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    origin     TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE api_keys (
    hash              TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id),
    app_id            INTEGER REFERENCES apps (id),
    name              TEXT NOT NULL,
    label             TEXT NOT NULL,
    limit_nanos       INTEGER,
    limit_reset       TEXT CHECK (limit_reset IN ('daily', 'weekly', 'monthly')),
    expires_at        TEXT,
    disabled          INTEGER NOT NULL DEFAULT 0,
    revoked_at        TEXT,
    is_management     INTEGER NOT NULL DEFAULT 0,
    issued_by_code    INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT,
    last_used_at      TEXT,
    usage_nanos       INTEGER NOT NULL DEFAULT 0,
    usage_day_nanos   INTEGER NOT NULL DEFAULT 0,
    usage_day_start   TEXT,
    usage_week_nanos  INTEGER NOT NULL DEFAULT 0,
    usage_week_start  TEXT,
    usage_month_nanos INTEGER NOT NULL DEFAULT 0,
    usage_month_start TEXT
);

CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);

CREATE TABLE auth_codes (
    code_hash             TEXT PRIMARY KEY,
    user_id               TEXT NOT NULL REFERENCES users (id),
    app_id                INTEGER NOT NULL REFERENCES apps (id),
    callback_url          TEXT,
    code_challenge        TEXT,
    code_challenge_method TEXT CHECK (code_challenge_method IN ('S256', 'plain')),
    key_label             TEXT,
    limit_nanos           INTEGER,
    usage_limit_type      TEXT CHECK (usage_limit_type IN ('daily', 'weekly', 'monthly')),
    key_expires_at        TEXT,
    created_at            TEXT NOT NULL,
    expires_at            TEXT NOT NULL,
    used_at               TEXT,
    minted_key_hash       TEXT
);

CREATE INDEX auth_codes_live_challenge ON auth_codes (user_id, code_challenge)
    WHERE used_at IS NULL AND code_challenge IS NOT NULL;
CREATE INDEX auth_codes_by_expiry ON auth_codes (expires_at);
