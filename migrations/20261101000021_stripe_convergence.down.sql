-- Back to …17's functions and the link as a column only.
DROP FUNCTION IF EXISTS mingus_apply_subscription_state(text, uuid, timestamptz, text, numeric, text, text, text,
    timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, boolean, text, text, text, text, timestamptz,
    smallint, timestamptz, timestamptz, boolean, timestamptz);
DROP FUNCTION IF EXISTS mingus_upsert_subscription_state(text, numeric, text, text, text, timestamptz, timestamptz,
    timestamptz, timestamptz, timestamptz, boolean, text, text, text, text, timestamptz, smallint, timestamptz,
    timestamptz, boolean, text, timestamptz);
DROP FUNCTION IF EXISTS mingus_close_stripe_event(text, text, uuid, uuid[], timestamptz, text);
DROP FUNCTION IF EXISTS mingus_same_second_order(text, text);
DROP FUNCTION IF EXISTS mingus_claim_parked_stripe_events(text[], integer);
DROP FUNCTION IF EXISTS mingus_record_stripe_failure(text, text, boolean, text, boolean);
DROP FUNCTION IF EXISTS mingus_stripe_wait_satisfied(text, text);
DROP FUNCTION IF EXISTS mingus_customer_user(text, timestamptz);
DROP INDEX IF EXISTS idx_billing_history_charge;
ALTER TABLE billing_history DROP COLUMN IF EXISTS stripe_charge_id, DROP COLUMN IF EXISTS stripe_charge_at;
ALTER TABLE stripe_events DROP COLUMN IF EXISTS order_decision;
ALTER TABLE subscriptions DROP COLUMN IF EXISTS stripe_event_id, DROP COLUMN IF EXISTS stripe_started_at;
DROP TABLE IF EXISTS stripe_customers;
DROP TABLE IF EXISTS stripe_drift_reports;

CREATE FUNCTION mingus_upsert_subscription_state(
    p_tier text, p_amount numeric, p_currency text, p_cycle text, p_status text,
    p_period_start timestamptz, p_period_end timestamptz, p_trial_start timestamptz, p_trial_end timestamptz,
    p_cancelled_at timestamptz, p_cancel_at_period_end boolean, p_subscription text, p_price text,
    p_stripe_status text, p_customer text, p_event_at timestamptz, p_rank smallint, p_ended_at timestamptz,
    p_grace_until timestamptz, p_is_creation boolean) RETURNS uuid
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_user uuid;
BEGIN
    INSERT INTO subscriptions AS s (user_id, plan_tier, plan_price, currency, billing_cycle, status,
        current_period_start, current_period_end, trial_start, trial_end, cancelled_at, cancel_at_period_end,
        stripe_subscription_id, stripe_price_id, stripe_status, stripe_customer_id, stripe_event_at,
        stripe_status_rank, ended_at, grace_until)
    SELECT owner.id, p_tier, p_amount, p_currency, p_cycle, p_status, p_period_start, p_period_end,
        p_trial_start, p_trial_end, p_cancelled_at, p_cancel_at_period_end, p_subscription, p_price,
        p_stripe_status, p_customer, p_event_at, p_rank, p_ended_at, p_grace_until
    FROM (SELECT coalesce((SELECT user_id FROM subscriptions WHERE stripe_subscription_id = p_subscription),
                          (SELECT id FROM users WHERE stripe_customer_id = p_customer)) AS id) owner
    WHERE owner.id IS NOT NULL
    ON CONFLICT (stripe_subscription_id) WHERE stripe_subscription_id IS NOT NULL DO UPDATE SET
        plan_tier = EXCLUDED.plan_tier, plan_price = EXCLUDED.plan_price, currency = EXCLUDED.currency,
        billing_cycle = EXCLUDED.billing_cycle, status = EXCLUDED.status,
        current_period_start = EXCLUDED.current_period_start, current_period_end = EXCLUDED.current_period_end,
        trial_start = EXCLUDED.trial_start, trial_end = EXCLUDED.trial_end,
        cancelled_at = EXCLUDED.cancelled_at, cancel_at_period_end = EXCLUDED.cancel_at_period_end,
        stripe_price_id = EXCLUDED.stripe_price_id, stripe_status = EXCLUDED.stripe_status,
        stripe_customer_id = EXCLUDED.stripe_customer_id, stripe_event_at = EXCLUDED.stripe_event_at,
        stripe_status_rank = EXCLUDED.stripe_status_rank, ended_at = EXCLUDED.ended_at,
        grace_until = EXCLUDED.grace_until, updated_at = now()
    WHERE mingus_guard_allows(s.stripe_event_at, s.stripe_status_rank,
                              EXCLUDED.stripe_event_at, EXCLUDED.stripe_status_rank, p_is_creation)
    RETURNING s.user_id INTO v_user;
    RETURN v_user;
END
$$;

-- Closes an applied event, in the caller's transaction: recomputes the feature access of the users whose
-- access changed (in user-id order, so two events never take the per-user locks in opposite orders),
-- completes the job's outbox row and marks the event `p_status`. `false` when the event reached a final
-- status meanwhile (a concurrent replay finished it; the update waits for that processor's commit and
-- then re-checks): nothing is marked and the caller rolls back. The one definition of closing an event,
-- for the worker's transaction path and for `mingus_apply_subscription_state`.
CREATE FUNCTION mingus_close_stripe_event(p_event_id text, p_status text, p_outbox_job uuid,
    p_changed_users uuid[], p_now timestamptz) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_user uuid;
BEGIN
    FOR v_user IN SELECT DISTINCT u FROM unnest(p_changed_users) AS u ORDER BY u LOOP
        PERFORM mingus_recompute_access(v_user, p_now);
    END LOOP;
    UPDATE job_outbox SET completed_at = now(), outcome = 'succeeded'
    WHERE job_id = p_outbox_job AND completed_at IS NULL;
    UPDATE stripe_events SET status = p_status, processed_at = now(), attempts = attempts + 1, last_error = NULL
    WHERE id = p_event_id AND status NOT IN ('processed', 'ignored', 'quarantined', 'unparseable');
    RETURN FOUND;
END
$$;

-- A whole subscription state event in one call (the caller runs it outside a transaction block, so it
-- is its own transaction): the upsert; the owner's access recompute when the state was written; the
-- job's outbox row completed; the event marked `processed`. Outcomes:
-- * 'processed' — applied (`out_user_id` = the owner whose access was recomputed) or older than the
--   stored state (`out_user_id` NULL); both mark the event;
-- * 'unlinked' — no subscription row and no user for the customer yet: nothing was written (retryable);
-- * SQLSTATE MGFIN raised — the event reached a final status meanwhile (a concurrent replay finished it):
--   the raise rolls the whole call back, and theirs stands.
CREATE FUNCTION mingus_apply_subscription_state(
    p_event_id text, p_outbox_job uuid, p_now timestamptz,
    p_tier text, p_amount numeric, p_currency text, p_cycle text, p_status text,
    p_period_start timestamptz, p_period_end timestamptz, p_trial_start timestamptz, p_trial_end timestamptz,
    p_cancelled_at timestamptz, p_cancel_at_period_end boolean, p_subscription text, p_price text,
    p_stripe_status text, p_customer text, p_event_at timestamptz, p_rank smallint, p_ended_at timestamptz,
    p_grace_until timestamptz, p_is_creation boolean,
    OUT out_outcome text, OUT out_user_id uuid)
    LANGUAGE plpgsql
    AS $$
BEGIN
    out_user_id := mingus_upsert_subscription_state(p_tier, p_amount, p_currency, p_cycle, p_status,
        p_period_start, p_period_end, p_trial_start, p_trial_end, p_cancelled_at, p_cancel_at_period_end,
        p_subscription, p_price, p_stripe_status, p_customer, p_event_at, p_rank, p_ended_at, p_grace_until,
        p_is_creation);
    IF out_user_id IS NULL
       AND NOT EXISTS (SELECT 1 FROM subscriptions WHERE stripe_subscription_id = p_subscription) THEN
        out_outcome := 'unlinked';
        RETURN;
    END IF;
    IF NOT mingus_close_stripe_event(p_event_id, 'processed', p_outbox_job,
                                     array_remove(ARRAY[out_user_id], NULL), p_now) THEN
        RAISE EXCEPTION 'stripe event % is already final', p_event_id USING ERRCODE = 'MGFIN';
    END IF;
    out_outcome := 'processed';
END
$$;
