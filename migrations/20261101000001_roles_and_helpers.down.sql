DROP FUNCTION IF EXISTS mingus_ensure_monthly_partitions(regclass, date, integer);
REVOKE USAGE ON SCHEMA public FROM mingus_app;
DROP SCHEMA IF EXISTS auth CASCADE;
-- The mingus_app role is cluster-wide and may serve other databases: it is deliberately kept.
