-- Single sign-on (OpenID Connect). A person is identified by the provider's issuer
-- and subject (sub); a sign-in in flight keeps only the hashes of its state and of
-- the browser token it is bound to. Accounts made by single sign-on have an empty
-- password_hash (no password).

ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;

CREATE TABLE oidc_identities (
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX oidc_identities_by_user ON oidc_identities (user_id);

CREATE TABLE oidc_sign_ins (
    state_hash   TEXT PRIMARY KEY,
    browser_hash TEXT NOT NULL,
    next_path    TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);

CREATE INDEX oidc_sign_ins_by_expiry ON oidc_sign_ins (expires_at);
