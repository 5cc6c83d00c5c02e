-- Every tier limit enforced where the row is written (issue 21, part A).
--
-- * `mingus_metric_limit()`: a user's limit of a metric at an instant, in SQL — the twin of the Rust
--   `Snapshot::limit_at` (a parity test keeps them equal), so triggers can enforce what the API enforces.
-- * `usage_events` + `mingus_consume_usage()`: the metered-usage API's idempotent consume, one statement.
-- * Triggers on `user_health_checkins` (counts `health_checkins_per_month`), `goals` (caps active goals
--   at `goal_tracking`) and `team_members` (caps pending + active members at `team_members`). They bind
--   the writers row-level security binds (the application role, i.e. the frontend's Supabase path); the
--   owner role — migrations, workers, operators, the API's own team route (which enforces the cap itself
--   under the same lock) — is trusted, exactly as the tables' policies are not FORCEd for it.

-- A `pricing_tiers.limits` value: NULL = unlimited (-1 or true), a missing, false or fractional value 0.
CREATE FUNCTION mingus_parse_limit(p_value jsonb) RETURNS bigint
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT CASE jsonb_typeof(p_value)
        WHEN 'number' THEN CASE
            WHEN (p_value #>> '{}')::numeric < 0 THEN NULL
            WHEN (p_value #>> '{}')::numeric = trunc((p_value #>> '{}')::numeric)
                 AND (p_value #>> '{}')::numeric <= 9223372036854775807
                THEN (p_value #>> '{}')::numeric::bigint
            ELSE 0 END
        WHEN 'boolean' THEN CASE WHEN p_value = 'true'::jsonb THEN NULL ELSE 0 END
        ELSE 0
    END
    $$;

-- The features whose promotion/admin grants lift a metric (the Rust `features::METERED_FEATURES`).
CREATE FUNCTION mingus_metric_features(p_metric text) RETURNS text[]
    LANGUAGE sql IMMUTABLE
    AS $$
    SELECT coalesce(array_agg(f), '{}') FROM (VALUES
        ('basic_analytics', 'financial_reports_per_month'),
        ('advanced_ai_insights', 'ai_insights_per_month'),
        ('custom_reports', 'custom_reports_per_month'),
        ('goal_setting', 'goal_tracking'),
        ('team_management', 'team_members'),
        ('api_access', 'api_calls_per_hour')) m(f, metric)
    WHERE m.metric = p_metric
    $$;

-- The user's limit of `p_metric` at `p_at` (NULL = unlimited): the tier's while the effective
-- subscription grants access (0 without one), raised by promotion and admin grants in force of a feature
-- metered by it — to unlimited at level `unlimited`, else to the limit of the cheapest tier including it.
CREATE FUNCTION mingus_metric_limit(p_user_id uuid, p_metric text, p_at timestamptz) RETURNS bigint
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
    v_limit bigint := 0;
    v_unlimited boolean := false;
    v_grant record;
    v_granted bigint;
BEGIN
    SELECT mingus_parse_limit(t.limits -> p_metric), mingus_parse_limit(t.limits -> p_metric) IS NULL
        INTO v_limit, v_unlimited
    FROM mingus_effective_subscription(p_user_id, p_at) e
    JOIN pricing_tiers t ON t.tier_name = e.plan_tier
    WHERE e.access_end > p_at;
    v_limit := coalesce(v_limit, 0);
    v_unlimited := coalesce(v_unlimited, false);
    FOR v_grant IN
        SELECT fa.access_level,
               (SELECT t.limits FROM pricing_tiers t
                WHERE mingus_access_level(t.features -> fa.feature_name) <> 'none'
                ORDER BY t.monthly_price LIMIT 1) AS entry_limits
        FROM feature_access fa
        WHERE fa.user_id = p_user_id AND fa.granted_by <> 'subscription'
          AND fa.feature_name = ANY (mingus_metric_features(p_metric))
          AND fa.access_level <> 'none' AND (fa.expires_at IS NULL OR fa.expires_at > p_at)
    LOOP
        IF v_grant.access_level = 'unlimited' THEN
            v_unlimited := true;
        ELSE
            v_granted := CASE WHEN v_grant.entry_limits IS NULL THEN 0
                              ELSE mingus_parse_limit(v_grant.entry_limits -> p_metric) END;
            IF v_granted IS NULL THEN
                v_unlimited := true;
            ELSE
                v_limit := greatest(v_limit, v_granted);
            END IF;
        END IF;
    END LOOP;
    RETURN CASE WHEN v_unlimited THEN NULL ELSE v_limit END;
END
$$;

-- One row per consume of the metered-usage API (`POST /v1/usage/{metric}`): its Idempotency-Key is
-- unique per account, so the same key never counts twice, however often or concurrently it is sent. Kept
-- (not trimmed): a key must not count again later either. A refused consume leaves no row.
CREATE TABLE usage_events (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    idempotency_key VARCHAR(255) NOT NULL,
    metric VARCHAR(100) NOT NULL,
    amount BIGINT NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    period_end TIMESTAMPTZ NOT NULL,
    -- Who called (the owner, or a team member acting for them); kept if that user is deleted.
    requested_by UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT usage_events_key UNIQUE (user_id, idempotency_key),
    CONSTRAINT valid_usage_event_amount CHECK (amount BETWEEN 1 AND 1000),
    CONSTRAINT valid_usage_event_metric CHECK (metric ~ '^[a-z][a-z0-9_]*$')
);
CREATE INDEX idx_usage_events_requested_by ON usage_events (requested_by);
ALTER TABLE usage_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY usage_events_owner ON usage_events FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT ON usage_events TO mingus_app;

-- The idempotent consume, in one statement: record the key (a concurrent request with the same key
-- waits here for the first one's commit), then the conditional counter upsert of
-- `Entitlements::consume_in` (concurrent consumers serialise on the counter row, so at most `p_limit`
-- units are granted); a refusal removes the key again, so a retry after the reset may count.
-- `o_outcome`: 'consumed', 'refused' or 'replayed' (the key was used before: its metric, amount and
-- period are returned, with the current count of that period).
CREATE FUNCTION mingus_consume_usage(p_user_id uuid, p_key text, p_metric text, p_amount bigint,
                                     p_limit bigint, p_period_start timestamptz,
                                     p_period_end timestamptz, p_requested_by uuid)
    RETURNS TABLE (o_outcome text, o_used bigint, o_metric text, o_amount bigint,
                   o_period_end timestamptz)
    LANGUAGE plpgsql
    AS $$
DECLARE
    v_event uuid;
    v_used bigint;
BEGIN
    INSERT INTO usage_events (user_id, idempotency_key, metric, amount, period_start, period_end,
                              requested_by)
    VALUES (p_user_id, p_key, p_metric, p_amount, p_period_start, p_period_end, p_requested_by)
    ON CONFLICT ON CONSTRAINT usage_events_key DO NOTHING
    RETURNING id INTO v_event;
    IF v_event IS NULL THEN
        RETURN QUERY
            SELECT 'replayed', coalesce(c.used, 0), e.metric::text, e.amount, e.period_end
            FROM usage_events e
            LEFT JOIN usage_counters c
                ON c.user_id = e.user_id AND c.metric = e.metric AND c.period_start = e.period_start
            WHERE e.user_id = p_user_id AND e.idempotency_key = p_key;
        RETURN;
    END IF;
    INSERT INTO usage_counters AS c (user_id, metric, period_start, period_end, used, limit_at_last_use)
    SELECT p_user_id, p_metric, p_period_start, p_period_end, p_amount, p_limit
    WHERE p_limit IS NULL OR p_amount <= p_limit
    ON CONFLICT (user_id, metric, period_start) DO UPDATE
        SET used = c.used + EXCLUDED.used, limit_at_last_use = EXCLUDED.limit_at_last_use,
            updated_at = now()
        WHERE p_limit IS NULL OR c.used + EXCLUDED.used <= p_limit
    RETURNING c.used INTO v_used;
    IF v_used IS NULL THEN
        DELETE FROM usage_events WHERE id = v_event;
        RETURN QUERY
            SELECT 'refused', coalesce((SELECT c.used FROM usage_counters c
                                         WHERE c.user_id = p_user_id AND c.metric = p_metric
                                           AND c.period_start = p_period_start), 0),
                   p_metric, p_amount, p_period_end;
        RETURN;
    END IF;
    RETURN QUERY SELECT 'consumed', v_used, p_metric, p_amount, p_period_end;
END
$$;

-- The refusal raised by the triggers: SQLSTATE 23514 (check_violation) naming the constraint
-- `<metric>_limit`, a message a person can read, and a JSON DETAIL a program can (metric, limit, usage,
-- resets_at for periodic metrics). PostgREST answers it as a 400 with these fields.
CREATE FUNCTION mingus_raise_limit(p_metric text, p_limit bigint, p_usage bigint,
                                   p_resets_at timestamptz, p_message text) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'check_violation',
        CONSTRAINT = p_metric || '_limit',
        MESSAGE = p_message,
        DETAIL = json_build_object('reason', 'usage_limit_exceeded', 'metric', p_metric,
                                   'limit', p_limit, 'usage', p_usage, 'resets_at', p_resets_at)::text,
        HINT = CASE WHEN p_resets_at IS NULL
                    THEN 'remove or close one first, or move to a plan with a higher limit'
                    ELSE 'wait for the reset or move to a plan with a higher limit' END;
END
$$;

-- Counts `p_amount` of a periodic metric for a row written by a user (the check-in trigger). Runs as the
-- owner (SECURITY DEFINER): users may read their counters, not write them.
CREATE FUNCTION mingus_consume_for_row(p_user_id uuid, p_metric text, p_amount bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
DECLARE
    v_at timestamptz := now();
    v_start timestamptz;
    v_end timestamptz;
    v_limit bigint;
    v_used bigint;
BEGIN
    SELECT p.period_start, p.period_end INTO v_start, v_end
    FROM mingus_usage_period(mingus_usage_anchor(p_user_id, v_at), v_at) p;
    v_limit := mingus_metric_limit(p_user_id, p_metric, v_at);
    INSERT INTO usage_counters AS c (user_id, metric, period_start, period_end, used, limit_at_last_use)
    SELECT p_user_id, p_metric, v_start, v_end, p_amount, v_limit
    WHERE v_limit IS NULL OR p_amount <= v_limit
    ON CONFLICT (user_id, metric, period_start) DO UPDATE
        SET used = c.used + EXCLUDED.used, limit_at_last_use = EXCLUDED.limit_at_last_use,
            updated_at = now()
        WHERE v_limit IS NULL OR c.used + EXCLUDED.used <= v_limit
    RETURNING c.used INTO v_used;
    IF v_used IS NULL THEN
        SELECT c.used INTO v_used FROM usage_counters c
        WHERE c.user_id = p_user_id AND c.metric = p_metric AND c.period_start = v_start;
        PERFORM mingus_raise_limit(p_metric, v_limit, coalesce(v_used, 0), v_end,
            format('usage_limit_exceeded: the plan allows %s %s per period; %s used, resets at %s',
                   v_limit, p_metric, coalesce(v_used, 0), v_end));
    END IF;
END
$$;

-- Enforces a cap (`goal_tracking`: active goals; `team_members`: pending and active members) after a row
-- joined it. Counting happens under the per-user transaction lock the API's team route also takes
-- (`mingus:team:<owner>`; goals: `mingus:goals:<user>`), so of two concurrent writers at limit − 1 the
-- second counts the first's committed row and is refused. The row being written is already counted (an
-- AFTER trigger), so a downgraded user over the cap keeps every row and cannot add one.
CREATE FUNCTION mingus_enforce_cap(p_user_id uuid, p_metric text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
DECLARE
    v_limit bigint;
    v_count bigint;
BEGIN
    IF p_metric = 'team_members' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('mingus:team:' || p_user_id::text, 0));
        -- The lock is held; this statement's snapshot sees every writer that held it before.
        SELECT count(*) INTO v_count FROM team_members
        WHERE team_owner_id = p_user_id AND status IN ('pending', 'active');
    ELSIF p_metric = 'goal_tracking' THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('mingus:goals:' || p_user_id::text, 0));
        SELECT count(*) INTO v_count FROM goals WHERE user_id = p_user_id AND status = 'active';
    ELSE
        RAISE EXCEPTION 'mingus_enforce_cap: % is not a cap', p_metric;
    END IF;
    v_limit := mingus_metric_limit(p_user_id, p_metric, now());
    IF v_limit IS NOT NULL AND v_count > v_limit THEN
        PERFORM mingus_raise_limit(p_metric, v_limit, v_count - 1, NULL,
            format('usage_limit_exceeded: the plan allows %s %s; %s in use',
                   v_limit, CASE p_metric WHEN 'goal_tracking' THEN 'active goals'
                                          ELSE 'team members (pending and active)' END,
                   v_count - 1));
    END IF;
END
$$;

-- Callable only by the triggers below (and the owner): a user calling them could count or cap somebody
-- else's account.
REVOKE ALL ON FUNCTION mingus_consume_for_row(uuid, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION mingus_enforce_cap(uuid, text) FROM PUBLIC;

-- Each trigger's WHEN asks, as the writer, whether row-level security binds it (the parent table is
-- named: a partition's own RLS flag is off); the functions then run as the owner (SECURITY DEFINER), the
-- only role that may write counters and call the helpers above.
CREATE FUNCTION mingus_checkin_counts() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
BEGIN
    PERFORM mingus_consume_for_row(NEW.user_id, 'health_checkins_per_month', 1);
    RETURN NULL;
END
$$;
-- AFTER INSERT fires only for rows really inserted (an upsert that updates an existing day does not count).
CREATE TRIGGER user_health_checkins_count AFTER INSERT ON user_health_checkins
    FOR EACH ROW WHEN (row_security_active('public.user_health_checkins'::regclass))
    EXECUTE FUNCTION mingus_checkin_counts();

CREATE FUNCTION mingus_goal_cap() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.status <> 'active' OR OLD.user_id <> NEW.user_id THEN
        PERFORM mingus_enforce_cap(NEW.user_id, 'goal_tracking');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER goals_cap AFTER INSERT OR UPDATE OF status, user_id ON goals
    FOR EACH ROW WHEN (NEW.status = 'active' AND row_security_active('public.goals'::regclass))
    EXECUTE FUNCTION mingus_goal_cap();

CREATE FUNCTION mingus_team_member_cap() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$
BEGIN
    -- pending → active (an accepted invitation) is the same seat; declined → pending is a new one.
    IF TG_OP = 'INSERT' OR OLD.status NOT IN ('pending', 'active')
       OR OLD.team_owner_id <> NEW.team_owner_id THEN
        PERFORM mingus_enforce_cap(NEW.team_owner_id, 'team_members');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER team_members_cap AFTER INSERT OR UPDATE OF status, team_owner_id ON team_members
    FOR EACH ROW WHEN (NEW.status IN ('pending', 'active') AND row_security_active('public.team_members'::regclass))
    EXECUTE FUNCTION mingus_team_member_cap();
