-- Stripe: the webhook inbox, the subscription fields the sync needs, and e-mail deliveries (rows first,
-- sent by the e-mail workers).

-- Every verified delivery, stored before it is processed. Bodies that verify but do not parse are kept
-- too (status 'unparseable', raw body, id 'unparseable:<sha256>') so operators can see them.
CREATE TABLE stripe_events (
    id VARCHAR(255) PRIMARY KEY,
    type VARCHAR(100) NOT NULL DEFAULT '',
    api_version VARCHAR(50),
    livemode BOOLEAN NOT NULL DEFAULT FALSE,
    -- The event's own creation time (1-second resolution).
    created TIMESTAMPTZ,
    -- data.object.id and data.object.object, for lookups and replay filters.
    object_id VARCHAR(255),
    object_type VARCHAR(100),
    payload JSONB,
    raw_body TEXT,
    received_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    status VARCHAR(20) NOT NULL DEFAULT 'received',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    processed_at TIMESTAMPTZ,
    job_id UUID,
    CONSTRAINT valid_stripe_event_status CHECK (status IN ('received', 'processed', 'ignored', 'failed', 'unparseable', 'quarantined')),
    CONSTRAINT stripe_event_body CHECK (payload IS NOT NULL OR raw_body IS NOT NULL)
);
CREATE INDEX idx_stripe_events_status ON stripe_events (status, received_at DESC);
CREATE INDEX idx_stripe_events_type ON stripe_events (type, received_at DESC);
CREATE INDEX idx_stripe_events_object ON stripe_events (object_id);

ALTER TABLE subscriptions
    ADD COLUMN stripe_customer_id VARCHAR(255),
    -- Ordering guard: the (event.created, status rank) of the last applied Stripe state.
    ADD COLUMN stripe_event_at TIMESTAMPTZ,
    ADD COLUMN stripe_status_rank SMALLINT,
    -- When the subscription ended (access ends); cancelled_at is when the customer asked to cancel.
    ADD COLUMN ended_at TIMESTAMPTZ,
    -- End of a past-due grace period (access until then).
    ADD COLUMN grace_until TIMESTAMPTZ;
CREATE INDEX idx_subscriptions_stripe_customer ON subscriptions (stripe_customer_id);

ALTER TABLE billing_history
    ADD COLUMN stripe_invoice_id VARCHAR(255),
    ADD COLUMN description VARCHAR(255);
CREATE INDEX idx_billing_history_invoice ON billing_history (stripe_invoice_id);

CREATE TABLE email_deliveries (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID REFERENCES users(id) ON DELETE SET NULL,
    template VARCHAR(100) NOT NULL,
    recipient VARCHAR(255) NOT NULL,
    data JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- One delivery per logical e-mail (e.g. 'dunning:in_123:2', 'trial_ending:sub_9:2026-12-01').
    dedupe_key VARCHAR(255) NOT NULL UNIQUE,
    status VARCHAR(20) NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    message_id VARCHAR(255),
    scheduled_for TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    sent_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT valid_delivery_status CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'suppressed')),
    CONSTRAINT valid_recipient CHECK (recipient ~ '^[^@\s]+@[^@\s]+$')
);
CREATE INDEX idx_email_deliveries_status ON email_deliveries (status, scheduled_for);
CREATE INDEX idx_email_deliveries_user ON email_deliveries (user_id, created_at DESC);
