-- Responses kept for the OpenAI Responses API (store: true): previous_response_id,
-- GET and DELETE /api/v1/responses/{id}. Each row is self-contained: input_json holds
-- the whole conversation the response answered (the history it continued, then its
-- own input items), response_json the Response object as the client received it.
-- Rows are the user's (any of the user's keys may read them) and are purged
-- MODELGATES_RESPONSE_RETENTION_DAYS after created_at.

CREATE TABLE stored_responses (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    key_hash      TEXT NOT NULL REFERENCES api_keys (hash),
    created_at    TEXT NOT NULL,
    input_json    TEXT NOT NULL,
    response_json TEXT NOT NULL
);

CREATE INDEX stored_responses_by_time ON stored_responses (created_at);
