-- Store.create_code for a code bound to a challenge, in one round trip: the advisory
-- lock that serialises codes of one (user, challenge), the check for a live code with
-- that challenge (the 409), and the insert. A function rather than one statement:
-- under READ COMMITTED each statement of a volatile function takes a new snapshot,
-- so the check sees every code committed before the lock was granted (a single
-- statement's snapshot would predate the lock). p_code holds every column of
-- auth_codes by name. Returns false, inserting nothing, on a clash.
CREATE FUNCTION modelgates_create_code(p_code jsonb, p_now timestamptz) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(
        (p_code ->> 'user_id') || ':' || (p_code ->> 'code_challenge'), 0));
    IF EXISTS (SELECT 1 FROM auth_codes
               WHERE user_id = p_code ->> 'user_id'
                 AND code_challenge = p_code ->> 'code_challenge'
                 AND used_at IS NULL AND expires_at > p_now) THEN
        RETURN false;
    END IF;
    INSERT INTO auth_codes SELECT * FROM jsonb_populate_record(NULL::auth_codes, p_code);
    RETURN true;
END
$$;
