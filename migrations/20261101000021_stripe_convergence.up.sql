-- Stripe convergence (worker/src/stripe): every delivery order ends in Stripe's truth.
--
-- 1. A customer → user link history. `customer.deleted` used to erase the link (users.stripe_customer_id),
--    so the customer's older events, applied after the deletion, found no user and died. Now a deletion
--    is a tombstone with its time: events created up to the deletion still resolve through it; newer ones
--    never re-link. `users.stripe_customer_id` stays the live link (the API and the checkout read it).
CREATE TABLE stripe_customers (
    customer_id VARCHAR(255) PRIMARY KEY,
    -- The user the customer belongs (or belonged) to; NULL while only the deletion is known.
    user_id UUID REFERENCES users(id) ON DELETE CASCADE,
    -- `created` of the event that made the link: an older link event never moves it back.
    linked_at TIMESTAMPTZ,
    -- `created` of the customer's `customer.deleted`: the tombstone.
    deleted_at TIMESTAMPTZ
);
CREATE INDEX idx_stripe_customers_user ON stripe_customers (user_id);
INSERT INTO stripe_customers (customer_id, user_id)
SELECT stripe_customer_id, id FROM users WHERE stripe_customer_id IS NOT NULL;

-- The user an event of `p_customer` created at `p_at` belongs to: the live link, else the link the
-- customer had when it was deleted, for events not newer than the deletion.
CREATE FUNCTION mingus_customer_user(p_customer text, p_at timestamptz) RETURNS uuid
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce(
        (SELECT id FROM users WHERE stripe_customer_id = p_customer),
        (SELECT user_id FROM stripe_customers
         WHERE customer_id = p_customer AND deleted_at IS NOT NULL AND p_at <= deleted_at))
    $$;

-- 2. Same-second order. Each subscription remembers the event whose state it holds; two states of the
--    same second and rank are ordered by `data.previous_attributes` (what the object was before the
--    change), and each state event records how it was ordered (`stripe_events.order_decision`).
ALTER TABLE subscriptions
    ADD COLUMN stripe_event_id VARCHAR(255),
    -- Stripe's `start_date` of the subscription: which subscription was live when a charge was made.
    ADD COLUMN stripe_started_at TIMESTAMPTZ;
ALTER TABLE stripe_events ADD COLUMN order_decision VARCHAR(40);

-- How the incoming event stands to the stored one, both of the same second and rank: 'before' when the
-- stored event's previous attributes are the incoming object's values (the incoming state is what the
-- stored change started from), 'after' the other way round, 'undecided' when neither or both hold (a
-- chain of three in one second, a flip back and forth) or a payload is missing.
CREATE FUNCTION mingus_same_second_order(p_stored_event text, p_incoming_event text) RETURNS text
    LANGUAGE sql STABLE
    AS $$
    SELECT coalesce((
        SELECT CASE WHEN before AND NOT after THEN 'before'
                    WHEN after AND NOT before THEN 'after'
                    ELSE 'undecided' END
        FROM (SELECT coalesce(jsonb_typeof(s.d -> 'previous_attributes') = 'object'
                              AND s.d -> 'previous_attributes' <> '{}'::jsonb
                              AND i.d -> 'object' @> (s.d -> 'previous_attributes'), false) AS before,
                     coalesce(jsonb_typeof(i.d -> 'previous_attributes') = 'object'
                              AND i.d -> 'previous_attributes' <> '{}'::jsonb
                              AND s.d -> 'object' @> (i.d -> 'previous_attributes'), false) AS after
              FROM (SELECT payload -> 'data' AS d FROM stripe_events WHERE id = p_stored_event) s,
                   (SELECT payload -> 'data' AS d FROM stripe_events WHERE id = p_incoming_event) i) o),
        'undecided')
    $$;

-- 3. Refunds by charge: `amount_refunded` of `charge.refunded` is recorded as the part no refund object
--    has itemised yet (worker/src/stripe/refund.rs), so the charge is on every refund row.
ALTER TABLE billing_history
    ADD COLUMN stripe_charge_id VARCHAR(255),
    -- When the refunded charge was made: a refund belongs to the subscription live then.
    ADD COLUMN stripe_charge_at TIMESTAMPTZ;
UPDATE billing_history SET stripe_charge_id = substring(description FROM '^Refund of (ch_[A-Za-z0-9_]+)$')
WHERE status = 'refunded' AND description LIKE 'Refund of ch\_%';
CREATE INDEX idx_billing_history_charge ON billing_history (stripe_charge_id) WHERE stripe_charge_id IS NOT NULL;

-- The functions of …17, redefined: the owner of a new row through the link history; the stored event
-- and the start date kept; the same-second order decided and reported.
DROP FUNCTION mingus_apply_subscription_state(text, uuid, timestamptz, text, numeric, text, text, text,
    timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, boolean, text, text, text, text, timestamptz,
    smallint, timestamptz, timestamptz, boolean);
DROP FUNCTION mingus_upsert_subscription_state(text, numeric, text, text, text, timestamptz, timestamptz,
    timestamptz, timestamptz, timestamptz, boolean, text, text, text, text, timestamptz, smallint, timestamptz,
    timestamptz, boolean);
DROP FUNCTION mingus_close_stripe_event(text, text, uuid, uuid[], timestamptz);

-- The subscription upsert behind the ordering guard and the same-second order, both decided in the
-- upsert's WHERE under the row lock ON CONFLICT takes (a race of two first events meets at the unique
-- index). `out_decision` says how the event stood to the stored state read just before (what the event
-- records; only a concurrent event of the same subscription can make it differ from what the WHERE saw). `out_user_id` is the
-- owner when the state was written, NULL when the stored state was kept or no user owns the customer.
-- A subscription written for the first time takes over the refunds filed (by charge time, without an
-- invoice: basil) under an older subscription of its owner while it was not known yet: each refund
-- belongs to the latest subscription started at or before its charge, whatever arrived first. The
-- customer's advisory lock (the one refund filing takes) makes that exact under concurrency.
CREATE FUNCTION mingus_upsert_subscription_state(
    p_tier text, p_amount numeric, p_currency text, p_cycle text, p_status text,
    p_period_start timestamptz, p_period_end timestamptz, p_trial_start timestamptz, p_trial_end timestamptz,
    p_cancelled_at timestamptz, p_cancel_at_period_end boolean, p_subscription text, p_price text,
    p_stripe_status text, p_customer text, p_event_at timestamptz, p_rank smallint, p_ended_at timestamptz,
    p_grace_until timestamptz, p_is_creation boolean, p_event_id text, p_started_at timestamptz,
    OUT out_user_id uuid, OUT out_decision text)
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_at timestamptz;
    v_rank smallint;
    v_event text;
    v_sub uuid;
BEGIN
    -- Read without a lock (a row lock costs a WAL record per event): the decision is what the event is
    -- recorded with; what is written is decided again under the upsert's row lock, in its WHERE.
    SELECT stripe_event_at, coalesce(stripe_status_rank, (-32768)::smallint), stripe_event_id
    INTO v_at, v_rank, v_event
    FROM subscriptions WHERE stripe_subscription_id = p_subscription;
    IF v_at IS NULL THEN
        out_decision := 'first';
    ELSIF p_event_at > v_at THEN
        out_decision := 'newer';
    ELSIF p_event_at < v_at THEN
        out_decision := 'older';
    ELSIF p_rank > v_rank THEN
        out_decision := 'same_second_later_stage';
    ELSIF p_rank < v_rank THEN
        out_decision := 'same_second_earlier_stage';
    ELSIF p_is_creation THEN
        out_decision := 'same_second_late_created';
    ELSE
        CASE mingus_same_second_order(v_event, p_event_id)
            WHEN 'before' THEN out_decision := 'same_second_previous_before';
            WHEN 'after' THEN out_decision := 'same_second_previous_after';
            ELSE out_decision := 'same_second_processing_order';
        END CASE;
    END IF;

    INSERT INTO subscriptions AS s (user_id, plan_tier, plan_price, currency, billing_cycle, status,
        current_period_start, current_period_end, trial_start, trial_end, cancelled_at, cancel_at_period_end,
        stripe_subscription_id, stripe_price_id, stripe_status, stripe_customer_id, stripe_event_at,
        stripe_status_rank, ended_at, grace_until, stripe_event_id, stripe_started_at)
    SELECT owner.id, p_tier, p_amount, p_currency, p_cycle, p_status, p_period_start, p_period_end,
        p_trial_start, p_trial_end, p_cancelled_at, p_cancel_at_period_end, p_subscription, p_price,
        p_stripe_status, p_customer, p_event_at, p_rank, p_ended_at, p_grace_until, p_event_id, p_started_at
    FROM (SELECT coalesce((SELECT user_id FROM subscriptions WHERE stripe_subscription_id = p_subscription),
                          mingus_customer_user(p_customer, p_event_at)) AS id) owner
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
        grace_until = EXCLUDED.grace_until, stripe_event_id = EXCLUDED.stripe_event_id,
        stripe_started_at = coalesce(EXCLUDED.stripe_started_at, s.stripe_started_at), updated_at = now()
    WHERE mingus_guard_allows(s.stripe_event_at, s.stripe_status_rank,
                              EXCLUDED.stripe_event_at, EXCLUDED.stripe_status_rank, p_is_creation)
      -- Same second and rank: not when the stored change started from this state (previous_attributes).
      AND NOT (s.stripe_event_at = EXCLUDED.stripe_event_at
               AND s.stripe_status_rank IS NOT DISTINCT FROM EXCLUDED.stripe_status_rank
               AND s.stripe_event_id IS NOT NULL
               AND mingus_same_second_order(s.stripe_event_id, p_event_id) = 'before')
    RETURNING s.user_id, s.id INTO out_user_id, v_sub;
    IF out_user_id IS NOT NULL AND out_decision = 'first' AND p_started_at IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(p_customer, 0));
        UPDATE billing_history b SET subscription_id = v_sub
        FROM subscriptions cur
        WHERE cur.id = b.subscription_id AND b.user_id = out_user_id AND b.subscription_id <> v_sub
          AND b.status = 'refunded' AND b.stripe_invoice_id IS NULL AND b.stripe_charge_at >= p_started_at
          AND coalesce(cur.stripe_started_at, '-infinity') < p_started_at;
    END IF;
    IF out_user_id IS NULL AND out_decision = 'first' THEN
        -- Nothing written: no owner yet (the caller reports 'unlinked'), or a concurrent first event won.
        out_decision := NULL;
    END IF;
END
$$;

-- Closes an applied event, in the caller's transaction (as in …17), now also recording how a state
-- event was ordered (`p_order_decision`, NULL for other events).
CREATE FUNCTION mingus_close_stripe_event(p_event_id text, p_status text, p_outbox_job uuid,
    p_changed_users uuid[], p_now timestamptz, p_order_decision text) RETURNS boolean
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
    UPDATE stripe_events SET status = p_status, processed_at = now(), attempts = attempts + 1, last_error = NULL,
        waits_for = NULL, order_decision = p_order_decision
    WHERE id = p_event_id AND status NOT IN ('processed', 'ignored', 'quarantined', 'unparseable');
    RETURN FOUND;
END
$$;

-- A whole subscription state event in one call (outcomes as in …17; `out_decision` as the upsert's).
CREATE FUNCTION mingus_apply_subscription_state(
    p_event_id text, p_outbox_job uuid, p_now timestamptz,
    p_tier text, p_amount numeric, p_currency text, p_cycle text, p_status text,
    p_period_start timestamptz, p_period_end timestamptz, p_trial_start timestamptz, p_trial_end timestamptz,
    p_cancelled_at timestamptz, p_cancel_at_period_end boolean, p_subscription text, p_price text,
    p_stripe_status text, p_customer text, p_event_at timestamptz, p_rank smallint, p_ended_at timestamptz,
    p_grace_until timestamptz, p_is_creation boolean, p_started_at timestamptz,
    OUT out_outcome text, OUT out_user_id uuid, OUT out_decision text)
    LANGUAGE plpgsql
    AS $$
BEGIN
    SELECT u.out_user_id, u.out_decision INTO out_user_id, out_decision
    FROM mingus_upsert_subscription_state(p_tier, p_amount, p_currency, p_cycle, p_status,
        p_period_start, p_period_end, p_trial_start, p_trial_end, p_cancelled_at, p_cancel_at_period_end,
        p_subscription, p_price, p_stripe_status, p_customer, p_event_at, p_rank, p_ended_at, p_grace_until,
        p_is_creation, p_event_id, p_started_at) u;
    IF out_user_id IS NULL
       AND NOT EXISTS (SELECT 1 FROM subscriptions WHERE stripe_subscription_id = p_subscription) THEN
        out_outcome := 'unlinked';
        RETURN;
    END IF;
    IF NOT mingus_close_stripe_event(p_event_id, 'processed', p_outbox_job,
                                     array_remove(ARRAY[out_user_id], NULL), p_now, out_decision) THEN
        RAISE EXCEPTION 'stripe event % is already final', p_event_id USING ERRCODE = 'MGFIN';
    END IF;
    out_outcome := 'processed';
END
$$;

-- 4. The nightly drift report (billing.stripe_reconcile; mingus_common::billing::drift): what has not
--    converged to Stripe's truth, counted (0 expected), for /ops.
CREATE TABLE stripe_drift_reports (
    id BIGSERIAL PRIMARY KEY,
    ran_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- 'local': our events against our state; 'stripe': Stripe's API against our state.
    source VARCHAR(20) NOT NULL,
    checked INTEGER NOT NULL,
    drift_count INTEGER NOT NULL,
    -- At most the first 100 drifts: [{kind, id, detail}].
    items JSONB NOT NULL DEFAULT '[]',
    CONSTRAINT valid_drift_source CHECK (source IN ('local', 'stripe'))
);
CREATE INDEX idx_stripe_drift_reports_source ON stripe_drift_reports (source, ran_at DESC);

-- 5. Parking without a lost wake-up (worker/src/stripe/waits.rs). An attempt that failed for lack of a
--    dependency parks on its key after rolling back; the dependency's applier claims the parked events
--    after its commit. Both take the key's advisory lock, and the park re-checks the dependency under
--    it: either the claim runs after the park (and sees it), or the park runs after the dependency's
--    commit (and sees the dependency, and the event is tried again at once instead of parking).
CREATE FUNCTION mingus_stripe_wait_satisfied(p_key text, p_event_id text) RETURNS boolean
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    v_kind text := split_part(p_key, ':', 1);
    v_id text := substr(p_key, length(split_part(p_key, ':', 1)) + 2);
BEGIN
    CASE v_kind
        WHEN 'customer' THEN
            RETURN mingus_customer_user(v_id, coalesce((SELECT created FROM stripe_events WHERE id = p_event_id),
                                                       now())) IS NOT NULL;
        WHEN 'subscription' THEN
            RETURN EXISTS (SELECT 1 FROM subscriptions WHERE stripe_subscription_id = v_id);
        WHEN 'invoice' THEN
            RETURN EXISTS (SELECT 1 FROM billing_history WHERE stripe_invoice_id = v_id)
                OR EXISTS (SELECT 1 FROM stripe_events WHERE object_id = v_id AND status = 'processed');
        WHEN 'charge' THEN
            RETURN EXISTS (SELECT 1 FROM stripe_events WHERE object_id = v_id AND status = 'processed');
        ELSE
            RETURN false;
    END CASE;
END
$$;

-- Records a failed attempt (the last one or a permanent error marks the event `failed`); an event
-- waiting for `p_waits_for` is parked on it unless (`p_check`) the dependency is there by now: then it
-- is left unparked and `true` says to try again at once.
CREATE FUNCTION mingus_record_stripe_failure(p_event_id text, p_error text, p_dead boolean,
    p_waits_for text, p_check boolean) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_ready boolean := false;
BEGIN
    IF p_waits_for IS NOT NULL AND NOT p_dead THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('stripe-wait:' || p_waits_for, 0));
        IF p_check THEN
            v_ready := mingus_stripe_wait_satisfied(p_waits_for, p_event_id);
        END IF;
    END IF;
    UPDATE stripe_events SET attempts = attempts + 1, last_error = p_error,
        status = CASE WHEN p_dead THEN 'failed' ELSE status END,
        waits_for = CASE WHEN p_dead OR v_ready THEN NULL ELSE p_waits_for END
    WHERE id = p_event_id;
    RETURN v_ready;
END
$$;

-- Claims the events parked on `p_keys` that still need applying, oldest first, clearing their mark;
-- the keys' locks are taken first (in key order), so a park in progress finishes before the claim reads.
CREATE FUNCTION mingus_claim_parked_stripe_events(p_keys text[], p_limit integer) RETURNS SETOF text
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('stripe-wait:' || k, 0))
    FROM (SELECT DISTINCT k FROM unnest(p_keys) AS k ORDER BY k) keys;
    RETURN QUERY
        WITH claimed AS (
            UPDATE stripe_events SET waits_for = NULL
            WHERE waits_for = ANY(p_keys)
            RETURNING id, status, created)
        SELECT c.id::text FROM claimed c WHERE c.status = 'received'
        ORDER BY c.created NULLS LAST, c.id LIMIT p_limit;
END
$$;
