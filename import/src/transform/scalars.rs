//! Text, e-mail, integers, booleans, JSON, fixed lists and ZIP codes.

use super::{Outcome, Raw};

/// Text: SQLite numbers in a text column become their decimal text. NUL bytes (which PostgreSQL text
/// cannot hold) are removed and reported; emoji and every other character pass unchanged. Longer than
/// the column allows is invalid: cutting would lose data without anyone deciding to.
pub fn scrub_text(raw: Raw<'_>, max_chars: usize) -> Outcome {
    let text = match raw {
        Raw::Int(i) => return Outcome::Value(Some(i.to_string())),
        Raw::Real(r) => return Outcome::Value(Some(r.to_string())),
        Raw::Text(t) => t,
        Raw::Null | Raw::Bytes(_) => return Outcome::Value(None),
    };
    let chars = text.chars().filter(|c| *c != '\0').count();
    if chars > max_chars {
        return Outcome::Invalid(format!("{chars} characters, at most {max_chars} fit"));
    }
    if text.contains('\0') {
        return Outcome::Repaired(text.replace('\0', ""), "NUL bytes removed");
    }
    Outcome::Value(Some(text.to_owned()))
}

/// E-mail: trimmed and lower-cased (Unicode lower case; SQLite's `ix_users_email` was case-sensitive,
/// PostgreSQL's is on `lower(email)`). It must be `local@domain` without spaces, at most 255 characters.
/// Duplicates after folding are decided per table, not here (see `reconcile`).
pub fn fold_email(raw: Raw<'_>) -> Outcome {
    let Raw::Text(text) = raw else {
        return Outcome::Invalid(format!("{} is not an e-mail address", raw.display()));
    };
    let folded = text.trim().to_lowercase();
    let valid = folded.chars().count() <= 255
        && !folded.chars().any(|c| c.is_whitespace() || c == '\0')
        && matches!(folded.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if valid {
        Outcome::Value(Some(folded))
    } else {
        Outcome::Invalid(format!("{:?} is not an e-mail address", text))
    }
}

/// An integer within `[min, max]`: INTEGER, a REAL without a fraction (`5.0`), or such text.
pub fn parse_int(raw: Raw<'_>, min: i64, max: i64) -> Outcome {
    let number = match raw {
        Raw::Int(i) => Some(i),
        Raw::Real(r) => whole(r),
        Raw::Text(t) => t
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| t.trim().parse::<f64>().ok().and_then(whole)),
        Raw::Null | Raw::Bytes(_) => None,
    };
    match number {
        None => Outcome::Invalid(format!("{} is not a whole number", raw.display())),
        Some(n) if n < min || n > max => Outcome::Invalid(format!("{n} is outside [{min}, {max}]")),
        Some(n) => Outcome::Value(Some(n.to_string())),
    }
}

fn whole(r: f64) -> Option<i64> {
    (r.is_finite() && r.fract() == 0.0 && r.abs() < 9e15).then_some(r as i64)
}

/// Booleans: 1/0 (how SQLAlchemy stores them), and the text forms true/false, t/f, yes/no, y/n, on/off,
/// 1/0 in any case. Anything else (2, "maybe") is invalid.
pub fn parse_bool(raw: Raw<'_>) -> Outcome {
    let value = match raw {
        Raw::Int(0) => Some(false),
        Raw::Int(1) => Some(true),
        Raw::Real(0.0) => Some(false),
        Raw::Real(1.0) => Some(true),
        Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "t" | "yes" | "y" | "on" => Some(true),
            "0" | "false" | "f" | "no" | "n" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    };
    match value {
        Some(b) => Outcome::Value(Some(if b { "t" } else { "f" }.into())),
        None => Outcome::Invalid(format!("{} is not a boolean", raw.display())),
    }
}

/// JSON text that must parse and be an array (or an object). The stored text is the re-serialised value
/// (compact); `\u0000` inside strings, which `jsonb` refuses, is removed and reported.
pub fn parse_json(raw: Raw<'_>, array: bool) -> Outcome {
    let Raw::Text(text) = raw else {
        return Outcome::Invalid(format!("{} is not JSON text", raw.display()));
    };
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(err) => return Outcome::Invalid(format!("invalid JSON: {err}")),
    };
    let shape_ok = if array {
        value.is_array()
    } else {
        value.is_object()
    };
    if !shape_ok {
        let want = if array { "an array" } else { "an object" };
        return Outcome::Invalid(format!("JSON is not {want}"));
    }
    let serialised = value.to_string();
    if serialised.contains("\\u0000") {
        return Outcome::Repaired(serialised.replace("\\u0000", ""), "NUL characters removed");
    }
    Outcome::Value(Some(serialised))
}

/// A value of a fixed list (the seed's CHECK lists): trimmed, lower-cased, spaces and hyphens turned
/// into underscores (`Non-Binary` → `non_binary`, reported as repaired); still not in the list → invalid.
pub fn parse_enum(raw: Raw<'_>, allowed: &[&str]) -> Outcome {
    let Raw::Text(text) = raw else {
        return Outcome::Invalid(format!("{} is not one of {allowed:?}", raw.display()));
    };
    let normalised = text.trim().to_lowercase().replace([' ', '-'], "_");
    if !allowed.contains(&normalised.as_str()) {
        return Outcome::Invalid(format!("{text:?} is not one of {allowed:?}"));
    }
    if normalised == text {
        Outcome::Value(Some(normalised))
    } else {
        Outcome::Repaired(normalised, "case or spacing normalised")
    }
}

/// US ZIP codes: `12345` and `12345-6789` as they are; `12345-` loses its hyphen; three or four digits
/// are a ZIP that lost its leading zeros by being stored as a number (`2134` is Boston's `02134`) and are
/// padded; nine digits get their hyphen. Anything else is invalid.
pub fn parse_zip(raw: Raw<'_>) -> Outcome {
    let text = match raw {
        Raw::Int(i) => i.to_string(),
        Raw::Text(t) => t.trim().to_owned(),
        _ => return Outcome::Invalid(format!("{} is not a ZIP code", raw.display())),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match text.split_once('-') {
        None if text.len() == 5 && digits(&text) => Outcome::Value(Some(text)),
        None if (3..=4).contains(&text.len()) && digits(&text) => {
            Outcome::Repaired(format!("{text:0>5}"), "leading zeros restored")
        }
        None if text.len() == 9 && digits(&text) => Outcome::Repaired(
            format!("{}-{}", &text[..5], &text[5..]),
            "ZIP+4 hyphen added",
        ),
        Some((five, "")) if five.len() == 5 && digits(five) => {
            Outcome::Repaired(five.to_owned(), "trailing hyphen removed")
        }
        Some((five, four))
            if five.len() == 5 && four.len() == 4 && digits(five) && digits(four) =>
        {
            Outcome::Value(Some(text))
        }
        _ => Outcome::Invalid(format!("{text:?} is not a ZIP code")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> Outcome {
        Outcome::Value(Some(s.into()))
    }

    #[test]
    fn text_keeps_emoji_drops_nul_bytes_and_refuses_overlong_values() {
        assert_eq!(scrub_text(Raw::Text("calm 😀"), 10), value("calm 😀"));
        assert_eq!(
            scrub_text(Raw::Text("a\0b"), 10),
            Outcome::Repaired("ab".into(), "NUL bytes removed")
        );
        assert!(matches!(
            scrub_text(Raw::Text("abcdef"), 5),
            Outcome::Invalid(_)
        ));
        assert_eq!(scrub_text(Raw::Int(42), 5), value("42"));
    }

    #[test]
    fn emails_are_trimmed_and_case_folded_and_must_have_one_at() {
        assert_eq!(
            fold_email(Raw::Text(" Ana@Example.COM ")),
            value("ana@example.com")
        );
        assert_eq!(
            fold_email(Raw::Text("ÉLODIE@exemple.fr")),
            value("élodie@exemple.fr")
        );
        for bad in ["no-at-sign", "a@b@c", "@x.com", "a b@x.com", ""] {
            assert!(
                matches!(fold_email(Raw::Text(bad)), Outcome::Invalid(_)),
                "{bad}"
            );
        }
        assert!(matches!(fold_email(Raw::Int(5)), Outcome::Invalid(_)));
    }

    #[test]
    fn integers_accept_whole_reals_and_text_within_range() {
        assert_eq!(parse_int(Raw::Int(7), 1, 10), value("7"));
        assert_eq!(parse_int(Raw::Real(7.0), 1, 10), value("7"));
        assert_eq!(parse_int(Raw::Text(" 7 "), 1, 10), value("7"));
        assert!(matches!(
            parse_int(Raw::Real(7.5), 1, 10),
            Outcome::Invalid(_)
        ));
        assert!(matches!(
            parse_int(Raw::Int(11), 1, 10),
            Outcome::Invalid(_)
        ));
        assert!(matches!(
            parse_int(Raw::Text("seven"), 1, 10),
            Outcome::Invalid(_)
        ));
    }

    #[test]
    fn booleans_take_integers_and_common_words() {
        assert_eq!(parse_bool(Raw::Int(1)), value("t"));
        assert_eq!(parse_bool(Raw::Int(0)), value("f"));
        assert_eq!(parse_bool(Raw::Text("Yes")), value("t"));
        assert_eq!(parse_bool(Raw::Text("off")), value("f"));
        assert!(matches!(parse_bool(Raw::Int(2)), Outcome::Invalid(_)));
        assert!(matches!(
            parse_bool(Raw::Text("maybe")),
            Outcome::Invalid(_)
        ));
    }

    #[test]
    fn json_must_parse_have_its_shape_and_lose_nul_characters() {
        assert_eq!(
            parse_json(Raw::Text(r#"[ "a", 1 ]"#), true),
            value(r#"["a",1]"#)
        );
        assert_eq!(
            parse_json(Raw::Text(r#"{"k": "v"}"#), false),
            value(r#"{"k":"v"}"#)
        );
        assert!(matches!(
            parse_json(Raw::Text("[oops"), true),
            Outcome::Invalid(_)
        ));
        assert!(matches!(
            parse_json(Raw::Text("{}"), true),
            Outcome::Invalid(_)
        ));
        assert_eq!(
            parse_json(Raw::Text(r#"["a\u0000b"]"#), true),
            Outcome::Repaired(r#"["ab"]"#.into(), "NUL characters removed")
        );
    }

    #[test]
    fn fixed_lists_normalise_case_and_separators_only() {
        const GENDERS: &[&str] = &["male", "female", "non_binary", "other", ""];
        assert_eq!(parse_enum(Raw::Text("female"), GENDERS), value("female"));
        assert_eq!(
            parse_enum(Raw::Text("Non-Binary"), GENDERS),
            Outcome::Repaired("non_binary".into(), "case or spacing normalised")
        );
        assert!(matches!(
            parse_enum(Raw::Text("M"), GENDERS),
            Outcome::Invalid(_)
        ));
    }

    #[test]
    fn zip_codes_are_padded_trimmed_or_refused() {
        assert_eq!(parse_zip(Raw::Text("12345")), value("12345"));
        assert_eq!(parse_zip(Raw::Text("12345-6789")), value("12345-6789"));
        assert_eq!(
            parse_zip(Raw::Text("1234")),
            Outcome::Repaired("01234".into(), "leading zeros restored")
        );
        assert_eq!(
            parse_zip(Raw::Int(2134)),
            Outcome::Repaired("02134".into(), "leading zeros restored")
        );
        assert_eq!(
            parse_zip(Raw::Text("12345-")),
            Outcome::Repaired("12345".into(), "trailing hyphen removed")
        );
        for bad in ["ABCDE", "12", "123456", "12345-67"] {
            assert!(
                matches!(parse_zip(Raw::Text(bad)), Outcome::Invalid(_)),
                "{bad}"
            );
        }
    }
}
