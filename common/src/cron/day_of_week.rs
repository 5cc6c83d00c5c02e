//! The day-of-week field as Unix cron means it: 0 and 7 are Sunday, 1 is Monday … 6 is Saturday. The
//! `cron` crate numbers days from 1 = Sunday, so a crontab line copied as written would fire a day
//! late; we read the field ourselves and hand the crate day names, which mean the same in both.

/// Day names in Unix order (index 0 = Sunday), as the `cron` crate accepts them.
const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The field rewritten for the `cron` crate: `*` and `?` as they are, anything else as a list of day
/// names. Accepts numbers 0–7, names (any case), ranges `a-b`, steps `/n` on `*` or a range, and lists.
pub fn to_crate_syntax(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: usize =
                    step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("day-of-week step {step:?} is not a positive number")
                    })?;
                (range, step)
            }
            None => (item, 1),
        };
        let (first, last) = match range {
            "*" => (0, 6),
            _ => match range.split_once('-') {
                Some((a, b)) => (day(a)?, day(b)?),
                None if step == 1 => (day(range)?, day(range)?),
                // `MON/2`: from Monday to the end of the week, as in Vixie cron.
                None => (day(range)?, 6),
            },
        };
        if first > last {
            return Err(format!(
                "day-of-week range {range:?} runs backwards (0 or 7 is Sunday, 1 Monday … 6 Saturday)"
            ));
        }
        for n in (first..=last).step_by(step) {
            days[n % 7] = true;
        }
    }
    Ok(NAMES
        .iter()
        .zip(days)
        .filter_map(|(name, on)| on.then_some(*name))
        .collect::<Vec<_>>()
        .join(","))
}

/// One day: 0–7 (7 is Sunday again, so `5-7` is Friday to Sunday) or a three-letter name.
fn day(text: &str) -> Result<usize, String> {
    if let Ok(n) = text.parse::<usize>() {
        return if n <= 7 {
            Ok(n)
        } else {
            Err(format!(
                "day-of-week {n} is out of range (0–7; 0 and 7 are Sunday)"
            ))
        };
    }
    NAMES
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("day-of-week {text:?} is neither 0–7 nor a day name (SUN … SAT)"))
}

#[cfg(test)]
mod tests {
    use super::to_crate_syntax;

    #[test]
    fn numbers_mean_what_they_mean_in_crontab() {
        let cases = [
            ("*", "*"),
            ("?", "?"),
            ("0", "SUN"),
            ("7", "SUN"),
            ("1", "MON"),
            ("6", "SAT"),
            ("1-5", "MON,TUE,WED,THU,FRI"),
            ("5-7", "SUN,FRI,SAT"),
            ("0,3,6", "SUN,WED,SAT"),
            ("*/2", "SUN,TUE,THU,SAT"),
            ("1-5/2", "MON,WED,FRI"),
            ("mon-fri", "MON,TUE,WED,THU,FRI"),
            ("Sat,sun", "SUN,SAT"),
            ("MON/2", "MON,WED,FRI"),
        ];
        for (field, expected) in cases {
            assert_eq!(to_crate_syntax(field).as_deref(), Ok(expected), "{field}");
        }
    }

    #[test]
    fn nonsense_is_refused_with_the_reason() {
        let cases = [
            ("8", "out of range"),
            ("5-1", "runs backwards"),
            ("*/0", "not a positive number"),
            ("funday", "neither 0–7 nor a day name"),
            ("1,,2", "neither 0–7 nor a day name"),
        ];
        for (field, reason) in cases {
            let err = to_crate_syntax(field).unwrap_err();
            assert!(err.contains(reason), "{field}: {err}");
        }
    }
}
