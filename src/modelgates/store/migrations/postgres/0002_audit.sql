-- Audit trail of key events: who did what to which key, and when.

CREATE TABLE audit_events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL,
    event    text NOT NULL,
    actor    text NOT NULL,
    user_id  text,
    key_hash text,
    detail   jsonb
);

CREATE INDEX audit_events_by_user ON audit_events (user_id, id);
CREATE INDEX audit_events_by_key ON audit_events (key_hash, id);
