//! The e-mail templates: one minijinja environment, built once, with a subject, a text part and an HTML
//! part per [`Template`]. The files live in `templates/` and are embedded in the binary; `*.html.j2`
//! is HTML-escaped automatically, the text and subject templates are not. Missing data is an error
//! (semi-strict undefined), never an empty hole in an e-mail.
//!
//! Every template sees the delivery's `data` at the top level, plus `first_name` (or "there"),
//! `app_url` (the web app), `unsubscribe_url` (non-transactional e-mails only) and `timezone` (the
//! user's, for the `date` and `datetime` filters). Filters: `money(currency)` (`"29.00"|money("usd")`
//! → `$29.00`), `date` (RFC 3339 string or Unix seconds → `December 1, 2026` in the user's zone),
//! `datetime` (→ `Monday, March 9, 2026 at 9:00 AM EDT`), and the built-in `title` for tier names.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::value::Value as JinjaValue;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::Template;

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct RenderInput<'a> {
    pub template: Template,
    pub data: &'a Value,
    pub first_name: Option<&'a str>,
    pub timezone: Option<&'a str>,
    pub app_url: &'a str,
    pub unsubscribe_url: Option<&'a str>,
}

macro_rules! files {
    ($($name:literal),* $(,)?) => {
        &[$(
            (concat!($name, ".txt.j2"), include_str!(concat!("templates/", $name, ".txt.j2"))),
            (concat!($name, ".html.j2"), include_str!(concat!("templates/", $name, ".html.j2"))),
        )*]
    };
}

/// Every file: the layouts, then a text and an HTML template per [`Template`] (same names).
const FILES: &[(&str, &str)] = files!(
    "layout",
    "trial_ending",
    "trial_ended",
    "payment_failed",
    "payment_action_required",
    "renewal_reminder",
    "subscription_cancelled",
    "team_invitation",
    "report_ready",
    "reminder_health_checkin",
    "reminder_financial_questionnaire",
    "reminder_goal_review",
    "reminder_budget_review",
    "reminder_custom",
);

/// Subjects are one-line templates (not escaped: a header, not HTML).
fn subject_source(template: Template) -> &'static str {
    match template {
        Template::TrialEnding => "Your Mingus {{ tier|title }} trial ends {{ trial_end|date }}",
        Template::TrialEnded => "Your Mingus {{ tier|title }} trial has ended",
        Template::PaymentFailed => {
            "We couldn't process your payment of {{ amount|money(currency) }}"
        }
        Template::PaymentActionRequired => {
            "Action required: confirm your payment of {{ amount|money(currency) }}"
        }
        Template::RenewalReminder => {
            "Your annual Mingus {{ tier|title }} plan renews {{ renews_at|date }}"
        }
        Template::SubscriptionCancelled => "Your Mingus {{ tier|title }} subscription has ended",
        Template::TeamInvitation => "{{ inviter_name }} invited you to {{ team_name }} on Mingus",
        Template::ReportReady => "Your report \u{201c}{{ report_name }}\u{201d} is ready",
        Template::ReminderHealthCheckin => "Time for your Mingus health check-in",
        Template::ReminderFinancialQuestionnaire => "Your financial questionnaire is waiting",
        Template::ReminderGoalReview => "Time to review your goals",
        Template::ReminderBudgetReview => "Time to review your budget",
        Template::ReminderCustom => "Reminder from Mingus",
    }
}

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html.j2") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_formatter(html_formatter);
    env.add_filter("money", money);
    env.add_filter("date", date);
    env.add_filter("datetime", datetime);
    for (name, source) in FILES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("e-mail template {name} does not compile: {e:#}"));
    }
    env
});

/// Renders the subject and both parts.
pub fn render(input: &RenderInput<'_>) -> Result<Rendered, Error> {
    let mut context: Map<String, Value> = match input.data {
        Value::Object(map) => map.clone(),
        Value::Null => Map::new(),
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("e-mail data must be a JSON object, got {other}"),
            ));
        }
    };
    context.insert(
        "first_name".into(),
        Value::from(
            input
                .first_name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or("there"),
        ),
    );
    context.insert("app_url".into(), Value::from(input.app_url));
    context.insert(
        "unsubscribe_url".into(),
        input.unsubscribe_url.map_or(Value::Null, Value::from),
    );
    context.insert(
        "timezone".into(),
        Value::from(input.timezone.unwrap_or("UTC")),
    );
    let context = JinjaValue::from_serialize(&context);
    let name = input.template.name();
    // Subjects are short: compiling one per render costs microseconds.
    let subject = ENV
        .template_from_str(subject_source(input.template))?
        .render(&context)?;
    let text = ENV
        .get_template(&format!("{name}.txt.j2"))?
        .render(&context)?;
    let html = ENV
        .get_template(&format!("{name}.html.j2"))?
        .render(&context)?;
    Ok(Rendered {
        subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
        text: text.trim().to_owned() + "\n",
        html,
    })
}

/// HTML-escapes `& < > " '` like Jinja2's markupsafe, but not `/` (minijinja's default escapes it as
/// `&#x2f;`, which turns every link into an entity-encoded URL: valid HTML, but spam filters count
/// obfuscated URLs against a message). Everything else is minijinja's default formatter.
fn html_formatter(out: &mut Output, state: &State, value: &JinjaValue) -> Result<(), Error> {
    if state.auto_escape() != AutoEscape::Html || value.is_safe() || value.is_none() {
        return minijinja::escape_formatter(out, state, value);
    }
    let text = match value.as_str() {
        Some(text) => text.to_owned(),
        None => value.to_string(),
    };
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    out.write_str(&escaped).map_err(Error::from)
}

fn zone(state: &State) -> Tz {
    state
        .lookup("timezone")
        .and_then(|v| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(Tz::UTC)
}

fn instant(value: &JinjaValue) -> Result<DateTime<Utc>, Error> {
    if let Some(text) = value.as_str() {
        return DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("{text:?} is not a date: {e}"),
                )
            });
    }
    if let Ok(seconds) = i64::try_from(value.clone()) {
        return DateTime::from_timestamp(seconds, 0)
            .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "timestamp out of range"));
    }
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("cannot read a date from {value}"),
    ))
}

/// `December 1, 2026` in the user's zone.
fn date(state: &State, value: JinjaValue) -> Result<String, Error> {
    let at = instant(&value)?.with_timezone(&zone(state));
    Ok(at.format("%B %-d, %Y").to_string())
}

/// `Monday, March 9, 2026 at 9:00 AM EDT` in the user's zone.
fn datetime(state: &State, value: JinjaValue) -> Result<String, Error> {
    let at = instant(&value)?.with_timezone(&zone(state));
    Ok(at.format("%A, %B %-d, %Y at %-I:%M %p %Z").to_string())
}

/// `29.00` + `usd` → `$29.00`; other currencies: `1,000 JPY`. Amounts are decimal strings or numbers.
fn money(value: JinjaValue, currency: String) -> Result<String, Error> {
    let raw = value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string());
    let amount: Decimal = raw.parse().map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("{raw:?} is not an amount: {e}"),
        )
    })?;
    let code = currency.to_ascii_uppercase();
    let scale = crate::billing::money::exponent(&code);
    let digits = format!("{:.*}", scale as usize, amount.round_dp(scale).abs());
    let (whole, fraction) = digits.split_once('.').unwrap_or((&digits, ""));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let number = if fraction.is_empty() {
        grouped
    } else {
        format!("{grouped}.{fraction}")
    };
    let sign = if amount.is_sign_negative() && !amount.is_zero() {
        "-"
    } else {
        ""
    };
    Ok(match code.as_str() {
        "USD" => format!("{sign}${number}"),
        "EUR" => format!("{sign}€{number}"),
        "GBP" => format!("{sign}£{number}"),
        _ => format!("{sign}{number} {code}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input<'a>(template: Template, data: &'a Value) -> RenderInput<'a> {
        RenderInput {
            template,
            data,
            first_name: Some("Pat"),
            timezone: Some("America/New_York"),
            app_url: "https://app.mingus.test",
            unsubscribe_url: None,
        }
    }

    #[test]
    fn every_subject_compiles() {
        for template in Template::ALL {
            ENV.template_from_str(subject_source(template))
                .unwrap_or_else(|e| panic!("subject of {template}: {e:#}"));
        }
    }

    #[test]
    fn money_formats_by_currency() {
        let m = |a: &str, c: &str| money(JinjaValue::from(a), c.into()).unwrap();
        assert_eq!(m("29.00", "usd"), "$29.00");
        assert_eq!(m("1234567.5", "USD"), "$1,234,567.50");
        assert_eq!(m("990", "eur"), "€990.00");
        assert_eq!(m("1000", "jpy"), "1,000 JPY");
        assert_eq!(m("-5", "usd"), "-$5.00");
    }

    #[test]
    fn dates_are_shown_in_the_users_zone() {
        let data = json!({"tier": "professional", "trial_end": "2026-12-01T03:00:00Z"});
        let rendered = render(&input(Template::TrialEnding, &data)).unwrap();
        // 03:00 UTC is still November 30 in New York.
        assert_eq!(
            rendered.subject,
            "Your Mingus Professional trial ends November 30, 2026"
        );
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let data = json!({"report_id": "r1", "report_name": "Q3 <Budget> & \"Savings\""});
        let rendered = render(&input(Template::ReportReady, &data)).unwrap();
        assert!(
            rendered
                .html
                .contains("Q3 &lt;Budget&gt; &amp; &quot;Savings&quot;")
        );
        assert!(
            rendered
                .html
                .contains("href=\"https://app.mingus.test/reports/r1\""),
            "links are not entity-encoded"
        );
        assert!(!rendered.html.contains("<Budget>"));
        assert!(rendered.text.contains("Q3 <Budget> & \"Savings\""));
        assert_eq!(
            rendered.subject,
            "Your report \u{201c}Q3 <Budget> & \"Savings\"\u{201d} is ready"
        );
    }

    #[test]
    fn missing_data_is_an_error_not_a_hole() {
        let err = render(&input(Template::PaymentFailed, &json!({}))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UndefinedError, "{err:#}");
    }
}
