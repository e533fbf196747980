-- Notifications of what authentication reads of the keys: every change of a key (every
-- column but the usage counters and last_used_at, which each charge updates) sends
-- 'k:<hash>', every change of the user flags read with it (disabled, whether there is
-- a budget) 'u:<user id>', on the channel modelgates_keys, when its transaction
-- commits. Each process keeps the keys it authenticated (modelgates.keycache) and
-- listens on that channel to forget them. A column that authentication comes to read
-- must be added to these lists.
CREATE FUNCTION modelgates_key_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        PERFORM pg_notify('modelgates_keys', '*');
    ELSIF TG_TABLE_NAME = 'users' THEN
        PERFORM pg_notify('modelgates_keys', 'u:' || OLD.id);
    ELSE
        PERFORM pg_notify('modelgates_keys', 'k:' || OLD.hash);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_changed
AFTER UPDATE OF hash, user_id, app_id, name, label, limit_nanos, limit_reset, expires_at,
    disabled, revoked_at, is_management, issued_by_code, created_at, updated_at,
    parent_key_hash, allowed_models, rotated_to, grace_until OR DELETE ON api_keys
FOR EACH ROW EXECUTE FUNCTION modelgates_key_changed();

CREATE TRIGGER users_changed AFTER UPDATE OF id, disabled, limit_nanos OR DELETE ON users
FOR EACH ROW EXECUTE FUNCTION modelgates_key_changed();

CREATE TRIGGER api_keys_truncated AFTER TRUNCATE ON api_keys
FOR EACH STATEMENT EXECUTE FUNCTION modelgates_key_changed();

CREATE TRIGGER users_truncated AFTER TRUNCATE ON users
FOR EACH STATEMENT EXECUTE FUNCTION modelgates_key_changed();
