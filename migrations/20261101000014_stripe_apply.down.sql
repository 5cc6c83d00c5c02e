DROP FUNCTION IF EXISTS mingus_guard_allows(timestamptz, smallint, timestamptz, smallint, boolean);
DROP FUNCTION IF EXISTS mingus_recompute_access(uuid, timestamptz);
