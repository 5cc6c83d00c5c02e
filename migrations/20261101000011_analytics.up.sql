-- Analytics sources and partition maintenance: the activity log, goals, the registry of monthly-partitioned
-- tables (what partition maintenance premakes and retires), and pg_stat_statements when the server loads it.

-- Partition bounds of timestamptz tables must not depend on the session's TimeZone: the helper creates
-- month partitions at UTC midnights, whoever calls it.
ALTER FUNCTION mingus_ensure_monthly_partitions(regclass, date, integer) SET timezone = 'UTC';

-- What a user did in the app: one row per login, session end, feature use and page view. The daily rollup
-- reads one day of it for all users at once (the primary key leads with occurred_at, so "one day, all
-- users" is one index range per partition); the (user_id, occurred_at) index serves one user's timeline.
-- A session's minutes count on the day it ends. Append-only: users may insert their own rows and read them.
CREATE TABLE activity_events (
    id BIGSERIAL NOT NULL,
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    occurred_at TIMESTAMPTZ NOT NULL,
    kind VARCHAR(20) NOT NULL,
    session_minutes INTEGER,
    feature VARCHAR(100),
    page VARCHAR(200),
    PRIMARY KEY (occurred_at, id),
    CONSTRAINT valid_activity_kind CHECK (kind IN ('login', 'session_end', 'feature_used', 'page_view')),
    CONSTRAINT session_minutes_on_session_end CHECK ((kind = 'session_end') = (session_minutes IS NOT NULL)),
    CONSTRAINT valid_session_minutes CHECK (session_minutes BETWEEN 0 AND 1440),
    CONSTRAINT feature_on_feature_used CHECK ((kind = 'feature_used') = (feature IS NOT NULL)),
    CONSTRAINT page_on_page_view CHECK ((kind = 'page_view') = (page IS NOT NULL))
) PARTITION BY RANGE (occurred_at);
CREATE INDEX idx_activity_events_user_time ON activity_events (user_id, occurred_at);
CREATE TABLE activity_events_default PARTITION OF activity_events DEFAULT;
SELECT mingus_ensure_monthly_partitions('activity_events', current_date, 4);

-- A user's goals (savings, debt payoff, wellness…). progress_percentage is the current progress; a goal
-- is completed (completed_at) or abandoned (abandoned_at) at most once.
CREATE TABLE goals (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title VARCHAR(200) NOT NULL,
    category VARCHAR(50) NOT NULL DEFAULT 'other',
    target_amount DECIMAL(12,2),
    current_amount DECIMAL(12,2) NOT NULL DEFAULT 0,
    progress_percentage DECIMAL(5,2) NOT NULL DEFAULT 0,
    target_date DATE,
    status VARCHAR(20) NOT NULL DEFAULT 'active',
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    completed_at TIMESTAMPTZ,
    abandoned_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT valid_goal_category CHECK (category IN ('savings', 'debt_payoff', 'emergency_fund', 'investment', 'retirement', 'wellness', 'other')),
    CONSTRAINT valid_goal_status CHECK (status IN ('active', 'completed', 'abandoned')),
    CONSTRAINT valid_goal_amounts CHECK (target_amount BETWEEN 0 AND 100000000 AND current_amount BETWEEN 0 AND 100000000),
    CONSTRAINT valid_goal_progress CHECK (progress_percentage BETWEEN 0 AND 100),
    CONSTRAINT completed_goal_has_completed_at CHECK ((status = 'completed') = (completed_at IS NOT NULL)),
    CONSTRAINT abandoned_goal_has_abandoned_at CHECK ((status = 'abandoned') = (abandoned_at IS NOT NULL)),
    CONSTRAINT goal_ends_after_it_starts CHECK (completed_at >= created_at AND abandoned_at >= created_at)
);
CREATE INDEX idx_goals_user_created ON goals (user_id, created_at);

ALTER TABLE activity_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY activity_events_owner ON activity_events FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT, INSERT ON activity_events TO mingus_app;
GRANT USAGE ON SEQUENCE activity_events_id_seq TO mingus_app;

ALTER TABLE goals ENABLE ROW LEVEL SECURITY;
CREATE POLICY goals_owner ON goals FOR ALL USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
GRANT SELECT, INSERT, UPDATE, DELETE ON goals TO mingus_app;

-- The monthly-partitioned tables partition maintenance looks after, with their settings: how many months
-- ahead of the current one to premake, and optionally how many whole months before the current one to
-- keep (NULL: keep everything) and what to do with older partitions ('drop', or 'archive': detach and
-- move to the archive schema). Operators change a row to change the policy; no deployment needed.
CREATE TABLE partitioned_tables (
    table_name VARCHAR(63) PRIMARY KEY,
    premake_months INTEGER NOT NULL DEFAULT 3,
    retention_months INTEGER,
    retention_action VARCHAR(10) NOT NULL DEFAULT 'drop',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT valid_premake_months CHECK (premake_months BETWEEN 0 AND 36),
    CONSTRAINT valid_retention_months CHECK (retention_months >= 1),
    CONSTRAINT valid_retention_action CHECK (retention_action IN ('drop', 'archive'))
);
INSERT INTO partitioned_tables (table_name) VALUES
    ('user_health_checkins'), ('user_analytics'), ('activity_events');

CREATE SCHEMA archive;

-- Slow-statement monitoring (/ops/db) when the server preloads pg_stat_statements. Creating the extension
-- needs a superuser; without the library preloaded, or without the right, nothing happens and /ops/db
-- says "unavailable". The comment marks an extension this migration created, which its down removes.
DO $$
BEGIN
    IF 'pg_stat_statements' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
        AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')
        AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')
    THEN
        BEGIN
            CREATE EXTENSION pg_stat_statements;
            COMMENT ON EXTENSION pg_stat_statements IS 'created by mingus migration 20261101000011';
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_stat_statements not created: %', SQLERRM;
        END;
    END IF;
END
$$;
