DROP TABLE IF EXISTS usage_counters;
DROP FUNCTION IF EXISTS mingus_usage_period(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS mingus_anniversary(timestamptz, integer);
DROP FUNCTION IF EXISTS mingus_usage_anchor(uuid, timestamptz);
DROP FUNCTION IF EXISTS mingus_billing_anchor(timestamptz, timestamptz);
DROP FUNCTION IF EXISTS mingus_effective_subscription(uuid, timestamptz);
