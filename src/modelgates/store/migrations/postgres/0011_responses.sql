-- Responses kept for the OpenAI Responses API (store: true): previous_response_id,
-- GET and DELETE /api/v1/responses/{id}. Each row is self-contained: input_json holds
-- the whole conversation the response answered (the history it continued, then its
-- own input items), response_json the Response object as the client received it.
-- Rows are the user's (any of the user's keys may read them) and are purged
-- MODELGATES_RESPONSE_RETENTION_DAYS after created_at.

CREATE TABLE stored_responses (
    id            text PRIMARY KEY,
    user_id       text NOT NULL,
    key_hash      text NOT NULL REFERENCES api_keys (hash),
    created_at    timestamptz NOT NULL,
    input_json    text NOT NULL,
    response_json text NOT NULL
);

CREATE INDEX stored_responses_by_time ON stored_responses (created_at);
