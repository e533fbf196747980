-- Metering: in-flight reservations (crash-safe: they expire) and the charge ledger.
-- Invariant: api_keys.usage_nanos == sum(charges.cost_nanos) for the key.

CREATE TABLE reservations (
    id           text PRIMARY KEY,
    key_hash     text NOT NULL REFERENCES api_keys (hash),
    amount_nanos bigint NOT NULL CHECK (amount_nanos >= 0),
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);

CREATE INDEX reservations_by_key ON reservations (key_hash, expires_at);

CREATE TABLE charges (
    id                text PRIMARY KEY,
    key_hash          text NOT NULL REFERENCES api_keys (hash),
    model             text NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cost_nanos        bigint NOT NULL CHECK (cost_nanos >= 0),
    estimated         boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL
);

CREATE INDEX charges_by_key ON charges (key_hash, created_at);
