-- Server-side sessions of the account and consent pages.
-- Only the SHA-256 of the session token (the mg_session cookie) is stored.

CREATE TABLE web_sessions (
    token_hash  text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id),
    csrf_secret text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
