//! The real `mingus-api` binary: refuses an unsafe production configuration, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mingus-api");

fn base_command() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

#[test]
fn production_without_secrets_refuses_to_start_and_names_the_variable() {
    let output = base_command()
        .env("MINGUS_ENV", "production")
        .env("DATABASE_URL", "postgres://app@db.internal/mingus")
        .env("REDIS_URL", "redis://cache.internal:6379")
        .env("SMTP_URL", "smtps://smtp.example.com")
        .env("MAIL_FROM", "no-reply@mingus.app")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("STRIPE_WEBHOOK_SECRETS"),
        "stderr: {stderr}"
    );

    let output = base_command()
        .env("MINGUS_ENV", "production")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL"));
}

#[test]
fn sigterm_stops_the_server_gracefully_with_exit_code_zero() {
    let database = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = base_command()
        .env("DATABASE_URL", database)
        .env("REDIS_URL", redis)
        .env("MINGUS_API_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) for the "listening" line.
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    loop {
        let line = lines.next().expect("server prints before exiting").unwrap();
        if line.contains("listening") {
            assert!(
                line.starts_with('{'),
                "JSON logs when LOG_FORMAT=json: {line}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("SIGTERM")),
        "logs the signal: {rest:?}"
    );
}
