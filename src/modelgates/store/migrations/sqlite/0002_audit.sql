-- Audit trail of key events: who did what to which key, and when.

CREATE TABLE audit_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    event    TEXT NOT NULL,
    actor    TEXT NOT NULL,
    user_id  TEXT,
    key_hash TEXT,
    detail   TEXT
);

CREATE INDEX audit_events_by_user ON audit_events (user_id, id);
CREATE INDEX audit_events_by_key ON audit_events (key_hash, id);
