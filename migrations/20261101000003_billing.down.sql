DROP TABLE IF EXISTS feature_access;
DROP TABLE IF EXISTS billing_history;
DROP TABLE IF EXISTS subscriptions;
DROP FUNCTION IF EXISTS mingus_access_level(jsonb);
DROP TABLE IF EXISTS pricing_tiers;
