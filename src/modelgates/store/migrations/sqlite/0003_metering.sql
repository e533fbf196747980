-- Metering: in-flight reservations (crash-safe: they expire) and the charge ledger.
-- Invariant: api_keys.usage_nanos == sum(charges.cost_nanos) for the key.

CREATE TABLE reservations (
    id           TEXT PRIMARY KEY,
    key_hash     TEXT NOT NULL REFERENCES api_keys (hash),
    amount_nanos INTEGER NOT NULL CHECK (amount_nanos >= 0),
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);

CREATE INDEX reservations_by_key ON reservations (key_hash, expires_at);

CREATE TABLE charges (
    id                TEXT PRIMARY KEY,
    key_hash          TEXT NOT NULL REFERENCES api_keys (hash),
    model             TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_nanos        INTEGER NOT NULL CHECK (cost_nanos >= 0),
    estimated         INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL
);

CREATE INDEX charges_by_key ON charges (key_hash, created_at);
