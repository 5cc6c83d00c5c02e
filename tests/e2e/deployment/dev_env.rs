//! `deploy/local/run.sh` takes its secrets from `.local/dev.env` only where the caller did not set them.

use std::path::PathBuf;
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("deploy/local/dev-env.sh")
}

fn load(file: &std::path::Path, caller: &[(&str, &str)]) -> String {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(r#"source "$0"; load_dev_env "$1"; echo "$MINGUS_JWT_SECRET|$MINGUS_ADMIN_TOKEN|$STRIPE_WEBHOOK_SECRETS|$MINGUS_UNSUBSCRIBE_SECRET""#)
        .arg(script())
        .arg(file)
        .env_remove("MINGUS_JWT_SECRET")
        .env_remove("MINGUS_ADMIN_TOKEN")
        .env_remove("STRIPE_WEBHOOK_SECRETS")
        .env_remove("MINGUS_UNSUBSCRIBE_SECRET");
    for (key, value) in caller {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn the_callers_variables_win_over_the_generated_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("mingus-devenv-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dev.env");
    let first = load(&file, &[]);
    let fields: Vec<&str> = first.split('|').collect();
    assert_eq!(fields.len(), 4);
    assert!(fields.iter().all(|f| f.len() >= 32), "{first}");
    assert!(fields[2].starts_with("whsec_"), "{first}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "dev.env holds secrets");
    // The file is stable across runs...
    assert_eq!(load(&file, &[]), first);
    // ...and a variable set by the caller (the whsec_ of `stripe listen`) is the one the processes get.
    let second = load(
        &file,
        &[("STRIPE_WEBHOOK_SECRETS", "whsec_from_stripe_listen")],
    );
    let fields2: Vec<&str> = second.split('|').collect();
    assert_eq!(fields2[2], "whsec_from_stripe_listen");
    assert_eq!(
        fields2[0], fields[0],
        "other secrets still come from the file"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A dev.env left world-readable by an older version (and without the secret added since) is made
/// owner-only before the new secret is appended to it.
#[test]
fn an_old_world_readable_dev_env_is_made_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("mingus-devenv-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dev.env");
    let secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    std::fs::write(
        &file,
        format!(
            "MINGUS_ADMIN_TOKEN=a{secret}\nMINGUS_JWT_SECRET=j{secret}\nSTRIPE_WEBHOOK_SECRETS=whsec_{secret}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loaded = load(&file, &[]);
    let fields: Vec<&str> = loaded.split('|').collect();
    assert_eq!(fields[0], format!("j{secret}"), "the old secrets are kept");
    assert_eq!(
        fields[3].len(),
        64,
        "the missing secret was added: {loaded}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::remove_dir_all(dir).unwrap();
}
