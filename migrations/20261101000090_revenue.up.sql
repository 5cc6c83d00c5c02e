-- Revenue and retention: the history of every subscription's state (`subscription_changes`, written by a
-- trigger, so every path that changes a subscription — Stripe events, the sweeps, imports, operators —
-- leaves a row), what a state is worth a month (`mingus_mrr`), and the nightly facts computed from that
-- history (`revenue_daily`, `revenue_daily_tiers`, `revenue_cohorts`) by `mingus_revenue_compute`.
-- The definitions are in common/src/revenue/README.md.

CREATE TABLE subscription_changes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id UUID NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    user_id UUID NOT NULL,
    -- When the change happened: the Stripe event's time for Stripe changes, the end for an ending, the
    -- sweep's clock for a sweep; never before the subscription's previous change.
    changed_at TIMESTAMPTZ NOT NULL,
    status VARCHAR(20) NOT NULL,
    stripe_status VARCHAR(30),
    plan_tier VARCHAR(50) NOT NULL,
    billing_cycle VARCHAR(20) NOT NULL,
    plan_price DECIMAL(12,2) NOT NULL,
    currency CHAR(3) NOT NULL,
    cancel_at_period_end BOOLEAN NOT NULL,
    -- Who changed it: 'stripe:<event id>', 'sweep:<transition>', 'local', 'reconstructed' (rows this
    -- migration derived from subscriptions that existed before it), or what `mingus.change_source` said.
    source VARCHAR(160) NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_subscription_changes_subscription ON subscription_changes (subscription_id, changed_at);
CREATE INDEX idx_subscription_changes_user ON subscription_changes (user_id, changed_at);

-- What a subscription in this state brings in a month, in its currency: active and past-due (dunning
-- grace) subscriptions count; trials, cancelled ones, and Stripe's paused, unpaid and incomplete ones do
-- not. Annual plans count a twelfth of their price, rounded to 4 decimals so every sum is exact.
CREATE FUNCTION mingus_mrr(p_status text, p_stripe_status text, p_cycle text, p_price numeric)
    RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_status NOT IN ('active', 'past_due') THEN 0
        WHEN p_stripe_status IN ('paused', 'unpaid', 'incomplete', 'incomplete_expired') THEN 0
        WHEN p_cycle = 'annual' THEN round(p_price / 12, 4)
        ELSE p_price
    END
$$;

CREATE FUNCTION mingus_record_subscription_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    -- A sweep passes its clock (tests run sweeps at other times than now) and its name.
    v_clock timestamptz := coalesce(nullif(current_setting('mingus.change_at', true), '')::timestamptz, now());
    v_source text := nullif(current_setting('mingus.change_source', true), '');
    v_at timestamptz;
    v_last timestamptz;
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_at := coalesce(NEW.stripe_event_at, NEW.created_at);
        IF NEW.stripe_event_id IS NOT NULL THEN
            v_source := coalesce(v_source, 'stripe:' || NEW.stripe_event_id);
        END IF;
    ELSE
        IF NEW.stripe_event_at IS NOT NULL AND NEW.stripe_event_at IS DISTINCT FROM OLD.stripe_event_at THEN
            v_at := NEW.stripe_event_at;
            v_source := coalesce(v_source, 'stripe:' || coalesce(NEW.stripe_event_id, 'unknown'));
        ELSIF NEW.status = 'cancelled' AND OLD.status <> 'cancelled' AND NEW.ended_at IS NOT NULL THEN
            -- A sweep ending a trial or a period runs a few minutes after the end: the end is the fact.
            v_at := least(NEW.ended_at, v_clock);
        ELSE
            v_at := v_clock;
        END IF;
        SELECT max(changed_at) INTO v_last FROM subscription_changes WHERE subscription_id = NEW.id;
        v_at := greatest(v_at, v_last);
    END IF;
    INSERT INTO subscription_changes (subscription_id, user_id, changed_at, status, stripe_status, plan_tier,
        billing_cycle, plan_price, currency, cancel_at_period_end, source)
    VALUES (NEW.id, NEW.user_id, v_at, NEW.status, NEW.stripe_status, NEW.plan_tier, NEW.billing_cycle,
        NEW.plan_price, NEW.currency, NEW.cancel_at_period_end, left(coalesce(v_source, 'local'), 160));
    RETURN NULL;
END
$$;

CREATE TRIGGER subscriptions_record_insert AFTER INSERT ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION mingus_record_subscription_change();
CREATE TRIGGER subscriptions_record_change AFTER UPDATE ON subscriptions
    FOR EACH ROW WHEN ((OLD.status, OLD.stripe_status, OLD.plan_tier, OLD.billing_cycle, OLD.plan_price,
                        OLD.currency, OLD.cancel_at_period_end)
                       IS DISTINCT FROM
                       (NEW.status, NEW.stripe_status, NEW.plan_tier, NEW.billing_cycle, NEW.plan_price,
                        NEW.currency, NEW.cancel_at_period_end))
    EXECUTE FUNCTION mingus_record_subscription_change();

-- The history of subscriptions that existed before this migration, reconstructed from their row: a trial
-- from trial_start when it had one, the plan from its start (or the trial's end) when it was paid for,
-- and the end when it ended. Their upgrades and downgrades before today are not known.
INSERT INTO subscription_changes (subscription_id, user_id, changed_at, status, stripe_status, plan_tier,
    billing_cycle, plan_price, currency, cancel_at_period_end, source)
SELECT id, user_id, at, st, sst, plan_tier, billing_cycle, plan_price, currency, cape, 'reconstructed'
FROM (
    SELECT s.*, s.trial_start AS at, 'trial' AS st, CASE WHEN s.stripe_status IS NOT NULL THEN 'trialing' END AS sst,
           false AS cape, 1 AS step
    FROM subscriptions s WHERE s.trial_start IS NOT NULL AND s.status <> 'trial'
    UNION ALL
    -- The current state (a trial from its start; a paid plan from the trial's end), or for an ended
    -- subscription the paid plan it had, when it outlived its trial.
    SELECT s.*, CASE WHEN s.status = 'trial' THEN coalesce(s.trial_start, s.stripe_started_at, s.created_at)
                     ELSE coalesce(CASE WHEN s.trial_start IS NOT NULL THEN s.trial_end END, s.stripe_started_at,
                                   s.created_at) END,
           CASE WHEN s.status = 'cancelled' THEN 'active' ELSE s.status END,
           CASE WHEN s.status = 'cancelled' AND s.stripe_status IS NOT NULL THEN 'active' ELSE s.stripe_status END,
           CASE WHEN s.status = 'cancelled' THEN false ELSE s.cancel_at_period_end END, 2
    FROM subscriptions s
    WHERE s.status <> 'cancelled' OR s.trial_start IS NULL OR s.trial_end IS NULL
       OR coalesce(s.ended_at, s.cancelled_at, s.updated_at) > s.trial_end
    UNION ALL
    SELECT s.*, greatest(coalesce(s.ended_at, s.cancelled_at, s.updated_at),
                         coalesce(s.trial_end, s.stripe_started_at, s.created_at)),
           'cancelled', s.stripe_status, s.cancel_at_period_end, 3
    FROM subscriptions s WHERE s.status = 'cancelled'
) r
WHERE at IS NOT NULL
ORDER BY id, step;

-- One row per UTC day and currency (amounts in that currency; never converted).
CREATE TABLE revenue_daily (
    day DATE NOT NULL,
    currency CHAR(3) NOT NULL,
    -- Monthly recurring revenue and paying customers at the end of the day.
    mrr NUMERIC(16,4) NOT NULL,
    customers INTEGER NOT NULL,
    -- The day's movements (all positive; churn and contraction reduce MRR).
    new_mrr NUMERIC(16,4) NOT NULL,
    expansion_mrr NUMERIC(16,4) NOT NULL,
    contraction_mrr NUMERIC(16,4) NOT NULL,
    churned_mrr NUMERIC(16,4) NOT NULL,
    reactivated_mrr NUMERIC(16,4) NOT NULL,
    new_customers INTEGER NOT NULL,
    reactivated_customers INTEGER NOT NULL,
    churned_customers INTEGER NOT NULL,
    -- Money that moved that day (billing_history).
    payments NUMERIC(16,2) NOT NULL,
    payment_count INTEGER NOT NULL,
    refunds NUMERIC(16,2) NOT NULL,
    refund_count INTEGER NOT NULL,
    failed_invoices INTEGER NOT NULL,
    recovered_invoices INTEGER NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (day, currency)
);

-- One row per UTC day and tier (counts of subscriptions, any currency).
CREATE TABLE revenue_daily_tiers (
    day DATE NOT NULL,
    plan_tier VARCHAR(50) NOT NULL,
    subscribers INTEGER NOT NULL,
    trialing INTEGER NOT NULL,
    trial_starts INTEGER NOT NULL,
    trial_conversions INTEGER NOT NULL,
    trial_losses INTEGER NOT NULL,
    computed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (day, plan_tier)
);

-- Monthly cohorts by the month of a customer's first payment, as of `as_of`.
CREATE TABLE revenue_cohorts (
    cohort_month DATE NOT NULL,
    month_offset SMALLINT NOT NULL,
    customers INTEGER NOT NULL,
    retained INTEGER NOT NULL,
    as_of DATE NOT NULL,
    PRIMARY KEY (cohort_month, month_offset)
);

-- Recomputes the facts of every day in p_from..p_to (UTC) from the whole history up to p_to: idempotent,
-- and the same whether run nightly for a few days or as a backfill of years. Returns the days written.
-- JIT off: its statements are sorts and window passes the planner costs high enough to compile, which
-- took a second a run and saved nothing (measured with auto_explain on 100,000 subscriptions).
CREATE FUNCTION mingus_revenue_compute(p_from date, p_to date) RETURNS integer LANGUAGE plpgsql
SET jit = off AS $$
DECLARE
    v_end timestamptz;
    v_first date;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_from > p_to OR p_to - p_from > 3660 THEN
        RAISE EXCEPTION 'revenue range % .. % is empty or longer than 3,660 days', p_from, p_to
            USING ERRCODE = '22023';
    END IF;
    v_end := (p_to + 1)::timestamp AT TIME ZONE 'UTC';
    -- Two computations at once would each delete and insert the same days.
    PERFORM pg_advisory_xact_lock(hashtextextended('mingus_revenue_compute', 0));

    -- Each subscription's state at the end of each day it changed, beside the day before's.
    IF to_regclass('pg_temp.revenue_sub_days') IS NOT NULL THEN DROP TABLE pg_temp.revenue_sub_days; END IF;
    CREATE TEMP TABLE revenue_sub_days ON COMMIT DROP AS
    SELECT d.*,
           coalesce(lag(d.mrr) OVER w, 0) AS prev_mrr,
           lag(d.user_id) OVER w AS prev_user,
           lag(d.currency) OVER w AS prev_currency,
           lag(d.plan_tier) OVER w AS prev_tier,
           lag(d.status) OVER w AS prev_status
    FROM (
        SELECT DISTINCT ON (c.subscription_id, c.day) c.subscription_id, c.user_id, c.day, c.status,
               c.plan_tier, c.currency, c.mrr
        FROM (
            SELECT sc.*, (sc.changed_at AT TIME ZONE 'UTC')::date AS day,
                   mingus_mrr(sc.status, sc.stripe_status, sc.billing_cycle, sc.plan_price) AS mrr
            FROM subscription_changes sc WHERE sc.changed_at < v_end
        ) c
        ORDER BY c.subscription_id, c.day, c.changed_at DESC, c.id DESC
    ) d
    WINDOW w AS (PARTITION BY d.subscription_id ORDER BY d.day);

    -- Each customer's MRR per currency at the end of each day it changed, the day before's, and whether
    -- they had paid in that currency before.
    IF to_regclass('pg_temp.revenue_user_days') IS NOT NULL THEN DROP TABLE pg_temp.revenue_user_days; END IF;
    CREATE TEMP TABLE revenue_user_days ON COMMIT DROP AS
    WITH deltas AS (
        SELECT user_id, currency::text AS currency, day, mrr AS d FROM revenue_sub_days WHERE mrr <> 0
        UNION ALL
        SELECT prev_user, prev_currency::text, day, -prev_mrr FROM revenue_sub_days WHERE prev_mrr <> 0
    ), user_day AS (
        SELECT user_id, currency, day, sum(d) AS delta FROM deltas GROUP BY user_id, currency, day
    ), levels AS (
        SELECT user_id, currency, day, sum(delta) OVER (PARTITION BY user_id, currency ORDER BY day) AS level
        FROM user_day
    )
    SELECT user_id, currency, day, level,
           coalesce(lag(level) OVER w, 0) AS prev_level,
           coalesce(bool_or(level > 0) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false)
               AS paid_before
    FROM levels
    WINDOW w AS (PARTITION BY user_id, currency ORDER BY day);

    SELECT min(day) INTO v_first FROM revenue_sub_days;
    v_first := least(coalesce(v_first, p_from), p_from);

    DELETE FROM revenue_daily WHERE day BETWEEN p_from AND p_to;
    INSERT INTO revenue_daily (day, currency, mrr, customers, new_mrr, expansion_mrr, contraction_mrr,
        churned_mrr, reactivated_mrr, new_customers, reactivated_customers, churned_customers, payments,
        payment_count, refunds, refund_count, failed_invoices, recovered_invoices)
    WITH moves AS (
        SELECT currency, day,
            sum(level - prev_level) AS net,
            sum(level) FILTER (WHERE prev_level = 0 AND level > 0 AND NOT paid_before) AS new_mrr,
            sum(level) FILTER (WHERE prev_level = 0 AND level > 0 AND paid_before) AS reactivated_mrr,
            sum(level - prev_level) FILTER (WHERE prev_level > 0 AND level > prev_level) AS expansion_mrr,
            sum(prev_level - level) FILTER (WHERE level > 0 AND level < prev_level) AS contraction_mrr,
            sum(prev_level) FILTER (WHERE prev_level > 0 AND level = 0) AS churned_mrr,
            count(*) FILTER (WHERE prev_level = 0 AND level > 0 AND NOT paid_before) AS new_customers,
            count(*) FILTER (WHERE prev_level = 0 AND level > 0 AND paid_before) AS reactivated_customers,
            count(*) FILTER (WHERE prev_level > 0 AND level = 0) AS churned_customers
        FROM revenue_user_days GROUP BY currency, day
    ), payments AS (
        SELECT b.currency::text AS currency, (b.created_at AT TIME ZONE 'UTC')::date AS day, b.status,
               b.amount,
               b.status = 'failed' AND NOT EXISTS (
                   SELECT 1 FROM billing_history e
                   WHERE e.stripe_invoice_id = b.stripe_invoice_id AND e.status = 'failed'
                     AND (e.created_at, e.id) < (b.created_at, b.id)) AS first_failure,
               b.status = 'paid' AND b.stripe_invoice_id IS NOT NULL AND EXISTS (
                   SELECT 1 FROM billing_history e
                   WHERE e.stripe_invoice_id = b.stripe_invoice_id AND e.status = 'failed'
                     AND e.created_at <= b.created_at) AS recovery
        FROM billing_history b
        WHERE b.created_at >= p_from::timestamp AT TIME ZONE 'UTC' AND b.created_at < v_end
    ), money AS (
        SELECT currency, day,
            coalesce(sum(amount) FILTER (WHERE status = 'paid'), 0) AS payments,
            count(*) FILTER (WHERE status = 'paid') AS payment_count,
            coalesce(sum(amount) FILTER (WHERE status = 'refunded'), 0) AS refunds,
            count(*) FILTER (WHERE status = 'refunded') AS refund_count,
            count(*) FILTER (WHERE first_failure) AS failed_invoices,
            count(*) FILTER (WHERE recovery) AS recovered_invoices
        FROM payments GROUP BY currency, day
    ), currencies AS (
        SELECT currency FROM moves UNION SELECT currency FROM money
    ), grid AS (
        SELECT c.currency, g.day::date AS day
        FROM currencies c, generate_series(v_first, p_to, interval '1 day') AS g(day)
    ), running AS (
        SELECT g.currency, g.day, m.new_mrr, m.expansion_mrr, m.contraction_mrr, m.churned_mrr,
               m.reactivated_mrr, m.new_customers, m.reactivated_customers, m.churned_customers,
               sum(coalesce(m.net, 0)) OVER w AS mrr,
               sum(coalesce(m.new_customers + m.reactivated_customers - m.churned_customers, 0)) OVER w
                   AS customers
        FROM grid g LEFT JOIN moves m ON m.currency = g.currency AND m.day = g.day
        WINDOW w AS (PARTITION BY g.currency ORDER BY g.day)
    )
    SELECT r.day, r.currency, r.mrr, r.customers, coalesce(r.new_mrr, 0), coalesce(r.expansion_mrr, 0),
           coalesce(r.contraction_mrr, 0), coalesce(r.churned_mrr, 0), coalesce(r.reactivated_mrr, 0),
           coalesce(r.new_customers, 0), coalesce(r.reactivated_customers, 0),
           coalesce(r.churned_customers, 0), coalesce(y.payments, 0), coalesce(y.payment_count, 0),
           coalesce(y.refunds, 0), coalesce(y.refund_count, 0), coalesce(y.failed_invoices, 0),
           coalesce(y.recovered_invoices, 0)
    FROM running r LEFT JOIN money y ON y.currency = r.currency AND y.day = r.day
    WHERE r.day BETWEEN p_from AND p_to;

    DELETE FROM revenue_daily_tiers WHERE day BETWEEN p_from AND p_to;
    INSERT INTO revenue_daily_tiers (day, plan_tier, subscribers, trialing, trial_starts, trial_conversions,
        trial_losses)
    WITH steps AS (
        SELECT plan_tier AS tier, day, (mrr > 0)::int AS paying, (status = 'trial')::int AS trial
        FROM revenue_sub_days
        UNION ALL
        SELECT prev_tier, day, -(prev_mrr > 0)::int, -(prev_status = 'trial')::int
        FROM revenue_sub_days WHERE prev_tier IS NOT NULL
    ), per_day AS (
        SELECT tier, day, sum(paying) AS paying, sum(trial) AS trial FROM steps GROUP BY tier, day
    ), transitions AS (
        SELECT sc.plan_tier AS tier, (sc.changed_at AT TIME ZONE 'UTC')::date AS day, sc.status,
               mingus_mrr(sc.status, sc.stripe_status, sc.billing_cycle, sc.plan_price) AS mrr,
               lag(sc.status) OVER (PARTITION BY sc.subscription_id ORDER BY sc.changed_at, sc.id) AS prev
        FROM subscription_changes sc WHERE sc.changed_at < v_end
    ), trials AS (
        SELECT tier, day,
            count(*) FILTER (WHERE status = 'trial' AND prev IS DISTINCT FROM 'trial') AS starts,
            count(*) FILTER (WHERE prev = 'trial' AND status <> 'trial' AND mrr > 0) AS conversions,
            count(*) FILTER (WHERE prev = 'trial' AND status <> 'trial' AND mrr = 0) AS losses
        FROM transitions WHERE day BETWEEN p_from AND p_to GROUP BY tier, day
    ), grid AS (
        SELECT t.tier, g.day::date AS day
        FROM (VALUES ('essentials'), ('professional'), ('executive')) AS t(tier),
             generate_series(v_first, p_to, interval '1 day') AS g(day)
    ), running AS (
        SELECT g.tier, g.day, sum(coalesce(p.paying, 0)) OVER w AS subscribers,
               sum(coalesce(p.trial, 0)) OVER w AS trialing
        FROM grid g LEFT JOIN per_day p ON p.tier = g.tier AND p.day = g.day
        WINDOW w AS (PARTITION BY g.tier ORDER BY g.day)
    )
    SELECT r.day, r.tier, r.subscribers, r.trialing, coalesce(t.starts, 0), coalesce(t.conversions, 0),
           coalesce(t.losses, 0)
    FROM running r LEFT JOIN trials t ON t.tier = r.tier AND t.day = r.day
    WHERE r.day BETWEEN p_from AND p_to;

    -- Cohorts are as of the newest day computed; a backfill of older days leaves newer ones alone.
    IF p_to >= coalesce((SELECT max(as_of) FROM revenue_cohorts), p_to) THEN
        DELETE FROM revenue_cohorts;
        INSERT INTO revenue_cohorts (cohort_month, month_offset, customers, retained, as_of)
        WITH totals AS (
            -- Any currency: levels are never negative, so their sum is positive when one is.
            SELECT user_id, day, sum(level - prev_level) AS d FROM revenue_user_days GROUP BY user_id, day
        ), levels AS (
            SELECT user_id, day, sum(d) OVER (PARTITION BY user_id ORDER BY day) AS level FROM totals
        ), spans AS (
            SELECT user_id, day AS first_day,
                   coalesce(lead(day) OVER (PARTITION BY user_id ORDER BY day) - 1, p_to) AS last_day, level
            FROM levels
        ), paying AS (
            SELECT * FROM spans WHERE level > 0
        ), cohort AS (
            SELECT user_id, date_trunc('month', min(first_day))::date AS cohort_month
            FROM paying GROUP BY user_id
        ), sizes AS (
            SELECT cohort_month, count(*) AS customers FROM cohort GROUP BY cohort_month
        ), checkpoints AS (
            -- A customer is retained in a month when paying on its last day (or on p_to, in p_to's month).
            SELECT p.user_id, m::date AS month
            FROM paying p,
                 generate_series(date_trunc('month', p.first_day), date_trunc('month', p.last_day),
                                 interval '1 month') AS m
            WHERE least((m + interval '1 month' - interval '1 day')::date, p_to)
                  BETWEEN p.first_day AND p.last_day
        ), kept AS (
            SELECT c.cohort_month,
                   ((extract(year FROM k.month) - extract(year FROM c.cohort_month)) * 12
                    + extract(month FROM k.month) - extract(month FROM c.cohort_month))::int AS month_offset,
                   count(*) AS retained
            FROM checkpoints k JOIN cohort c USING (user_id)
            GROUP BY 1, 2
        ), grid AS (
            SELECT s.cohort_month, s.customers, o AS month_offset
            FROM sizes s,
                 generate_series(0, ((extract(year FROM p_to) - extract(year FROM s.cohort_month)) * 12
                                     + extract(month FROM p_to) - extract(month FROM s.cohort_month))::int) AS o
        )
        SELECT g.cohort_month, g.month_offset, g.customers, coalesce(k.retained, 0), p_to
        FROM grid g LEFT JOIN kept k USING (cohort_month, month_offset);
    END IF;

    RETURN p_to - p_from + 1;
END
$$;
