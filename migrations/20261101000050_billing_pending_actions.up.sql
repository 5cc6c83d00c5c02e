-- Plan requests Stripe accepted and whose webhook has not been applied yet (issue 21, part C): shown to
-- the owner by `GET /v1/billing` ("upgrade to Executive pending", "downgrade to Essentials on 1 March").
-- Display only: `subscriptions` still changes only through Stripe's webhooks. Written by the API after
-- Stripe answered (never inside a transaction spanning the call); settled by the trigger below when the
-- subscription row it asked for is written.
CREATE TABLE billing_pending_actions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    action VARCHAR(20) NOT NULL,
    tier VARCHAR(50) NOT NULL,
    cycle VARCHAR(20) NOT NULL,
    -- The Checkout Session, subscription or subscription schedule Stripe created or changed.
    stripe_object_id VARCHAR(255) NOT NULL,
    -- The subscription changed (NULL for a checkout: it has none yet).
    stripe_subscription_id VARCHAR(255),
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- When the change is due to apply: the period end of a downgrade; NULL = as soon as Stripe says.
    effective_at TIMESTAMPTZ,
    -- A checkout session expires unused (Stripe's `expires_at`); it is then no longer shown.
    expires_at TIMESTAMPTZ,
    settled_at TIMESTAMPTZ,
    outcome VARCHAR(20),
    CONSTRAINT valid_pending_action CHECK (action IN ('checkout', 'upgrade', 'downgrade')),
    CONSTRAINT valid_pending_tier CHECK (tier IN ('essentials', 'professional', 'executive')),
    CONSTRAINT valid_pending_cycle CHECK (cycle IN ('monthly', 'annual')),
    CONSTRAINT valid_pending_outcome CHECK (outcome IN ('applied', 'superseded')),
    CONSTRAINT settled_with_outcome CHECK ((settled_at IS NULL) = (outcome IS NULL))
);
-- Only unsettled rows are ever looked up (by the trigger on every subscription write, and for display).
CREATE INDEX idx_billing_pending_open ON billing_pending_actions(user_id) WHERE settled_at IS NULL;

-- Settles the owner's open requests when a Stripe subscription row is written: a request whose plan
-- (tier and cycle) the row now has is `applied`; every open request on a subscription that ended is
-- `superseded` (a scheduled downgrade of a cancelled subscription never happens). A trigger rather
-- than a step in the worker, so both of its write paths (`mingus_upsert_subscription_state` and
-- `mingus_apply_subscription_state`) and reconciliation settle alike, in the same transaction.
CREATE FUNCTION mingus_settle_billing_pending() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE billing_pending_actions p
       SET settled_at = now(),
           outcome = CASE WHEN NEW.status = 'cancelled' THEN 'superseded' ELSE 'applied' END
     WHERE p.user_id = NEW.user_id
       AND p.settled_at IS NULL
       AND (p.stripe_subscription_id IS NULL OR p.stripe_subscription_id = NEW.stripe_subscription_id)
       AND (NEW.status = 'cancelled' AND p.stripe_subscription_id IS NOT NULL
            OR NEW.status <> 'cancelled' AND p.tier = NEW.plan_tier AND p.cycle = NEW.billing_cycle);
    RETURN NULL;
END
$$;

CREATE TRIGGER settle_billing_pending
    AFTER INSERT OR UPDATE ON subscriptions
    FOR EACH ROW WHEN (NEW.stripe_subscription_id IS NOT NULL)
    EXECUTE FUNCTION mingus_settle_billing_pending();
