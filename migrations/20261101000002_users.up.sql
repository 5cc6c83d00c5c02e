-- Users and their profiles. The seed's SQLite users had integer ids while every other table references
-- users(id) as UUID: ids are UUIDs here (the Supabase auth user id when users come from Supabase).
CREATE TABLE users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email VARCHAR(255) NOT NULL,
    -- NULL for users who sign in through the identity provider only.
    password_hash VARCHAR(255),
    full_name VARCHAR(255),
    phone_number VARCHAR(50),
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    -- Link to the Stripe customer (set by checkout.session.completed / customer events).
    stripe_customer_id VARCHAR(255),
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT valid_email CHECK (email ~ '^[^@\s]+@[^@\s]+$')
);
CREATE UNIQUE INDEX ix_users_email ON users (lower(email));
CREATE UNIQUE INDEX idx_users_stripe_customer_id ON users (stripe_customer_id) WHERE stripe_customer_id IS NOT NULL;

CREATE TABLE user_profiles (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    -- Financial profile (the seed's floats are money: DECIMAL here).
    monthly_income DECIMAL(12,2),
    income_frequency VARCHAR(50),
    primary_income_source VARCHAR(100),
    secondary_income_source VARCHAR(100),
    primary_goal VARCHAR(100),
    goal_amount DECIMAL(12,2),
    goal_timeline_months INTEGER,
    age_range VARCHAR(50),
    location_state VARCHAR(50),
    location_city VARCHAR(100),
    household_size INTEGER,
    employment_status VARCHAR(50),
    current_savings DECIMAL(12,2),
    current_debt DECIMAL(12,2),
    credit_score_range VARCHAR(50),
    risk_tolerance VARCHAR(50),
    investment_experience VARCHAR(50),
    is_complete BOOLEAN NOT NULL DEFAULT FALSE,
    -- Demographic fields added by the seed.
    first_name VARCHAR(100),
    last_name VARCHAR(100),
    gender VARCHAR(20),
    zip_code VARCHAR(10),
    dependents INTEGER DEFAULT 0,
    relationship_status VARCHAR(50),
    industry VARCHAR(100),
    job_title VARCHAR(100),
    naics_code VARCHAR(10),
    company_size VARCHAR(50),
    years_experience INTEGER,
    education_level VARCHAR(50),
    military_service BOOLEAN DEFAULT FALSE,
    veteran_status VARCHAR(50),
    disability_status BOOLEAN DEFAULT FALSE,
    preferred_language VARCHAR(10) DEFAULT 'en',
    timezone VARCHAR(50) DEFAULT 'UTC',
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT valid_gender CHECK (gender IN ('male', 'female', 'non_binary', 'other', '')),
    CONSTRAINT valid_zip_code CHECK (zip_code ~ '^\d{5}(-\d{4})?$'),
    CONSTRAINT valid_relationship_status CHECK (relationship_status IN ('single', 'married', 'domestic_partnership', 'divorced', 'widowed', '')),
    CONSTRAINT valid_education_level CHECK (education_level IN ('high_school', 'some_college', 'bachelors', 'masters', 'doctorate', 'other')),
    CONSTRAINT chk_monthly_income CHECK (monthly_income >= 0 AND monthly_income <= 1000000),
    CONSTRAINT valid_goal_amount CHECK (goal_amount >= 0 AND goal_amount <= 100000000),
    CONSTRAINT valid_current_savings CHECK (current_savings >= 0),
    CONSTRAINT valid_current_debt CHECK (current_debt >= 0),
    CONSTRAINT valid_dependents CHECK (dependents BETWEEN 0 AND 20),
    CONSTRAINT valid_household_size CHECK (household_size BETWEEN 1 AND 30),
    CONSTRAINT valid_years_experience CHECK (years_experience BETWEEN 0 AND 80),
    CONSTRAINT valid_goal_timeline CHECK (goal_timeline_months BETWEEN 1 AND 600)
);
-- user_id is UNIQUE, which already indexes it; the seed's idx_user_profiles_user_id would duplicate it.
