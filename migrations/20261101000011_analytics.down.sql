DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_extension
        WHERE extname = 'pg_stat_statements'
          AND obj_description(oid, 'pg_extension') = 'created by mingus migration 20261101000011'
    ) THEN
        DROP EXTENSION pg_stat_statements;
    END IF;
END
$$;
-- Refuses (RESTRICT) while archived partitions are in it: deleting archives is an operator's decision.
DROP SCHEMA IF EXISTS archive;
DROP TABLE IF EXISTS partitioned_tables;
DROP TABLE IF EXISTS goals;
DROP TABLE IF EXISTS activity_events;
ALTER FUNCTION mingus_ensure_monthly_partitions(regclass, date, integer) RESET timezone;
