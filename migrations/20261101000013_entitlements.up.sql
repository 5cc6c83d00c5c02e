-- Entitlements and metered usage (issue 5): usage counters per billing period, the SQL that decides a
-- user's usage period (their own billing anniversary) and the effective subscription.

-- The subscription that decides a user's access at `p_at`: one granting access now (the highest tier if
-- several do), else the one whose access ended last: the rules of `billing::access`, used by the access
-- recompute (`mingus_recompute_access`, …14) and by entitlement checks.
CREATE FUNCTION mingus_effective_subscription(p_user_id uuid, p_at timestamptz)
    RETURNS TABLE (id uuid, plan_tier varchar, status varchar, stripe_status varchar,
                   current_period_start timestamptz, current_period_end timestamptz,
                   access_end timestamptz, has_access boolean, ended_at timestamptz)
    LANGUAGE sql STABLE
    AS $$
    WITH access AS (
        SELECT s.id, s.plan_tier, s.status, s.stripe_status, s.current_period_start, s.current_period_end,
            s.ended_at, s.created_at,
            CASE
                WHEN s.status = 'trial' THEN coalesce(s.trial_end, s.current_period_end)
                WHEN s.status = 'active' THEN s.current_period_end
                WHEN s.status = 'past_due' AND (s.stripe_status IS NULL OR s.stripe_status IN ('past_due', 'active'))
                    THEN coalesce(s.grace_until, s.current_period_end)
            END AS access_end
        FROM subscriptions s WHERE s.user_id = p_user_id
    )
    SELECT a.id, a.plan_tier, a.status, a.stripe_status, a.current_period_start, a.current_period_end,
        a.access_end, coalesce(a.access_end > p_at, false), a.ended_at
    FROM access a
    ORDER BY coalesce(a.access_end > p_at, false) DESC,
        CASE WHEN a.access_end > p_at
            THEN array_position(ARRAY['essentials', 'professional', 'executive']::text[], a.plan_tier::text) END
            DESC NULLS LAST,
        coalesce(a.access_end, a.ended_at) DESC NULLS LAST,
        a.created_at DESC
    LIMIT 1
    $$;

-- An instant on the billing anniversary of a subscription's current period [p_start, p_end). Renewals
-- move the period start to the clamped anniversary (an anchor on the 31st renews on Feb 28), so a start
-- on the last day of its month followed by a later day of month in the end is read from the end.
CREATE FUNCTION mingus_billing_anchor(p_start timestamptz, p_end timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE
        WHEN (p_start AT TIME ZONE 'UTC')::date
                 = (date_trunc('month', p_start AT TIME ZONE 'UTC') + interval '1 month' - interval '1 day')::date
             AND extract(day FROM p_end AT TIME ZONE 'UTC') > extract(day FROM p_start AT TIME ZONE 'UTC')
            THEN p_end
        ELSE p_start
    END
    $$;

-- The instant usage periods are counted from: the effective subscription's billing anniversary, else the
-- account's creation.
CREATE FUNCTION mingus_usage_anchor(p_user_id uuid, p_at timestamptz) RETURNS timestamptz
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce(
        (SELECT mingus_billing_anchor(e.current_period_start, e.current_period_end)
         FROM mingus_effective_subscription(p_user_id, p_at) e),
        (SELECT u.created_at FROM users u WHERE u.id = p_user_id))
    $$;

-- The `p_months`-th monthly anniversary of `p_anchor` (UTC): same day of month and time of day, the day
-- clamped to the month's last day (an anchor on the 31st gives Feb 28/29, Apr 30, then May 31 again).
-- Computed from the anchor each time, so clamping never drifts.
CREATE FUNCTION mingus_anniversary(p_anchor timestamptz, p_months integer) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT ((month_start
             + (least(extract(day FROM p_anchor AT TIME ZONE 'UTC')::int,
                      extract(day FROM month_start + interval '1 month' - interval '1 day')::int) - 1)
               * interval '1 day'
             + (p_anchor AT TIME ZONE 'UTC')::time)
            AT TIME ZONE 'UTC')
    FROM (SELECT date_trunc('month', p_anchor AT TIME ZONE 'UTC') + p_months * interval '1 month') m(month_start)
    $$;

-- The usage period (monthly anniversaries of `p_anchor`) that contains `p_at`: [period_start, period_end).
CREATE FUNCTION mingus_usage_period(p_anchor timestamptz, p_at timestamptz)
    RETURNS TABLE (period_start timestamptz, period_end timestamptz)
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT mingus_anniversary(p_anchor, k), mingus_anniversary(p_anchor, k + 1)
    FROM (SELECT CASE WHEN mingus_anniversary(p_anchor, n) > p_at THEN n - 1 ELSE n END
          FROM (SELECT ((extract(year FROM p_at AT TIME ZONE 'UTC') - extract(year FROM p_anchor AT TIME ZONE 'UTC')) * 12
                        + extract(month FROM p_at AT TIME ZONE 'UTC') - extract(month FROM p_anchor AT TIME ZONE 'UTC'))::int) c(n)
         ) p(k)
    $$;

-- One row per user, metric and usage period; rows of past periods are kept as history.
CREATE TABLE usage_counters (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    metric VARCHAR(100) NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    period_end TIMESTAMPTZ NOT NULL,
    used BIGINT NOT NULL DEFAULT 0,
    -- The limit the latest consume was checked against (NULL: unlimited, or nothing consumed yet).
    limit_at_last_use BIGINT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT usage_counters_period UNIQUE (user_id, metric, period_start),
    CONSTRAINT valid_usage_period CHECK (period_end > period_start),
    CONSTRAINT valid_usage_used CHECK (used >= 0),
    CONSTRAINT valid_usage_metric CHECK (metric ~ '^[a-z][a-z0-9_]*$')
);
-- The reset sweep finds ended periods.
CREATE INDEX idx_usage_counters_period_end ON usage_counters(period_end);

ALTER TABLE usage_counters ENABLE ROW LEVEL SECURITY;
CREATE POLICY usage_counters_owner ON usage_counters FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
-- Users read their usage; only the server counts it.
GRANT SELECT ON usage_counters TO mingus_app;
