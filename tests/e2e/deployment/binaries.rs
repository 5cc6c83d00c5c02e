//! The binaries' command lines: `--help` and `--version` describe and start nothing; the environment is
//! read strictly (non-UTF-8 refused by name), secrets come from `*_FILE`, and a process asks only for
//! the secrets it uses (`mingus-admin migrate` in production with nothing but `DATABASE_URL_FILE`).

use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mingus_tests::{TestDb, binary};

const BINARIES: [&str; 4] = [
    "mingus-api",
    "mingus-worker",
    "mingus-scheduler",
    "mingus-admin",
];

/// Runs a binary with a clean environment and the given variables, bounded to 30 s.
fn run(name: &str, args: &[&str], vars: &[(&str, &std::ffi::OsStr)]) -> Output {
    let mut command = Command::new(binary(name));
    command
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in vars {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("{name} {args:?} still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_describe_every_binary_and_start_nothing() {
    for name in BINARIES {
        let version = run(name, &["--version"], &[]);
        assert!(version.status.success(), "{name} --version: {version:?}");
        assert_eq!(
            text(&version.stdout).trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION"))
        );
        // With no database or Redis reachable, a process that started would fail or hang; --help
        // must answer at once and exit 0.
        let help = run(
            name,
            &["--help"],
            &[(
                "DATABASE_URL",
                "postgres://nobody@127.0.0.1:1/none".as_ref(),
            )],
        );
        assert!(help.status.success(), "{name} --help: {help:?}");
        let out = text(&help.stdout);
        assert!(
            out.contains("Usage:") && out.contains(name),
            "{name}: {out}"
        );
    }
    let bad = run("mingus-scheduler", &["--frobnicate"], &[]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

#[test]
fn a_non_utf8_variable_is_refused_by_name_not_a_panic() {
    let value = std::ffi::OsStr::from_bytes(b"caf\xe9");
    for name in ["mingus-api", "mingus-scheduler", "mingus-admin"] {
        let args: &[&str] = if name == "mingus-admin" {
            &["migrate", "--status"]
        } else {
            &[]
        };
        let out = run(name, args, &[("SOME_LEGACY_VARIABLE", value)]);
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("SOME_LEGACY_VARIABLE")
                && err.contains("UTF-8")
                && !err.contains("panicked"),
            "{name}: {err}"
        );
    }
}

#[tokio::test]
async fn migrate_runs_in_production_with_only_its_database_url_from_a_file() {
    let db = TestDb::new().await;
    let dir = std::env::temp_dir().join(format!("mingus-creds-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("database_url");
    std::fs::write(&file, format!("{}\n", db.url)).unwrap();
    let production = [
        ("MINGUS_ENV", "production".as_ref()),
        ("DATABASE_URL_FILE", file.as_os_str()),
    ];
    let out = run("mingus-admin", &["migrate", "--status"], &production);
    assert!(out.status.success(), "{out:?}");
    let listing = text(&out.stdout);
    assert!(listing.lines().count() > 10, "{listing}");
    // The status column (a migration's description may itself contain the word, e.g. "billing pending actions").
    assert!(
        listing
            .lines()
            .all(|line| line.split_whitespace().nth(1) == Some("applied")),
        "{listing}"
    );
    // The API in production does need its own secrets, and says which one is missing first.
    let out = run("mingus-api", &[], &production);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("REDIS_URL"),
        "{}",
        text(&out.stderr)
    );
    // A file that cannot be read is named.
    std::fs::remove_dir_all(&dir).unwrap();
    let out = run("mingus-admin", &["migrate", "--status"], &production);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("DATABASE_URL_FILE"),
        "{}",
        text(&out.stderr)
    );
}
