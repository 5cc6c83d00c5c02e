DROP TABLE IF EXISTS email_deliveries;
DROP INDEX IF EXISTS idx_billing_history_invoice;
ALTER TABLE billing_history DROP COLUMN IF EXISTS description, DROP COLUMN IF EXISTS stripe_invoice_id;
DROP INDEX IF EXISTS idx_subscriptions_stripe_customer;
ALTER TABLE subscriptions
    DROP COLUMN IF EXISTS grace_until,
    DROP COLUMN IF EXISTS ended_at,
    DROP COLUMN IF EXISTS stripe_status_rank,
    DROP COLUMN IF EXISTS stripe_event_at,
    DROP COLUMN IF EXISTS stripe_customer_id;
DROP TABLE IF EXISTS stripe_events;
