-- The revision of what authentication reads of the keys: bumped by every change of a
-- key (every column but the usage counters and last_used_at, which each charge
-- updates) and of the user flags read with it (disabled, whether there is a budget).
-- Each process keeps the keys it authenticated (modelgates.keycache) and reads this
-- number before it uses one: a new number, from any process, empties its cache.
-- A column that authentication comes to read must be added to these lists.
CREATE TABLE key_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);

INSERT INTO key_revision (id, n) VALUES (1, 0);

CREATE TRIGGER api_keys_revision_update
AFTER UPDATE OF hash, user_id, app_id, name, label, limit_nanos, limit_reset, expires_at,
    disabled, revoked_at, is_management, issued_by_code, created_at, updated_at,
    parent_key_hash, allowed_models, rotated_to, grace_until ON api_keys
BEGIN
    UPDATE key_revision SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER api_keys_revision_delete AFTER DELETE ON api_keys
BEGIN
    UPDATE key_revision SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER users_revision_update AFTER UPDATE OF id, disabled, limit_nanos ON users
BEGIN
    UPDATE key_revision SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER users_revision_delete AFTER DELETE ON users
BEGIN
    UPDATE key_revision SET n = n + 1 WHERE id = 1;
END;
