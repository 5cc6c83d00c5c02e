//! A report request as the API receives it, validated into a [`ReportSpec`] (pure, no I/O), and what
//! each kind costs: the feature that must be included and the `*_per_month` metric a request consumes.
//!
//! | kind | feature | metric (one unit per report) |
//! |---|---|---|
//! | `financial`, `health`, `goals` | `basic_analytics` | `financial_reports_per_month` |
//! | `custom` | `custom_reports` | `custom_reports_per_month` |
//!
//! The tiers' "financial reports" allowance is their standard-report allowance: the three standard kinds
//! share it. A custom report counts only against the custom allowance, not also against the standard one.

use chrono::NaiveDate;
use serde::Deserialize;

use super::{Period, ReportFormat, ReportKind, ReportSpec};

/// The longest period a report covers, in days (both ends included): a leap year.
pub const MAX_PERIOD_DAYS: i64 = 366;

/// The standard kinds a custom report combines, in their canonical order.
pub const SECTION_KINDS: [ReportKind; 3] =
    [ReportKind::Financial, ReportKind::Health, ReportKind::Goals];

/// The body of `POST /v1/reports`. Strings, not typed fields, so each bad value gets its own error code
/// instead of a generic deserialisation error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    pub kind: String,
    pub period_start: String,
    pub period_end: String,
    /// `json` (default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
    /// Custom reports: the kinds whose sections they combine (default: all three).
    #[serde(default)]
    pub sections: Option<Vec<String>>,
}

/// Why a request is refused; [`InvalidRequest::code`] is the API's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("unknown kind {0:?}; kinds are financial, health, goals, custom")]
    Kind(String),
    #[error("unknown format {0:?}; formats are json, csv")]
    Format(String),
    #[error("{field} must be a date written YYYY-MM-DD, not {value:?}")]
    Date { field: &'static str, value: String },
    #[error("period_start ({start}) is after period_end ({end})")]
    Inverted { start: NaiveDate, end: NaiveDate },
    #[error("period_end ({end}) is in the future (today is {today}, UTC)")]
    Future { end: NaiveDate, today: NaiveDate },
    #[error("the period covers {days} days; at most {MAX_PERIOD_DAYS} are allowed")]
    TooLong { days: i64 },
    #[error("{0}")]
    Sections(String),
}

impl InvalidRequest {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Kind(_) => "invalid_kind",
            Self::Format(_) => "invalid_format",
            Self::Date { .. } => "invalid_date",
            Self::Inverted { .. } => "period_inverted",
            Self::Future { .. } => "period_in_future",
            Self::TooLong { .. } => "period_too_long",
            Self::Sections(_) => "invalid_sections",
        }
    }
}

impl ReportKind {
    /// The feature a tier must include for this kind.
    pub fn feature(self) -> &'static str {
        match self {
            Self::Custom => "custom_reports",
            _ => "basic_analytics",
        }
    }

    /// The usage metric one report of this kind consumes.
    pub fn metric(self) -> &'static str {
        match self {
            Self::Custom => "custom_reports_per_month",
            _ => "financial_reports_per_month",
        }
    }
}

impl ReportFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Json, Self::Csv]
            .into_iter()
            .find(|f| f.name() == name)
    }

    /// The download's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json; charset=utf-8",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

impl ReportSpec {
    /// The download's file name: `mingus-<kind>-<start>-<end>.<ext>`.
    pub fn file_name(&self) -> String {
        format!(
            "mingus-{}-{}-{}.{}",
            self.kind.name(),
            self.period.start,
            self.period.end,
            self.format.name()
        )
    }

    /// A human name for e-mails: "Financial report, 2026-01-01 – 2026-01-31".
    pub fn title(&self) -> String {
        let kind = match self.kind {
            ReportKind::Financial => "Financial",
            ReportKind::Health => "Health",
            ReportKind::Goals => "Goals",
            ReportKind::Custom => "Custom",
        };
        format!(
            "{kind} report, {} \u{2013} {}",
            self.period.start, self.period.end
        )
    }

    /// The section names as stored (`reports.sections`).
    pub fn section_names(&self) -> Vec<String> {
        self.sections.iter().map(|k| k.name().to_owned()).collect()
    }
}

/// A strict `YYYY-MM-DD` (chrono alone also accepts one-digit months and days, and signed years).
fn parse_date(field: &'static str, value: &str) -> Result<NaiveDate, InvalidRequest> {
    let bad = || InvalidRequest::Date {
        field,
        value: value.chars().take(40).collect(),
    };
    let bytes = value.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shaped {
        return Err(bad());
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| bad())
}

/// Custom reports: the named kinds, deduplicated, in canonical order (default: all three).
fn parse_sections(
    kind: ReportKind,
    sections: Option<&[String]>,
) -> Result<Vec<ReportKind>, InvalidRequest> {
    if kind != ReportKind::Custom {
        return match sections {
            None => Ok(Vec::new()),
            Some(_) => Err(InvalidRequest::Sections(format!(
                "sections are only for custom reports, not {}",
                kind.name()
            ))),
        };
    }
    let Some(names) = sections else {
        return Ok(SECTION_KINDS.to_vec());
    };
    if names.is_empty() {
        return Err(InvalidRequest::Sections(
            "sections must name at least one of financial, health, goals".into(),
        ));
    }
    let mut chosen = Vec::new();
    for name in names {
        match ReportKind::parse(name).filter(|k| SECTION_KINDS.contains(k)) {
            Some(kind) => chosen.push(kind),
            None => {
                return Err(InvalidRequest::Sections(format!(
                    "unknown section {:?}; sections are financial, health, goals",
                    name.chars().take(40).collect::<String>()
                )));
            }
        }
    }
    Ok(SECTION_KINDS
        .into_iter()
        .filter(|k| chosen.contains(k))
        .collect())
}

impl ReportRequest {
    /// The spec this request asks for, checked against `today` (UTC): the period must have ended by
    /// today, start no later than it ends, and cover at most [`MAX_PERIOD_DAYS`] days.
    pub fn validate(&self, today: NaiveDate) -> Result<ReportSpec, InvalidRequest> {
        let kind = ReportKind::parse(&self.kind)
            .ok_or_else(|| InvalidRequest::Kind(self.kind.chars().take(40).collect()))?;
        let format = match self.format.as_deref() {
            None => ReportFormat::Json,
            Some(name) => ReportFormat::parse(name)
                .ok_or_else(|| InvalidRequest::Format(name.chars().take(40).collect()))?,
        };
        let start = parse_date("period_start", &self.period_start)?;
        let end = parse_date("period_end", &self.period_end)?;
        if start > end {
            return Err(InvalidRequest::Inverted { start, end });
        }
        if end > today {
            return Err(InvalidRequest::Future { end, today });
        }
        let days = (end - start).num_days() + 1;
        if days > MAX_PERIOD_DAYS {
            return Err(InvalidRequest::TooLong { days });
        }
        let sections = parse_sections(kind, self.sections.as_deref())?;
        Ok(ReportSpec {
            kind,
            period: Period { start, end },
            format,
            sections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn request(kind: &str, start: &str, end: &str) -> ReportRequest {
        ReportRequest {
            kind: kind.into(),
            period_start: start.into(),
            period_end: end.into(),
            format: None,
            sections: None,
        }
    }

    const TODAY: &str = "2026-03-15";

    fn check(request: &ReportRequest) -> Result<ReportSpec, InvalidRequest> {
        request.validate(date(TODAY))
    }

    #[test]
    fn a_valid_request_becomes_its_spec() {
        let spec = check(&request("health", "2026-02-01", "2026-02-28")).unwrap();
        assert_eq!(spec.kind, ReportKind::Health);
        assert_eq!(spec.format, ReportFormat::Json);
        assert_eq!(spec.period.start, date("2026-02-01"));
        assert!(spec.sections.is_empty());
        assert_eq!(spec.file_name(), "mingus-health-2026-02-01-2026-02-28.json");
        let today = check(&request("goals", TODAY, TODAY)).unwrap();
        assert_eq!(today.period.end, date(TODAY), "a period may end today");
    }

    #[test]
    fn dates_must_be_strict_and_the_period_ordered_past_and_at_most_366_days() {
        for bad in [
            "2026-2-01",
            "2026-02-30",
            "20260201",
            "+2026-02-01",
            "",
            "2026-02-01T00:00:00Z",
        ] {
            let err = check(&request("financial", bad, "2026-03-01")).unwrap_err();
            assert_eq!(err.code(), "invalid_date", "{bad:?}");
        }
        let inverted = check(&request("financial", "2026-03-02", "2026-03-01")).unwrap_err();
        assert_eq!(inverted.code(), "period_inverted");
        let future = check(&request("financial", "2026-03-01", "2026-03-16")).unwrap_err();
        assert_eq!(future.code(), "period_in_future");
        assert!(
            check(&request("financial", "2024-01-01", "2024-12-31")).is_ok(),
            "366 days"
        );
        let long = check(&request("financial", "2024-01-01", "2025-01-01")).unwrap_err();
        assert_eq!(long, InvalidRequest::TooLong { days: 367 });
    }

    #[test]
    fn kinds_formats_and_sections_are_checked() {
        assert_eq!(
            check(&request("weekly", "2026-01-01", "2026-01-31"))
                .unwrap_err()
                .code(),
            "invalid_kind"
        );
        let mut csv = request("financial", "2026-01-01", "2026-01-31");
        csv.format = Some("csv".into());
        assert_eq!(check(&csv).unwrap().format, ReportFormat::Csv);
        csv.format = Some("pdf".into());
        assert_eq!(check(&csv).unwrap_err().code(), "invalid_format");

        let custom = check(&request("custom", "2026-01-01", "2026-01-31")).unwrap();
        assert_eq!(
            custom.sections, SECTION_KINDS,
            "custom defaults to every section"
        );
        let mut picked = request("custom", "2026-01-01", "2026-01-31");
        picked.sections = Some(vec!["goals".into(), "financial".into(), "goals".into()]);
        assert_eq!(
            check(&picked).unwrap().sections,
            [ReportKind::Financial, ReportKind::Goals]
        );
        for bad in [vec![], vec!["custom".to_owned()], vec!["budget".to_owned()]] {
            picked.sections = Some(bad.clone());
            assert_eq!(
                check(&picked).unwrap_err().code(),
                "invalid_sections",
                "{bad:?}"
            );
        }
        let mut sectioned = request("health", "2026-01-01", "2026-01-31");
        sectioned.sections = Some(vec!["health".into()]);
        assert_eq!(check(&sectioned).unwrap_err().code(), "invalid_sections");
    }

    #[test]
    fn kinds_map_to_their_feature_and_metric() {
        for kind in SECTION_KINDS {
            assert_eq!(kind.feature(), "basic_analytics");
            assert_eq!(kind.metric(), "financial_reports_per_month");
        }
        assert_eq!(ReportKind::Custom.feature(), "custom_reports");
        assert_eq!(ReportKind::Custom.metric(), "custom_reports_per_month");
        for kind in ReportKind::ALL {
            assert_eq!(
                crate::entitlements::features::metric_of(kind.feature()),
                Some(kind.metric()),
                "the entitlements catalogue meters {} by the metric reports consume",
                kind.name()
            );
        }
    }
}
