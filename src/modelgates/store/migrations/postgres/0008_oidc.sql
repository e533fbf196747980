-- Single sign-on (OpenID Connect). A person is identified by the provider's issuer
-- and subject (sub); a sign-in in flight keeps only the hashes of its state and of
-- the browser token it is bound to. Accounts made by single sign-on have an empty
-- password_hash (no password).

ALTER TABLE users ADD COLUMN is_admin boolean NOT NULL DEFAULT false;

CREATE TABLE oidc_identities (
    issuer     text NOT NULL,
    subject    text NOT NULL,
    user_id    text NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX oidc_identities_by_user ON oidc_identities (user_id);

CREATE TABLE oidc_sign_ins (
    state_hash   text PRIMARY KEY,
    browser_hash text NOT NULL,
    next_path    text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);

CREATE INDEX oidc_sign_ins_by_expiry ON oidc_sign_ins (expires_at);
