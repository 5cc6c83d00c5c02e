DROP FUNCTION IF EXISTS mingus_apply_subscription_state(text, uuid, timestamptz, text, numeric, text, text, text,
    timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, boolean, text, text, text, text, timestamptz,
    smallint, timestamptz, timestamptz, boolean);
DROP FUNCTION IF EXISTS mingus_upsert_subscription_state(text, numeric, text, text, text, timestamptz, timestamptz,
    timestamptz, timestamptz, timestamptz, boolean, text, text, text, text, timestamptz, smallint, timestamptz,
    timestamptz, boolean);
DROP FUNCTION IF EXISTS mingus_close_stripe_event(text, text, uuid, uuid[], timestamptz);
