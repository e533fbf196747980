-- Server-side sessions of the account and consent pages.
-- Only the SHA-256 of the session token (the mg_session cookie) is stored.

CREATE TABLE web_sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    csrf_secret TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
