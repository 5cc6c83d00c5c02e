//! The SQLite schema of the Flask/SQLAlchemy development database (`migrations/sqlite-source.md`).
//!
//! The Flask app migrated its SQLite file with Alembic (Flask-Migrate), so `alembic_version` names the
//! schema a file has. Two revisions are known: the first schema, and the one that added the
//! demographic fields to `user_profiles`. The fixture generator writes the latest.

/// Alembic revision of the first schema (no demographic fields).
pub const REVISION_BASE: &str = "3f2a9c1d7b10";
/// Alembic revision that added the demographic fields to `user_profiles`.
pub const REVISION_DEMOGRAPHICS: &str = "8e41b0c6d925";
pub const KNOWN_REVISIONS: &[&str] = &[REVISION_BASE, REVISION_DEMOGRAPHICS];

/// The first schema, as SQLAlchemy 1.x created it on SQLite: `FLOAT` money, `DATETIME`/`DATE` stored as
/// text, `BOOLEAN` as 0/1, JSON in `TEXT`, foreign keys declared but not enforced (SQLite's default), and
/// `ix_users_email` case-sensitive.
pub const BASE_DDL: &str = r#"
CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
CREATE TABLE users (
    id INTEGER NOT NULL,
    email VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255),
    full_name VARCHAR(255),
    phone_number VARCHAR(50),
    is_active BOOLEAN,
    created_at DATETIME,
    updated_at DATETIME,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX ix_users_email ON users (email);
CREATE TABLE user_profiles (
    id INTEGER NOT NULL,
    user_id INTEGER,
    monthly_income FLOAT,
    income_frequency VARCHAR(50),
    primary_income_source VARCHAR(100),
    secondary_income_source VARCHAR(100),
    primary_goal VARCHAR(100),
    goal_amount FLOAT,
    goal_timeline_months INTEGER,
    age_range VARCHAR(50),
    location_state VARCHAR(50),
    location_city VARCHAR(100),
    household_size INTEGER,
    employment_status VARCHAR(50),
    current_savings FLOAT,
    current_debt FLOAT,
    credit_score_range VARCHAR(50),
    risk_tolerance VARCHAR(50),
    investment_experience VARCHAR(50),
    is_complete BOOLEAN,
    created_at DATETIME,
    updated_at DATETIME,
    PRIMARY KEY (id),
    FOREIGN KEY(user_id) REFERENCES users (id)
);
CREATE TABLE user_health_checkins (
    id INTEGER NOT NULL,
    user_id INTEGER,
    checkin_date DATE,
    stress_level INTEGER,
    energy_level INTEGER,
    mood_rating INTEGER,
    sleep_hours FLOAT,
    physical_activity_minutes INTEGER,
    physical_activity_level VARCHAR(50),
    relationships_rating INTEGER,
    relationships_notes VARCHAR(500),
    mindfulness_minutes INTEGER,
    mindfulness_type VARCHAR(100),
    notes TEXT,
    created_at DATETIME,
    updated_at DATETIME,
    PRIMARY KEY (id),
    FOREIGN KEY(user_id) REFERENCES users (id)
);
CREATE TABLE financial_questionnaire_submissions (
    id INTEGER NOT NULL,
    user_id INTEGER,
    monthly_income FLOAT,
    monthly_expenses FLOAT,
    current_savings FLOAT,
    total_debt FLOAT,
    emergency_fund FLOAT,
    risk_tolerance INTEGER,
    financial_goals TEXT,
    financial_health_score INTEGER,
    financial_health_level VARCHAR(50),
    recommendations TEXT,
    submitted_at DATETIME,
    PRIMARY KEY (id),
    FOREIGN KEY(user_id) REFERENCES users (id)
);
CREATE TABLE reminder_schedules (
    id INTEGER NOT NULL,
    user_id INTEGER,
    reminder_type VARCHAR(50),
    scheduled_date DATETIME,
    frequency VARCHAR(20),
    enabled BOOLEAN,
    preferences TEXT,
    message TEXT,
    created_at DATETIME,
    updated_at DATETIME,
    PRIMARY KEY (id),
    FOREIGN KEY(user_id) REFERENCES users (id)
);
CREATE TABLE verification_analytics (
    id INTEGER NOT NULL,
    user_id INTEGER,
    event_type VARCHAR(30),
    event_data TEXT,
    created_at DATETIME,
    PRIMARY KEY (id),
    FOREIGN KEY(user_id) REFERENCES users (id)
);
"#;

/// Revision 8e41b0c6d925: the demographic fields, added with `ALTER TABLE … ADD COLUMN` as Alembic's
/// batch mode does on SQLite (no CHECK constraints: SQLite cannot add them to an existing table).
pub const DEMOGRAPHICS_DDL: &str = r#"
ALTER TABLE user_profiles ADD COLUMN first_name VARCHAR(100);
ALTER TABLE user_profiles ADD COLUMN last_name VARCHAR(100);
ALTER TABLE user_profiles ADD COLUMN gender VARCHAR(20);
ALTER TABLE user_profiles ADD COLUMN zip_code VARCHAR(10);
ALTER TABLE user_profiles ADD COLUMN dependents INTEGER;
ALTER TABLE user_profiles ADD COLUMN relationship_status VARCHAR(50);
ALTER TABLE user_profiles ADD COLUMN industry VARCHAR(100);
ALTER TABLE user_profiles ADD COLUMN job_title VARCHAR(100);
ALTER TABLE user_profiles ADD COLUMN education_level VARCHAR(50);
ALTER TABLE user_profiles ADD COLUMN timezone VARCHAR(50);
"#;
