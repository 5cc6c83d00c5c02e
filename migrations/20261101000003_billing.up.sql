-- Pricing tiers, subscriptions, billing history and feature access.
-- Money is DECIMAL(12,2) with range checks (the seed's DECIMAL(10,2) widened to the design's money type).

CREATE TABLE pricing_tiers (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    tier_name VARCHAR(50) NOT NULL UNIQUE,
    display_name VARCHAR(100) NOT NULL,
    monthly_price DECIMAL(12,2) NOT NULL,
    annual_price DECIMAL(12,2) NOT NULL,
    -- Feature name -> access level, as the seed's "Feature Access by Tier" defines it (an object, where the
    -- seed's first sketch had a bare array). Levels: none/basic/premium/unlimited, plus the seed's
    -- "priority"/"dedicated" support levels and `true` flags; mingus_access_level() maps them onto
    -- feature_access's four levels.
    features JSONB NOT NULL,
    -- Usage limits per period; -1 means unlimited.
    limits JSONB NOT NULL DEFAULT '{}'::jsonb,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT valid_tier_name CHECK (tier_name IN ('essentials', 'professional', 'executive')),
    CONSTRAINT valid_monthly_price CHECK (monthly_price >= 0 AND monthly_price <= 100000),
    CONSTRAINT valid_annual_price CHECK (annual_price >= 0 AND annual_price <= 1000000),
    CONSTRAINT features_is_object CHECK (jsonb_typeof(features) = 'object'),
    CONSTRAINT limits_is_object CHECK (jsonb_typeof(limits) = 'object')
);

INSERT INTO pricing_tiers (tier_name, display_name, monthly_price, annual_price, features, limits) VALUES
('essentials', 'Essentials', 10.00, 100.00,
 '{"basic_analytics": "basic", "goal_setting": "unlimited", "email_support": "basic", "mobile_app_access": "unlimited"}',
 '{"health_checkins_per_month": 4, "financial_reports_per_month": 2, "goal_tracking": 3, "ai_insights_per_month": 0, "custom_reports": 0, "custom_reports_per_month": 0, "team_members": 0, "api_access": false}'),
('professional', 'Professional', 29.00, 290.00,
 '{"basic_analytics": "premium", "goal_setting": "unlimited", "email_support": "priority", "mobile_app_access": "unlimited", "advanced_ai_insights": "premium", "career_risk_management": "unlimited", "custom_reports": "premium", "portfolio_optimization": "unlimited"}',
 '{"health_checkins_per_month": 12, "financial_reports_per_month": 10, "goal_tracking": 10, "ai_insights_per_month": 50, "custom_reports_per_month": 5, "team_members": 0, "api_access": false}'),
('executive', 'Executive', 99.00, 990.00,
 '{"basic_analytics": "unlimited", "goal_setting": "unlimited", "email_support": "dedicated", "mobile_app_access": "unlimited", "advanced_ai_insights": "unlimited", "career_risk_management": "unlimited", "custom_reports": "unlimited", "portfolio_optimization": "unlimited", "dedicated_account_manager": true, "custom_integrations": "unlimited", "advanced_security": true, "team_management": "unlimited", "api_access": "unlimited"}',
 '{"health_checkins_per_month": -1, "financial_reports_per_month": -1, "goal_tracking": -1, "ai_insights_per_month": -1, "custom_reports_per_month": -1, "team_members": 10, "api_calls_per_hour": 10000}');

-- Maps a tier's feature value onto feature_access's access levels.
CREATE FUNCTION mingus_access_level(value jsonb) RETURNS varchar
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE
        WHEN value IS NULL OR value = 'false'::jsonb OR value = 'null'::jsonb THEN 'none'
        WHEN value = 'true'::jsonb THEN 'unlimited'
        WHEN value #>> '{}' = 'priority' THEN 'premium'
        WHEN value #>> '{}' = 'dedicated' THEN 'unlimited'
        WHEN value #>> '{}' IN ('none', 'basic', 'premium', 'unlimited') THEN value #>> '{}'
        ELSE 'none'
    END
    $$;

CREATE TABLE subscriptions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Billing records are kept when a user is deleted: deleting a user with subscriptions is refused.
    user_id UUID NOT NULL REFERENCES users(id),
    plan_tier VARCHAR(50) NOT NULL,
    plan_price DECIMAL(12,2) NOT NULL,
    currency CHAR(3) NOT NULL DEFAULT 'USD',
    billing_cycle VARCHAR(20) NOT NULL,
    status VARCHAR(20) NOT NULL,
    current_period_start TIMESTAMPTZ NOT NULL,
    current_period_end TIMESTAMPTZ NOT NULL,
    trial_start TIMESTAMPTZ,
    trial_end TIMESTAMPTZ,
    -- When the customer asked to cancel; access may continue until the period ends.
    cancelled_at TIMESTAMPTZ,
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
    -- Stripe links and the raw Stripe status kept beside the local one.
    stripe_subscription_id VARCHAR(255),
    stripe_price_id VARCHAR(255),
    stripe_status VARCHAR(30),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT valid_plan_tier CHECK (plan_tier IN ('essentials', 'professional', 'executive')),
    CONSTRAINT valid_billing_cycle CHECK (billing_cycle IN ('monthly', 'annual')),
    CONSTRAINT valid_status CHECK (status IN ('active', 'cancelled', 'past_due', 'trial')),
    CONSTRAINT valid_plan_price CHECK (plan_price >= 0 AND plan_price <= 1000000),
    CONSTRAINT valid_currency CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT valid_period CHECK (current_period_end >= current_period_start),
    CONSTRAINT valid_trial CHECK (trial_end IS NULL OR trial_start IS NULL OR trial_end >= trial_start),
    CONSTRAINT valid_stripe_status CHECK (stripe_status IN (
        'trialing', 'active', 'past_due', 'unpaid', 'incomplete', 'incomplete_expired', 'canceled', 'paused'))
);
CREATE INDEX idx_subscriptions_user_id ON subscriptions(user_id);
CREATE INDEX idx_subscriptions_status ON subscriptions(status);
CREATE INDEX idx_subscriptions_period_end ON subscriptions(current_period_end);
CREATE INDEX idx_subscriptions_user_status ON subscriptions(user_id, status);
CREATE UNIQUE INDEX idx_subscriptions_stripe_id ON subscriptions(stripe_subscription_id) WHERE stripe_subscription_id IS NOT NULL;

CREATE TABLE billing_history (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    subscription_id UUID NOT NULL REFERENCES subscriptions(id),
    user_id UUID NOT NULL REFERENCES users(id),
    amount DECIMAL(12,2) NOT NULL,
    currency VARCHAR(3) NOT NULL DEFAULT 'USD',
    status VARCHAR(20) NOT NULL,
    payment_method VARCHAR(50),
    -- Stripe invoice / charge / refund id: a replayed event never adds a second row.
    transaction_id VARCHAR(255),
    invoice_url VARCHAR(500),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT valid_status CHECK (status IN ('paid', 'failed', 'pending', 'refunded')),
    CONSTRAINT valid_amount CHECK (amount >= 0 AND amount <= 10000000),
    CONSTRAINT valid_currency CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT valid_payment_method CHECK (payment_method IN ('stripe', 'paypal', 'apple_pay'))
);
CREATE INDEX idx_billing_history_user_id ON billing_history(user_id);
CREATE INDEX idx_billing_history_subscription_id ON billing_history(subscription_id);
CREATE INDEX idx_billing_history_created_at ON billing_history(created_at);
CREATE UNIQUE INDEX idx_billing_history_transaction_id ON billing_history(transaction_id) WHERE transaction_id IS NOT NULL;

CREATE TABLE feature_access (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    feature_name VARCHAR(100) NOT NULL,
    access_level VARCHAR(20) NOT NULL,
    granted_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at TIMESTAMPTZ,
    granted_by VARCHAR(100) NOT NULL DEFAULT 'subscription',
    CONSTRAINT valid_access_level CHECK (access_level IN ('none', 'basic', 'premium', 'unlimited')),
    CONSTRAINT valid_granted_by CHECK (granted_by IN ('subscription', 'promotion', 'admin'))
);
CREATE INDEX idx_feature_access_feature ON feature_access(feature_name);
-- Unique on (user, feature); it also serves lookups by user_id, so no separate user_id index.
CREATE UNIQUE INDEX idx_feature_access_user_feature ON feature_access(user_id, feature_name);
