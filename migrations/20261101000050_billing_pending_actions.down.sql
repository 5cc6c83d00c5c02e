DROP TRIGGER IF EXISTS settle_billing_pending ON subscriptions;
DROP FUNCTION IF EXISTS mingus_settle_billing_pending();
DROP TABLE IF EXISTS billing_pending_actions;
