DROP INDEX IF EXISTS idx_stripe_events_waits_for;
ALTER TABLE stripe_events DROP COLUMN IF EXISTS waits_for;
