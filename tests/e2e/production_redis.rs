//! Redis started from `deploy/production/redis/redis.conf` and its `users.acl` (only the port, paths and
//! the password hash changed): the platform works as the ACL user, jobs enqueued before a crash (SIGKILL)
//! are all there after the restart (AOF, `appendfsync everysec`) and each runs once, and no command the
//! enqueuer or the worker sent was denied. It once found every job gone after the restart: Redis replays
//! the AOF as the default user and drops transactions that user may not run (docs/production.md).

use std::path::{Path, PathBuf};
use std::time::Duration;

use mingus_common::jobs::EnqueueOptions;
use mingus_common::jobs::catalog::BenchNoop;
use mingus_common::queue::Queue;
use mingus_tests::wait::{count, until};
use mingus_tests::{JobEnv, RedisServer, TestWorker};
use sha2::{Digest, Sha256};

const JOBS: usize = 40;

fn production_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("deploy/production/redis")
}

/// The committed ACL file with the `mingus` password's hash filled in, plus an administrator for the
/// test's own checks (ACL LOG, CONFIG GET), which the production file deliberately lacks.
fn acl_file(dir: &Path, password: &str, admin_password: &str) -> PathBuf {
    let committed = std::fs::read_to_string(production_dir().join("users.acl")).unwrap();
    let hash = sha256_hex(password);
    assert!(committed.contains("#REPLACE_WITH_SHA256_OF_THE_PASSWORD"));
    // The default user's password is one nobody knows (docs/production.md says why it is not `off`).
    let mut acl = committed
        .replace("REPLACE_WITH_SHA256_OF_THE_PASSWORD", &hash)
        .replace(
            "REPLACE_WITH_SHA256_OF_A_RANDOM_PASSWORD_NOBODY_USES",
            &sha256_hex(&uuid::Uuid::new_v4().to_string()),
        );
    acl.push_str(&format!(
        "user testadmin on >{admin_password} ~* &* +@all\n"
    ));
    let path = dir.join("users.acl");
    std::fs::write(&path, acl).unwrap();
    path
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn admin(port: u16, password: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://testadmin:{password}@127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn jobs_survive_a_crash_of_the_production_redis_and_run_once_with_no_acl_denial() {
    let password = uuid::Uuid::new_v4().simple().to_string();
    let admin_password = uuid::Uuid::new_v4().simple().to_string();
    let mut redis = RedisServer::start_with(|port, dir| {
        let acl = acl_file(dir, &password, &admin_password);
        let conf = production_dir().join("redis.conf");
        Some(
            [
                conf.to_str().unwrap(),
                "--port",
                &port.to_string(),
                "--dir",
                dir.to_str().unwrap(),
                "--pidfile",
                dir.join("redis.pid").to_str().unwrap(),
                "--logfile",
                dir.join("redis.log").to_str().unwrap(),
                "--aclfile",
                acl.to_str().unwrap(),
                "--supervised",
                "no",
            ]
            .map(str::to_owned)
            .to_vec(),
        )
    });
    let port = redis.port;
    let mut check = admin(port, &admin_password).await;
    for (setting, expected) in [
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
        ("maxmemory-policy", "noeviction"),
    ] {
        let got: (String, String) = redis::cmd("CONFIG")
            .arg("GET")
            .arg(setting)
            .query_async(&mut check)
            .await
            .unwrap();
        assert_eq!(got.1, expected, "{setting}");
    }
    // A client without credentials is refused (the default user's password is unknown).
    let anonymous = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await;
    let refused = match anonymous {
        Err(_) => true,
        Ok(mut conn) => redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_err(),
    };
    assert!(refused, "the default user must be off");
    let _: () = redis::cmd("ACL")
        .arg("LOG")
        .arg("RESET")
        .query_async(&mut check)
        .await
        .unwrap();

    let url = format!("redis://mingus:{password}@127.0.0.1:{port}");
    let env = JobEnv::with(&[("REDIS_URL", &url)]).await;
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        ids.push(
            env.enqueuer
                .enqueue(&BenchNoop::default(), EnqueueOptions::default())
                .await
                .unwrap(),
        );
    }
    assert_no_denials(&mut check).await;
    let before: usize = redis::cmd("LLEN")
        .arg(env.enqueuer.keys(Queue::Bench).active())
        .query_async(&mut check)
        .await
        .unwrap();
    assert_eq!(before, JOBS, "every job is waiting before the crash");
    // appendfsync everysec: what was acknowledged more than a second ago is on disk.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.kill();
    redis.restart();
    let mut check = admin(port, &admin_password).await;
    let waiting: usize = redis::cmd("LLEN")
        .arg(env.enqueuer.keys(Queue::Bench).active())
        .query_async(&mut check)
        .await
        .unwrap();
    assert_eq!(waiting, JOBS, "every job is back after the crash");

    let _worker = TestWorker::spawn(env.config.clone(), &[Queue::Bench]).await;
    until(Duration::from_secs(60), "every job run", || async {
        (count(&env.db.pool, "SELECT count(DISTINCT job_id) FROM job_runs").await == JOBS as i64)
            .then_some(())
    })
    .await;
    // Once each: a second run of any job would add a row.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        count(&env.db.pool, "SELECT count(*) FROM job_runs").await,
        JOBS as i64
    );
    let listed: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
    assert_eq!(
        count(
            &env.db.pool,
            &format!(
                "SELECT count(*) FROM job_runs WHERE status = 'succeeded' AND job_id IN ({})",
                listed.join(",")
            ),
        )
        .await,
        JOBS as i64
    );
    assert_no_denials(&mut check).await;
}

/// Nothing the platform sent was outside the ACL (the log lives in memory: checked before the crash
/// for the enqueuer and after it for the worker).
async fn assert_no_denials(admin: &mut redis::aio::MultiplexedConnection) {
    let denials: Vec<redis::Value> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(admin)
        .await
        .unwrap();
    assert!(denials.is_empty(), "ACL denials: {denials:?}");
}
