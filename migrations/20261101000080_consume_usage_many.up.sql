-- Group commit for the metered-usage API (issue 21): the consumes that reach one API process together
-- are applied by one statement and one commit, in the order given, each exactly as
-- `mingus_consume_usage()` applies it alone (a key seen earlier in the same call is a replay of it).
-- The caller sorts the batch by account and metric, so concurrent batches take the counter rows' locks
-- in one order.
CREATE FUNCTION mingus_consume_usage_many(p_user_ids uuid[], p_keys text[], p_metrics text[],
                                          p_amounts bigint[], p_limits bigint[],
                                          p_period_starts timestamptz[],
                                          p_period_ends timestamptz[], p_requested_by uuid[])
    RETURNS TABLE (o_index integer, o_outcome text, o_used bigint, o_metric text,
                   o_amount bigint, o_period_end timestamptz)
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_count integer := coalesce(array_length(p_user_ids, 1), 0);
BEGIN
    IF coalesce(array_length(p_keys, 1), 0) <> v_count
       OR coalesce(array_length(p_metrics, 1), 0) <> v_count
       OR coalesce(array_length(p_amounts, 1), 0) <> v_count
       OR coalesce(array_length(p_limits, 1), 0) <> v_count
       OR coalesce(array_length(p_period_starts, 1), 0) <> v_count
       OR coalesce(array_length(p_period_ends, 1), 0) <> v_count
       OR coalesce(array_length(p_requested_by, 1), 0) <> v_count THEN
        RAISE EXCEPTION 'mingus_consume_usage_many: arrays of different lengths';
    END IF;
    FOR i IN 1 .. v_count LOOP
        RETURN QUERY
            SELECT i, c.o_outcome, c.o_used, c.o_metric, c.o_amount, c.o_period_end
            FROM mingus_consume_usage(p_user_ids[i], p_keys[i], p_metrics[i], p_amounts[i],
                                      p_limits[i], p_period_starts[i], p_period_ends[i],
                                      p_requested_by[i]) c;
    END LOOP;
END
$$;
