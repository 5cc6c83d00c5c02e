-- Promotions that expire give the feature back to the plan: the access recompute deletes a user's expired
-- promotion and admin grants before it grants the tier's features, and the trial sweep (every 5 minutes)
-- recomputes the users whose grants expired (found through the index below).

CREATE INDEX idx_feature_access_grant_expiry ON feature_access (expires_at) WHERE granted_by <> 'subscription';

CREATE OR REPLACE FUNCTION mingus_recompute_access(p_user_id uuid, p_now timestamptz,
    OUT out_tier text, OUT out_expires_at timestamptz, OUT out_has_access boolean)
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('entitlements:' || p_user_id::text, 0));
    -- The effective subscription (…13). Without access, rows expire when access ended, never later than now.
    SELECT e.plan_tier::text,
        CASE WHEN e.has_access THEN e.access_end
             ELSE least(coalesce(e.access_end, e.ended_at, p_now), p_now) END,
        e.has_access
    INTO out_tier, out_expires_at, out_has_access
    FROM mingus_effective_subscription(p_user_id, p_now) e;
    out_has_access := coalesce(out_has_access, false);
    -- A promotion or admin grant that has expired gives way: it is deleted here and the statement below
    -- grants the tier's level in its place (if the tier includes the feature). Without this the expired
    -- row kept the unique (user_id, feature_name) and the feature stayed refused until revoked. The grant
    -- itself stays in the audit log (`customer.promotion_grant`).
    DELETE FROM feature_access fa
    WHERE fa.user_id = p_user_id AND fa.granted_by <> 'subscription' AND fa.expires_at <= p_now;
    -- Grant the tier's features and drop the subscription grants it no longer includes, in one statement:
    -- the two touch disjoint rows, so neither sub-statement can see or undo the other's work. Without an
    -- effective subscription (out_tier NULL) nothing is granted and every subscription grant goes. Rows
    -- granted by promotions or admins win the unique (user_id, feature_name) and are never touched.
    WITH granted AS (
        INSERT INTO feature_access AS fa (user_id, feature_name, access_level, expires_at, granted_by)
        SELECT p_user_id, f.key, mingus_access_level(f.value), out_expires_at, 'subscription'
        FROM pricing_tiers t CROSS JOIN LATERAL jsonb_each(t.features) f
        WHERE t.tier_name = out_tier
        ORDER BY f.key
        ON CONFLICT (user_id, feature_name) DO UPDATE
            SET access_level = EXCLUDED.access_level, expires_at = EXCLUDED.expires_at
            WHERE fa.granted_by = 'subscription'
              AND (fa.access_level, fa.expires_at) IS DISTINCT FROM (EXCLUDED.access_level, EXCLUDED.expires_at)
        RETURNING 1
    )
    DELETE FROM feature_access fa
    WHERE fa.user_id = p_user_id AND fa.granted_by = 'subscription'
      AND NOT EXISTS (SELECT 1 FROM pricing_tiers t CROSS JOIN LATERAL jsonb_each(t.features) f
                      WHERE t.tier_name = out_tier AND f.key = fa.feature_name);
END
$$;
