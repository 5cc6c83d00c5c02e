-- Roles, the auth.uid() wrapper used by row-level security, and the monthly-partition helper.
--
-- mingus_app: what the API switches to (SET LOCAL ROLE) for user-scoped queries; row-level security
-- applies to it. Roles are cluster-wide, so this creates it only when missing and the down migration
-- leaves it in place (other databases of the cluster may use it).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mingus_app') THEN
        CREATE ROLE mingus_app NOLOGIN NOBYPASSRLS;
    END IF;
END
$$;

CREATE SCHEMA auth;

-- The current user of a user-scoped transaction, or NULL when none is set (then no policy matches).
CREATE FUNCTION auth.uid() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

GRANT USAGE ON SCHEMA auth TO mingus_app;
GRANT USAGE ON SCHEMA public TO mingus_app;

-- Creates the monthly partitions [first_month, first_month + months) of a table range-partitioned by a
-- date column, named <table>_pYYYY_MM. Idempotent: existing partitions are left alone.
CREATE FUNCTION mingus_ensure_monthly_partitions(parent regclass, first_month date, months integer)
    RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    month_start date := date_trunc('month', first_month)::date;
    created integer := 0;
    partition_name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        partition_name := format('%s_p%s', parent::text, to_char(month_start, 'YYYY_MM'));
        IF to_regclass(partition_name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                partition_name, parent, month_start, (month_start + interval '1 month')::date
            );
            created := created + 1;
        END IF;
        month_start := (month_start + interval '1 month')::date;
    END LOOP;
    RETURN created;
END
$$;
