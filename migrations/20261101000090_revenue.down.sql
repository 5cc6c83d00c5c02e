DROP FUNCTION IF EXISTS mingus_revenue_compute(date, date);
DROP TABLE IF EXISTS revenue_cohorts;
DROP TABLE IF EXISTS revenue_daily_tiers;
DROP TABLE IF EXISTS revenue_daily;
DROP TRIGGER IF EXISTS subscriptions_record_change ON subscriptions;
DROP TRIGGER IF EXISTS subscriptions_record_insert ON subscriptions;
DROP FUNCTION IF EXISTS mingus_record_subscription_change();
DROP FUNCTION IF EXISTS mingus_mrr(text, text, text, numeric);
DROP TABLE IF EXISTS subscription_changes;
