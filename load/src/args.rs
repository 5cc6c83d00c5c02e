//! The command line, validated by clap: bad input is a typed error before anything starts.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "mingus-load",
    about = "Simulated Mingus users against api + worker + scheduler, measured and reported"
)]
pub struct Args {
    /// Simulated users (operators and the Stripe stream included).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(10..=200_000))]
    pub users: u32,

    /// How long the measured run lasts after every user has started (`90s`, `2m`, `10m`, `1h`).
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub duration: Duration,

    /// Time compression: 1 runs the seed's per-user rates (with the peak factor); 100 makes every user
    /// a hundred times busier, so a short smoke exercises every scenario.
    #[arg(long, default_value_t = 1.0, value_parser = parse_pace)]
    pub pace: f64,

    /// Users started per second.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub hatch_rate: u32,

    /// An already-running platform (e.g. `https://mingus.example` through nginx + PgBouncer) instead of
    /// starting our own; needs --database-url (its database, for the users) and the secrets below.
    #[arg(long)]
    pub target: Option<String>,

    /// With --target: the database the target serves (users are created in it).
    #[arg(long, requires = "target")]
    pub database_url: Option<String>,

    /// With --target: the target's `MINGUS_JWT_SECRET`, `MINGUS_ADMIN_TOKEN` and one of its
    /// `STRIPE_WEBHOOK_SECRETS`.
    #[arg(
        long,
        env = "MINGUS_JWT_SECRET",
        requires = "target",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    #[arg(
        long,
        env = "MINGUS_ADMIN_TOKEN",
        requires = "target",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        requires = "target",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,

    /// The PostgreSQL server the tool creates its database on (own platform only).
    #[arg(
        long,
        env = "TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub server_url: String,

    /// The Redis the started processes use (under a key prefix of their own).
    #[arg(long, env = "TEST_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Where the started worker sends e-mail.
    #[arg(long, env = "TEST_SMTP_URL", default_value = "smtp://127.0.0.1:2525")]
    pub smtp_url: String,

    /// Directory of the started binaries (default: beside this executable).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,

    /// Where summary.json and report.html are written (created if missing).
    #[arg(long, default_value = "load-report")]
    pub report_dir: PathBuf,

    /// Step the users up (users, ×2, ×4, … at most --max-steps runs) until p95 > 200 ms or errors >
    /// 0.1 %; reports the largest passing count.
    #[arg(long)]
    pub find_capacity: bool,

    /// Bound of --find-capacity.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub max_steps: u32,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 2m or 1h"))?;
    let seconds = match unit {
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        other => return Err(format!("unknown unit {other:?}: use s, m or h")),
    };
    if !(5..=4 * 3600).contains(&seconds) {
        return Err(format!("{text} is outside 5s–4h"));
    }
    Ok(Duration::from_secs(seconds))
}

fn parse_pace(text: &str) -> Result<f64, String> {
    let pace: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.1..=10_000.0).contains(&pace) {
        Ok(pace)
    } else {
        Err(format!("pace {pace} is outside 0.1–10000"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("1s").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn bad_user_counts_are_refused_by_clap() {
        assert!(Args::try_parse_from(["mingus-load", "--users", "5"]).is_err());
        assert!(Args::try_parse_from(["mingus-load", "--users", "x"]).is_err());
        assert!(Args::try_parse_from(["mingus-load", "--pace", "0"]).is_err());
        assert!(Args::try_parse_from(["mingus-load", "--database-url", "postgres://x"]).is_err());
        let args =
            Args::try_parse_from(["mingus-load", "--users", "50", "--duration", "20s"]).unwrap();
        assert_eq!((args.users, args.duration), (50, Duration::from_secs(20)));
    }
}
