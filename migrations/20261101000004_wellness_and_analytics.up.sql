-- Wellness check-ins, financial questionnaires, reminders, verification events and the daily analytics.
-- user_health_checkins and user_analytics are range-partitioned by month, with a default partition for
-- rows outside the premade months (partition maintenance moves them out later).

CREATE TABLE user_health_checkins (
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The day the check-in is for, in the user's own zone. (The seed's "checkin_date <= CURRENT_DATE"
    -- check is not a valid CHECK: it depends on the clock; the API validates it at the edge.)
    checkin_date DATE NOT NULL,
    stress_level SMALLINT NOT NULL,
    energy_level SMALLINT NOT NULL,
    mood_rating SMALLINT NOT NULL,
    sleep_hours DECIMAL(4,2),
    physical_activity_minutes INTEGER,
    physical_activity_level VARCHAR(50),
    relationships_rating SMALLINT,
    relationships_notes VARCHAR(500),
    mindfulness_minutes INTEGER,
    mindfulness_type VARCHAR(100),
    notes TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (id, checkin_date),
    CONSTRAINT uq_user_checkin UNIQUE (user_id, checkin_date),
    CONSTRAINT valid_stress_level CHECK (stress_level BETWEEN 1 AND 10),
    CONSTRAINT valid_energy_level CHECK (energy_level BETWEEN 1 AND 10),
    CONSTRAINT valid_mood_rating CHECK (mood_rating BETWEEN 1 AND 10),
    CONSTRAINT valid_relationships_rating CHECK (relationships_rating BETWEEN 1 AND 10),
    CONSTRAINT valid_sleep_hours CHECK (sleep_hours BETWEEN 0 AND 24),
    CONSTRAINT valid_activity_minutes CHECK (physical_activity_minutes BETWEEN 0 AND 1440),
    CONSTRAINT valid_mindfulness_minutes CHECK (mindfulness_minutes BETWEEN 0 AND 1440),
    CONSTRAINT valid_activity_level CHECK (physical_activity_level IN ('sedentary', 'light', 'moderate', 'vigorous'))
) PARTITION BY RANGE (checkin_date);
CREATE INDEX idx_health_checkins_user_date ON user_health_checkins(user_id, checkin_date);
CREATE INDEX idx_health_checkins_date ON user_health_checkins(checkin_date);
CREATE TABLE user_health_checkins_default PARTITION OF user_health_checkins DEFAULT;
SELECT mingus_ensure_monthly_partitions('user_health_checkins', current_date, 4);

CREATE TABLE financial_questionnaire_submissions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    monthly_income DECIMAL(12,2) NOT NULL,
    monthly_expenses DECIMAL(12,2) NOT NULL,
    current_savings DECIMAL(12,2) NOT NULL DEFAULT 0,
    total_debt DECIMAL(12,2) NOT NULL DEFAULT 0,
    -- Savings set aside for emergencies (part of current_savings).
    emergency_fund DECIMAL(12,2) NOT NULL DEFAULT 0,
    risk_tolerance SMALLINT,
    financial_goals JSONB NOT NULL DEFAULT '[]'::jsonb,
    financial_health_score SMALLINT,
    financial_health_level VARCHAR(50),
    recommendations JSONB NOT NULL DEFAULT '[]'::jsonb,
    submitted_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT valid_monthly_income CHECK (monthly_income BETWEEN 0 AND 1000000),
    CONSTRAINT valid_monthly_expenses CHECK (monthly_expenses BETWEEN 0 AND 1000000),
    CONSTRAINT valid_current_savings CHECK (current_savings BETWEEN 0 AND 1000000000),
    CONSTRAINT valid_total_debt CHECK (total_debt BETWEEN 0 AND 1000000000),
    CONSTRAINT valid_emergency_fund CHECK (emergency_fund BETWEEN 0 AND 1000000000),
    CONSTRAINT valid_risk_tolerance CHECK (risk_tolerance BETWEEN 1 AND 10),
    CONSTRAINT valid_financial_health_score CHECK (financial_health_score BETWEEN 0 AND 100),
    CONSTRAINT valid_financial_health_level CHECK (financial_health_level IN ('critical', 'poor', 'fair', 'good', 'excellent'))
);
CREATE INDEX idx_financial_submissions_user_date ON financial_questionnaire_submissions(user_id, submitted_at);

CREATE TABLE reminder_schedules (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reminder_type VARCHAR(50) NOT NULL,
    -- The next occurrence (UTC instant). Recurring reminders advance it after each delivery.
    scheduled_date TIMESTAMPTZ NOT NULL,
    frequency VARCHAR(20) NOT NULL DEFAULT 'once',
    -- Wall-clock time in the user's zone (user_profiles.timezone) for recurring reminders, e.g. 09:00.
    local_time TIME,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    preferences JSONB NOT NULL DEFAULT '{}'::jsonb,
    message TEXT,
    last_sent_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT valid_reminder_type CHECK (reminder_type IN ('health_checkin', 'financial_questionnaire', 'goal_review', 'budget_review', 'custom')),
    CONSTRAINT valid_frequency CHECK (frequency IN ('once', 'daily', 'weekly', 'monthly'))
);
CREATE INDEX idx_reminder_schedules_user_due ON reminder_schedules(user_id, scheduled_date);
-- The minute sweep's scan: due and enabled.
CREATE INDEX idx_reminder_schedules_due ON reminder_schedules(scheduled_date) WHERE enabled;

CREATE TABLE verification_analytics (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    event_type VARCHAR(30) NOT NULL,
    -- Channel and outcome details (never the code itself).
    event_data JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT valid_event_type CHECK (event_type IN ('send_code', 'verify_success', 'verify_failed', 'change_phone', 'resend_request'))
);
CREATE INDEX idx_verification_analytics_user_date ON verification_analytics(user_id, created_at);
CREATE INDEX idx_verification_analytics_event_type ON verification_analytics(event_type, created_at);

CREATE TABLE user_analytics (
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    date DATE NOT NULL,
    login_count INTEGER NOT NULL DEFAULT 0,
    session_duration_minutes INTEGER NOT NULL DEFAULT 0,
    features_used JSONB NOT NULL DEFAULT '[]'::jsonb,
    pages_visited JSONB NOT NULL DEFAULT '[]'::jsonb,
    financial_health_score INTEGER,
    savings_rate DECIMAL(5,2),
    debt_to_income_ratio DECIMAL(5,2),
    emergency_fund_coverage DECIMAL(5,2),
    average_stress_level INTEGER,
    average_energy_level INTEGER,
    average_mood_rating INTEGER,
    health_checkins_completed INTEGER NOT NULL DEFAULT 0,
    goals_created INTEGER NOT NULL DEFAULT 0,
    goals_completed INTEGER NOT NULL DEFAULT 0,
    goals_progress_percentage DECIMAL(5,2),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (id, date),
    -- One row per user and day: the rollup upserts on it.
    CONSTRAINT uq_user_analytics_user_date UNIQUE (user_id, date),
    CONSTRAINT valid_financial_health_score CHECK (financial_health_score BETWEEN 0 AND 100),
    CONSTRAINT valid_savings_rate CHECK (savings_rate BETWEEN 0 AND 100),
    CONSTRAINT valid_stress_level CHECK (average_stress_level BETWEEN 1 AND 10),
    CONSTRAINT valid_energy_level CHECK (average_energy_level BETWEEN 1 AND 10),
    CONSTRAINT valid_mood_rating CHECK (average_mood_rating BETWEEN 1 AND 10),
    CONSTRAINT valid_debt_to_income CHECK (debt_to_income_ratio >= 0),
    CONSTRAINT valid_emergency_fund_coverage CHECK (emergency_fund_coverage >= 0),
    CONSTRAINT valid_goals_progress CHECK (goals_progress_percentage BETWEEN 0 AND 100),
    CONSTRAINT valid_counts CHECK (login_count >= 0 AND session_duration_minutes >= 0
        AND health_checkins_completed >= 0 AND goals_created >= 0 AND goals_completed >= 0)
) PARTITION BY RANGE (date);
-- (user_id, date) is indexed by the unique constraint; the seed's idx_user_analytics_user_date would duplicate it.
CREATE INDEX idx_user_analytics_date ON user_analytics(date);
CREATE TABLE user_analytics_default PARTITION OF user_analytics DEFAULT;
SELECT mingus_ensure_monthly_partitions('user_analytics', current_date, 4);
