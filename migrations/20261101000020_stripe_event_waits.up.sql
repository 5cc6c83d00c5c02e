-- Dependency-driven re-drive of Stripe events (worker/src/stripe/waits.rs): an event that cannot be
-- applied until something else is (a customer linked to a user, a subscription or invoice recorded)
-- notes what it waits for; applying that re-drives it at once instead of after its backoff.
ALTER TABLE stripe_events ADD COLUMN waits_for VARCHAR(300);
-- Only parked events are indexed: the lookup after every applied event finds nothing almost always.
CREATE INDEX idx_stripe_events_waits_for ON stripe_events (waits_for) WHERE waits_for IS NOT NULL;
