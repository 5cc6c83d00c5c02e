//! `SMTP_URL` says what it means or is refused: options only after '?', a path that is a host name (the
//! EHLO name), and in production enforced TLS to any relay not on this machine.

use super::tests::{production, with};
use super::*;

fn smtp_error(vars: Vec<(&'static str, &str)>) -> ConfigError {
    let err = Config::from_vars(vars).unwrap_err();
    assert_eq!(err.variable(), "SMTP_URL", "{err}");
    err
}

#[test]
fn an_option_written_as_the_path_is_refused_in_every_environment() {
    // Once accepted: clear text, with "tls=required" announced as the EHLO name.
    for url in [
        "smtp://smtp.example.com:25/tls=required",
        "smtp://smtp.example.com:587/mingus.app/?tls=required",
        "smtp://smtp.example.com:587/mingus.app%3Ftls=required",
        "smtp://smtp.example.com:587/#tls=required",
    ] {
        for vars in [
            with(&production(), "SMTP_URL", url),
            vec![("SMTP_URL", url)],
        ] {
            let shown = smtp_error(vars).to_string();
            assert!(shown.contains("options go after '?'"), "{url}: {shown}");
        }
    }
}

#[test]
fn an_ehlo_name_that_is_not_a_host_name_is_refused() {
    for url in [
        "smtp://127.0.0.1:2525/mingus_app",
        "smtp://127.0.0.1:2525/mingus..app",
        "smtp://127.0.0.1:2525/m%C3%BCngus.app",
    ] {
        let shown = smtp_error(vec![("SMTP_URL", url)]).to_string();
        assert!(shown.contains("not a host name"), "{url}: {shown}");
    }
    let config = Config::from_vars(with(
        &production(),
        "SMTP_URL",
        "smtp://u:p@smtp.example.com:587/mail-1.mingus.app?tls=required",
    ))
    .unwrap();
    let smtp = &config.email.smtp;
    assert_eq!(smtp.hello_name.as_deref(), Some("mail-1.mingus.app"));
    assert_eq!(smtp.security, email::SmtpSecurity::StartTlsRequired);
    // A bare trailing slash is no EHLO name.
    let config = Config::from_vars([("SMTP_URL", "smtp://127.0.0.1:2525/")]).unwrap();
    assert_eq!(config.email.smtp.hello_name, None);
}

#[test]
fn an_unknown_or_repeated_option_is_refused_naming_it() {
    for (url, named) in [
        ("smtp://127.0.0.1:2525?timeout=3", "\"timeout\""),
        ("smtp://127.0.0.1:2525?tls=required&ehlo=me", "\"ehlo\""),
        ("smtp://127.0.0.1:2525?TLS=required", "\"TLS\""),
        (
            "smtp://127.0.0.1:2525?tls=required&tls=opportunistic",
            "twice",
        ),
    ] {
        let shown = smtp_error(vec![("SMTP_URL", url)]).to_string();
        assert!(shown.contains(named), "{url}: {shown}");
    }
}

#[test]
fn production_judges_the_parsed_security_not_the_text_of_the_url() {
    // "tls=required" inside the password once satisfied a text search; the connection is plain.
    let url = "smtp://mailer:tls=required@smtp.example.com:25";
    let err = smtp_error(with(&production(), "SMTP_URL", url));
    assert!(matches!(err, ConfigError::Insecure { .. }), "{err}");
    assert!(!err.to_string().contains("mailer:"), "{err}");
    // STARTTLS a man in the middle can strip is not enforced TLS either.
    let err = smtp_error(with(
        &production(),
        "SMTP_URL",
        "smtp://smtp.example.com?tls=opportunistic",
    ));
    assert!(matches!(err, ConfigError::Insecure { .. }), "{err}");
    // A relay on this machine may speak plainly, on any loopback address.
    for url in [
        "smtp://127.0.0.2:25",
        "smtp://localhost:25",
        "smtp://[::1]:25",
    ] {
        Config::from_vars(with(&production(), "SMTP_URL", url))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}
