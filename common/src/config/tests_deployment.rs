//! Secret files, per-process needs and the listeners: what a systemd deployment relies on.

use super::*;

/// The production settings of `tests.rs`, owned (these tests add and remove variables).
fn production() -> Vec<(String, String)> {
    super::tests::production()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn only(vars: &[(String, String)], names: &[&str]) -> Vec<(String, String)> {
    vars.iter()
        .filter(|(k, _)| k == "MINGUS_ENV" || names.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn secret_file(dir: &std::path::Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_string_lossy().into_owned()
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mingus-config-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn secrets_are_read_from_the_files_their_file_variables_name() {
    use secrecy::ExposeSecret;
    let dir = temp_dir();
    let mut vars: Vec<(String, String)> = production()
        .into_iter()
        .filter(|(k, _)| k != "DATABASE_URL" && k != "MINGUS_JWT_SECRET")
        .collect();
    // A trailing line break (echo, editors) is not part of the secret; inner whitespace is.
    let db = secret_file(
        &dir,
        "database_url",
        "postgres://from-file@db/mingus?sslmode=verify-full\n",
    );
    let jwt = secret_file(
        &dir,
        "jwt",
        "a jwt secret of more than thirty-two bytes\r\n",
    );
    vars.push(("DATABASE_URL_FILE".into(), db));
    vars.push(("MINGUS_JWT_SECRET_FILE".into(), jwt));
    let config = Config::from_vars(vars).unwrap();
    assert_eq!(
        config.database.url.expose_secret(),
        "postgres://from-file@db/mingus?sslmode=verify-full"
    );
    assert_eq!(
        config.jwt_secret.unwrap().expose_secret(),
        "a jwt secret of more than thirty-two bytes"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_secret_file_that_is_missing_empty_or_doubled_names_its_variable() {
    let dir = temp_dir();
    let empty = secret_file(&dir, "empty", "\n");
    let cases = [
        (
            "DATABASE_URL_FILE",
            dir.join("absent").to_string_lossy().into_owned(),
            true,
        ),
        ("MINGUS_ADMIN_TOKEN_FILE", empty, true),
        // Both the variable and its file: which one wins would be a guess.
        (
            "REDIS_URL_FILE",
            secret_file(&dir, "redis", "redis://other:6379"),
            false,
        ),
    ];
    for (variable, path, drop_plain) in cases {
        let plain = variable.trim_end_matches("_FILE");
        let mut vars: Vec<(String, String)> = production()
            .into_iter()
            .filter(|(k, _)| !drop_plain || k != plain)
            .collect();
        vars.push((variable.into(), path));
        let err = Config::from_vars(vars).unwrap_err();
        assert_eq!(err.variable(), variable, "{err}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn each_process_needs_only_its_own_secrets_in_production() {
    let all = production();
    // The migrate unit: DATABASE_URL and nothing else.
    Config::from_vars_for(only(&all, &["DATABASE_URL"]), Needs::DATABASE).unwrap();
    // The scheduler: database and Redis.
    Config::from_vars_for(only(&all, &["DATABASE_URL", "REDIS_URL"]), Needs::SCHEDULER).unwrap();
    let err = Config::from_vars_for(only(&all, &["DATABASE_URL"]), Needs::SCHEDULER).unwrap_err();
    assert_eq!(err.variable(), "REDIS_URL");
    // The API sends no e-mail: no SMTP_URL, no MAIL_FROM.
    let api: Vec<_> = all
        .iter()
        .filter(|(k, _)| k != "SMTP_URL" && k != "MAIL_FROM")
        .cloned()
        .collect();
    Config::from_vars_for(api.clone(), Needs::API).unwrap();
    let err = Config::from_vars_for(api, Needs::WORKER).unwrap_err();
    assert_eq!(err.variable(), "SMTP_URL");
    // The worker serves no authenticated HTTP: no JWT, admin or webhook secrets.
    let worker: Vec<_> = all
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "MINGUS_JWT_SECRET" | "MINGUS_ADMIN_TOKEN" | "STRIPE_WEBHOOK_SECRETS"
            )
        })
        .cloned()
        .collect();
    Config::from_vars_for(worker.clone(), Needs::WORKER).unwrap();
    let err = Config::from_vars_for(worker, Needs::API).unwrap_err();
    assert_eq!(err.variable(), "STRIPE_WEBHOOK_SECRETS");
    // What a process does need is still checked for strength.
    let mut weak = only(&all, &["DATABASE_URL", "REDIS_URL"]);
    weak.push(("STRIPE_API_KEY".into(), "sk_test_123".into()));
    let err = Config::from_vars_for(weak, Needs::SCHEDULER).unwrap_err();
    assert_eq!(err.variable(), "STRIPE_API_KEY");
}

#[test]
fn ops_stay_off_the_public_listener_in_production_unless_allowed() {
    let dev = Config::from_vars(Vec::<(String, String)>::new()).unwrap();
    assert!(dev.listen.ops_on_public, "development serves one port");
    assert_eq!(dev.listen.ops_addr, None);
    let dev_split = Config::from_vars([("MINGUS_OPS_ADDR", "127.0.0.1:9181")]).unwrap();
    assert!(!dev_split.listen.ops_on_public);
    assert_eq!(
        dev_split.listen.ops_addr,
        Some("127.0.0.1:9181".parse().unwrap())
    );
    let prod = Config::from_vars(production()).unwrap();
    assert!(!prod.listen.ops_on_public);
    let mut allowed = production();
    allowed.push(("MINGUS_OPS_PUBLIC".into(), "true".into()));
    assert!(Config::from_vars(allowed).unwrap().listen.ops_on_public);
}

#[test]
fn trusted_proxies_take_addresses_and_ranges_and_name_a_bad_entry() {
    let config =
        Config::from_vars([("MINGUS_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,::1")]).unwrap();
    let shown: Vec<String> = config
        .listen
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(shown, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]);
    assert!(
        Config::from_vars(Vec::<(String, String)>::new())
            .unwrap()
            .listen
            .trusted_proxies
            .is_empty()
    );
    let err = Config::from_vars([("MINGUS_TRUSTED_PROXIES", "127.0.0.1,nginx")]).unwrap_err();
    assert_eq!(err.variable(), "MINGUS_TRUSTED_PROXIES");
    assert!(err.to_string().contains("nginx"), "{err}");
}

#[test]
fn probe_addresses_default_loosely_and_bind_strictly_when_given() {
    let config = Config::from_vars(Vec::<(String, String)>::new()).unwrap();
    let worker = config.jobs.metrics_addr.unwrap();
    assert!(!worker.explicit);
    assert_eq!(worker.addr.to_string(), "127.0.0.1:9091");
    let scheduler = config.listen.scheduler_probe.unwrap();
    assert_eq!(scheduler.addr.to_string(), "127.0.0.1:9092");
    let config = Config::from_vars([
        ("MINGUS_WORKER_METRICS_ADDR", "127.0.0.1:9301"),
        ("MINGUS_SCHEDULER_METRICS_ADDR", "off"),
    ])
    .unwrap();
    assert!(config.jobs.metrics_addr.unwrap().explicit);
    assert!(config.listen.scheduler_probe.is_none());
}

#[test]
fn the_ops_identity_proxy_needs_both_settings_a_real_header_and_narrow_addresses_in_production() {
    let config = Config::from_vars([
        ("MINGUS_OPS_PROXY_USER_HEADER", "X-Forwarded-Email"),
        ("MINGUS_OPS_PROXY_ADDRS", "127.0.0.1, 10.1.2.0/24"),
    ])
    .unwrap();
    let proxy = config.listen.ops_proxy.unwrap();
    assert_eq!(proxy.user_header, "x-forwarded-email");
    assert_eq!(proxy.addrs.len(), 2);
    assert!(
        Config::from_vars([("MINGUS_ENV", "development")])
            .unwrap()
            .listen
            .ops_proxy
            .is_none()
    );

    for (vars, variable) in [
        (
            vec![("MINGUS_OPS_PROXY_USER_HEADER", "X-Forwarded-Email")],
            "MINGUS_OPS_PROXY_ADDRS",
        ),
        (
            vec![("MINGUS_OPS_PROXY_ADDRS", "127.0.0.1")],
            "MINGUS_OPS_PROXY_USER_HEADER",
        ),
        (
            vec![
                ("MINGUS_OPS_PROXY_USER_HEADER", "Authorization"),
                ("MINGUS_OPS_PROXY_ADDRS", "127.0.0.1"),
            ],
            "MINGUS_OPS_PROXY_USER_HEADER",
        ),
        (
            vec![
                ("MINGUS_OPS_PROXY_USER_HEADER", "x email"),
                ("MINGUS_OPS_PROXY_ADDRS", "127.0.0.1"),
            ],
            "MINGUS_OPS_PROXY_USER_HEADER",
        ),
        (
            vec![
                ("MINGUS_OPS_PROXY_USER_HEADER", "x-email"),
                ("MINGUS_OPS_PROXY_ADDRS", "0.0.0.0/0"),
            ],
            "MINGUS_OPS_PROXY_ADDRS",
        ),
    ] {
        let err = Config::from_vars(vars.clone()).unwrap_err();
        assert_eq!(err.variable(), variable, "{vars:?}: {err}");
    }

    // Production refuses a wide range (anyone on it could claim to be the proxy) and names it.
    let mut vars = production();
    vars.push(("MINGUS_OPS_PROXY_USER_HEADER".into(), "x-email".into()));
    vars.push(("MINGUS_OPS_PROXY_ADDRS".into(), "10.0.0.0/8".into()));
    let err = Config::from_vars(vars.clone()).unwrap_err();
    assert_eq!(err.variable(), "MINGUS_OPS_PROXY_ADDRS", "{err}");
    vars.pop();
    vars.push(("MINGUS_OPS_PROXY_ADDRS".into(), "127.0.0.1".into()));
    assert!(Config::from_vars(vars).is_ok());
}
