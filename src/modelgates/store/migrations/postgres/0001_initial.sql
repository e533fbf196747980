-- Users, apps, API keys (hashes only) and authorization codes (hashes only).
-- Timestamps are timestamptz (UTC); money is bigint nano-dollars.

CREATE TABLE users (
    id            text PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    workspace_id  text NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE TABLE apps (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin     text NOT NULL UNIQUE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE api_keys (
    hash              text PRIMARY KEY,
    user_id           text NOT NULL REFERENCES users (id),
    app_id            bigint REFERENCES apps (id),
    name              text NOT NULL,
    label             text NOT NULL,
    limit_nanos       bigint,
    limit_reset       text CHECK (limit_reset IN ('daily', 'weekly', 'monthly')),
    expires_at        timestamptz,
    disabled          boolean NOT NULL DEFAULT false,
    revoked_at        timestamptz,
    is_management     boolean NOT NULL DEFAULT false,
    issued_by_code    boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz,
    last_used_at      timestamptz,
    usage_nanos       bigint NOT NULL DEFAULT 0,
    usage_day_nanos   bigint NOT NULL DEFAULT 0,
    usage_day_start   timestamptz,
    usage_week_nanos  bigint NOT NULL DEFAULT 0,
    usage_week_start  timestamptz,
    usage_month_nanos bigint NOT NULL DEFAULT 0,
    usage_month_start timestamptz
);

CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at);

CREATE TABLE auth_codes (
    code_hash             text PRIMARY KEY,
    user_id               text NOT NULL REFERENCES users (id),
    app_id                bigint NOT NULL REFERENCES apps (id),
    callback_url          text,
    code_challenge        text,
    code_challenge_method text CHECK (code_challenge_method IN ('S256', 'plain')),
    key_label             text,
    limit_nanos           bigint,
    usage_limit_type      text CHECK (usage_limit_type IN ('daily', 'weekly', 'monthly')),
    key_expires_at        timestamptz,
    created_at            timestamptz NOT NULL,
    expires_at            timestamptz NOT NULL,
    used_at               timestamptz,
    minted_key_hash       text
);

CREATE INDEX auth_codes_live_challenge ON auth_codes (user_id, code_challenge)
    WHERE used_at IS NULL AND code_challenge IS NOT NULL;
CREATE INDEX auth_codes_by_expiry ON auth_codes (expires_at);
