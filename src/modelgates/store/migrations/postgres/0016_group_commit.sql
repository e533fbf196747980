-- Group commit: the admissions and settlements that one server process has waiting
-- share one statement, one transaction and one durable commit (see
-- store/postgres_batch.py). Settlements run first, in the order given, then
-- admissions, each exactly as its single-request function (modelgates_settle_alerting,
-- modelgates_reserve) would run it alone, so a batch decides what the same requests
-- would decide one after another. Row locks are taken in that order and held to the
-- commit; a batch that meets a deadlock (several processes) or any error fails whole,
-- and the caller runs its requests one by one instead.
--
-- One row per settlement (kind 's', its position n, the alerts it fired) and one per
-- admission whose key exists (kind 'r', n, and modelgates_reserve's columns).
CREATE FUNCTION modelgates_meter_batch(
    s_ids text[], s_records jsonb[],
    s_days timestamptz[], s_weeks timestamptz[], s_months timestamptz[],
    p_thresholds integer[],
    r_hashes text[], r_ids text[], r_fixed bigint[], r_per_million numeric[],
    r_tokens bigint[], r_caps bigint[], r_now timestamptz[], r_expires timestamptz[],
    r_days timestamptz[], r_weeks timestamptz[], r_months timestamptz[]
) RETURNS TABLE (
    kind text, n integer, fired integer, key_row api_keys, amount bigint, granted bigint,
    refused_scope text, refused text, affordable bigint
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    i integer;
    r record;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(s_ids), 0) LOOP
        kind := 's';
        n := i;
        fired := modelgates_settle_alerting(
            s_ids[i], s_records[i], s_days[i], s_weeks[i], s_months[i], p_thresholds);
        key_row := NULL;
        amount := NULL;
        granted := NULL;
        refused_scope := NULL;
        refused := NULL;
        affordable := NULL;
        RETURN NEXT;
    END LOOP;
    FOR i IN 1 .. coalesce(cardinality(r_hashes), 0) LOOP
        FOR r IN SELECT * FROM modelgates_reserve(
            r_hashes[i], r_ids[i], r_fixed[i], r_per_million[i], r_tokens[i], r_caps[i],
            r_now[i], r_expires[i], r_days[i], r_weeks[i], r_months[i])
        LOOP
            kind := 'r';
            n := i;
            fired := NULL;
            key_row := r.key_row;
            amount := r.amount;
            granted := r.granted;
            refused_scope := r.refused_scope;
            refused := r.refused;
            affordable := r.affordable;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END
$$;
