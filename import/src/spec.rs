//! What is imported: each source table, its columns, their PostgreSQL types, rules and NULL policies.
//!
//! One policy for every column ([`Null`]): a value that is NULL or fails its rule becomes NULL when the
//! PostgreSQL column allows it, or the column's default when it has one, and the row is **rejected**
//! only when the column is NOT NULL without a default. Every NULL-ing, defaulting and repair is in the
//! report as `repaired`, with the original value. `migrations/sqlite-source.md` has the source side.

use crate::transform::Rule;

/// What an absent (NULL) or invalid value does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Null {
    /// The PostgreSQL column is nullable: NULL.
    Allowed,
    /// NOT NULL with a default: this value (COPY text).
    Default(&'static str),
    /// NOT NULL, defaulting to now(): the import's start time.
    ImportTime,
    /// NOT NULL without a default: the row is rejected.
    Reject,
}

#[derive(Debug)]
pub struct Column {
    /// The column in SQLite and in PostgreSQL (the names did not change).
    pub name: &'static str,
    /// The PostgreSQL type (staging uses the same, so checksums compare like with like).
    pub sql_type: &'static str,
    pub rule: Rule,
    pub null: Null,
}

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// The table code in imported ids (see `ids`).
    pub code: u8,
    /// Whether rows belong to a user (`user_id` → `users`).
    pub per_user: bool,
    /// Columns whose values are money, summed per user by verification.
    pub money: &'static [&'static str],
    pub columns: &'static [Column],
}

/// The code of the empty profiles created for users who had none.
pub const CREATED_PROFILE_CODE: u8 = 7;

const fn col(name: &'static str, sql_type: &'static str, rule: Rule, null: Null) -> Column {
    Column {
        name,
        sql_type,
        rule,
        null,
    }
}

const fn text(name: &'static str, max: usize) -> Column {
    col(name, "text", Rule::Text { max_chars: max }, Null::Allowed)
}

const UNBOUNDED: usize = 1 << 20;
const MONEY_MAX: i64 = 9_999_999_999;

pub const GENDERS: &[&str] = &["male", "female", "non_binary", "other", ""];
pub const RELATIONSHIP_STATUSES: &[&str] = &[
    "single",
    "married",
    "domestic_partnership",
    "divorced",
    "widowed",
    "",
];
pub const EDUCATION_LEVELS: &[&str] = &[
    "high_school",
    "some_college",
    "bachelors",
    "masters",
    "doctorate",
    "other",
];
const ACTIVITY_LEVELS: &[&str] = &["sedentary", "light", "moderate", "vigorous"];
const HEALTH_LEVELS: &[&str] = &["critical", "poor", "fair", "good", "excellent"];
const REMINDER_TYPES: &[&str] = &[
    "health_checkin",
    "financial_questionnaire",
    "goal_review",
    "budget_review",
    "custom",
];
const FREQUENCIES: &[&str] = &["once", "daily", "weekly", "monthly"];
const EVENT_TYPES: &[&str] = &[
    "send_code",
    "verify_success",
    "verify_failed",
    "change_phone",
    "resend_request",
];

const CREATED_AT: Column = col(
    "created_at",
    "timestamptz",
    Rule::Timestamp,
    Null::ImportTime,
);
const UPDATED_AT: Column = col(
    "updated_at",
    "timestamptz",
    Rule::Timestamp,
    Null::ImportTime,
);

pub const USERS: Table = Table {
    name: "users",
    code: 1,
    per_user: false,
    money: &[],
    columns: &[
        col("email", "varchar(255)", Rule::Email, Null::Reject),
        text("password_hash", 255),
        text("full_name", 255),
        text("phone_number", 50),
        col("is_active", "boolean", Rule::Bool, Null::Default("t")),
        CREATED_AT,
        UPDATED_AT,
    ],
};

const fn money(name: &'static str, max: i64, null: Null) -> Column {
    col(name, "numeric(12,2)", Rule::Money { min: 0, max }, null)
}

const fn int(name: &'static str, sql_type: &'static str, min: i64, max: i64, null: Null) -> Column {
    col(name, sql_type, Rule::Int { min, max }, null)
}

pub const USER_PROFILES: Table = Table {
    name: "user_profiles",
    code: 2,
    per_user: true,
    money: &[
        "monthly_income",
        "goal_amount",
        "current_savings",
        "current_debt",
    ],
    columns: &[
        money("monthly_income", 1_000_000, Null::Allowed),
        text("income_frequency", 50),
        text("primary_income_source", 100),
        text("secondary_income_source", 100),
        text("primary_goal", 100),
        money("goal_amount", 100_000_000, Null::Allowed),
        int("goal_timeline_months", "integer", 1, 600, Null::Allowed),
        text("age_range", 50),
        text("location_state", 50),
        text("location_city", 100),
        int("household_size", "integer", 1, 30, Null::Allowed),
        text("employment_status", 50),
        money("current_savings", MONEY_MAX, Null::Allowed),
        money("current_debt", MONEY_MAX, Null::Allowed),
        text("credit_score_range", 50),
        text("risk_tolerance", 50),
        text("investment_experience", 50),
        col("is_complete", "boolean", Rule::Bool, Null::Default("f")),
        // Revision 2 (demographics); absent in revision 1 files, read as NULL.
        text("first_name", 100),
        text("last_name", 100),
        col("gender", "varchar(20)", Rule::Enum(GENDERS), Null::Allowed),
        col("zip_code", "varchar(10)", Rule::Zip, Null::Allowed),
        int("dependents", "integer", 0, 20, Null::Allowed),
        col(
            "relationship_status",
            "varchar(50)",
            Rule::Enum(RELATIONSHIP_STATUSES),
            Null::Allowed,
        ),
        text("industry", 100),
        text("job_title", 100),
        col(
            "education_level",
            "varchar(50)",
            Rule::Enum(EDUCATION_LEVELS),
            Null::Allowed,
        ),
        text("timezone", 50),
        CREATED_AT,
        UPDATED_AT,
    ],
};

pub const USER_HEALTH_CHECKINS: Table = Table {
    name: "user_health_checkins",
    code: 3,
    per_user: true,
    money: &[],
    columns: &[
        col("checkin_date", "date", Rule::Date, Null::Reject),
        int("stress_level", "smallint", 1, 10, Null::Reject),
        int("energy_level", "smallint", 1, 10, Null::Reject),
        int("mood_rating", "smallint", 1, 10, Null::Reject),
        col(
            "sleep_hours",
            "numeric(4,2)",
            Rule::Decimal {
                scale: 2,
                min: 0,
                max: 24,
            },
            Null::Allowed,
        ),
        int(
            "physical_activity_minutes",
            "integer",
            0,
            1440,
            Null::Allowed,
        ),
        col(
            "physical_activity_level",
            "varchar(50)",
            Rule::Enum(ACTIVITY_LEVELS),
            Null::Allowed,
        ),
        int("relationships_rating", "smallint", 1, 10, Null::Allowed),
        text("relationships_notes", 500),
        int("mindfulness_minutes", "integer", 0, 1440, Null::Allowed),
        text("mindfulness_type", 100),
        text("notes", UNBOUNDED),
        CREATED_AT,
        UPDATED_AT,
    ],
};

pub const FINANCIAL_QUESTIONNAIRES: Table = Table {
    name: "financial_questionnaire_submissions",
    code: 4,
    per_user: true,
    money: &[
        "monthly_income",
        "monthly_expenses",
        "current_savings",
        "total_debt",
        "emergency_fund",
    ],
    columns: &[
        money("monthly_income", 1_000_000, Null::Reject),
        money("monthly_expenses", 1_000_000, Null::Reject),
        money("current_savings", 1_000_000_000, Null::Default("0.00")),
        money("total_debt", 1_000_000_000, Null::Default("0.00")),
        money("emergency_fund", 1_000_000_000, Null::Default("0.00")),
        int("risk_tolerance", "smallint", 1, 10, Null::Allowed),
        col(
            "financial_goals",
            "jsonb",
            Rule::Json { array: true },
            Null::Default("[]"),
        ),
        int("financial_health_score", "smallint", 0, 100, Null::Allowed),
        col(
            "financial_health_level",
            "varchar(50)",
            Rule::Enum(HEALTH_LEVELS),
            Null::Allowed,
        ),
        col(
            "recommendations",
            "jsonb",
            Rule::Json { array: true },
            Null::Default("[]"),
        ),
        col(
            "submitted_at",
            "timestamptz",
            Rule::Timestamp,
            Null::ImportTime,
        ),
    ],
};

pub const REMINDER_SCHEDULES: Table = Table {
    name: "reminder_schedules",
    code: 5,
    per_user: true,
    money: &[],
    columns: &[
        col(
            "reminder_type",
            "varchar(50)",
            Rule::Enum(REMINDER_TYPES),
            Null::Reject,
        ),
        col(
            "scheduled_date",
            "timestamptz",
            Rule::Timestamp,
            Null::Reject,
        ),
        col(
            "frequency",
            "varchar(20)",
            Rule::Enum(FREQUENCIES),
            Null::Default("once"),
        ),
        col("enabled", "boolean", Rule::Bool, Null::Default("t")),
        col(
            "preferences",
            "jsonb",
            Rule::Json { array: false },
            Null::Default("{}"),
        ),
        text("message", UNBOUNDED),
        CREATED_AT,
        UPDATED_AT,
    ],
};

pub const VERIFICATION_ANALYTICS: Table = Table {
    name: "verification_analytics",
    code: 6,
    per_user: true,
    money: &[],
    columns: &[
        col(
            "event_type",
            "varchar(30)",
            Rule::Enum(EVENT_TYPES),
            Null::Reject,
        ),
        col(
            "event_data",
            "jsonb",
            Rule::Json { array: false },
            Null::Default("{}"),
        ),
        CREATED_AT,
    ],
};

/// In load order: users first (children refer to them).
pub const TABLES: &[&Table] = &[
    &USERS,
    &USER_PROFILES,
    &USER_HEALTH_CHECKINS,
    &FINANCIAL_QUESTIONNAIRES,
    &REMINDER_SCHEDULES,
    &VERIFICATION_ANALYTICS,
];

impl Table {
    /// `id[, user_id], columns…`: the columns written to PostgreSQL, in order.
    pub fn target_columns(&self) -> Vec<&'static str> {
        let mut names = vec!["id"];
        if self.per_user {
            names.push("user_id");
        }
        names.extend(self.columns.iter().map(|c| c.name));
        names
    }
}
