//! `SMTP_URL` parsing (`mingus_common::config::email::parse_smtp_url`).
//!
//! Input: the URL's text (lossily decoded).
//!
//! Checks: never panics; an accepted URL names a host, and its EHLO name (the path), when there is
//! one, is a plain host name as the parser documents (letters, digits, hyphens, dots).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mingus_common::config::email::parse_smtp_url;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(server) = parse_smtp_url(&text) else {
        return;
    };
    assert!(!server.host.is_empty(), "{text:?} gave an empty host");
    if let Some(name) = &server.hello_name {
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'),
            "{text:?} gave the EHLO name {name:?}"
        );
    }
});
