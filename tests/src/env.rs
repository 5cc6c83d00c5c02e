//! A database, a Redis namespace and a configuration for job tests, without the HTTP server.

use std::sync::Arc;

use mingus_common::jobs::Enqueuer;
use mingus_common::{Config, cache};

use crate::{TestDb, test_config};

pub struct JobEnv {
    pub db: TestDb,
    pub config: Arc<Config>,
    pub enqueuer: Enqueuer,
    pub prefix: String,
}

impl JobEnv {
    pub async fn new() -> Self {
        Self::with(&[]).await
    }

    /// With extra or overriding configuration variables (e.g. a private `REDIS_URL`).
    pub async fn with(extra: &[(&str, &str)]) -> Self {
        crate::init_logging();
        let db = TestDb::new().await;
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut vars: Vec<(&str, &str)> = vec![("MINGUS_WORKER_METRICS_ADDR", "off")];
        vars.extend_from_slice(extra);
        let config = Arc::new(test_config(&db.url, &prefix, &vars));
        let redis = cache::connect(&config.redis).await.expect("redis");
        let enqueuer = Enqueuer::new(redis, prefix.clone());
        JobEnv {
            db,
            config,
            enqueuer,
            prefix,
        }
    }

    /// The environment variables that make a `mingus-worker` process use this environment.
    pub fn process_env(&self) -> Vec<(String, String)> {
        use secrecy::ExposeSecret;
        vec![
            ("DATABASE_URL".into(), self.db.url.clone()),
            (
                "REDIS_URL".into(),
                self.config.redis.url.expose_secret().to_owned(),
            ),
            ("REDIS_KEY_PREFIX".into(), self.prefix.clone()),
            ("DATABASE_MAX_CONNECTIONS".into(), "10".into()),
            ("DATABASE_MIN_CONNECTIONS".into(), "0".into()),
            ("MINGUS_WORKER_METRICS_ADDR".into(), "off".into()),
            ("MINGUS_SCHEDULER_METRICS_ADDR".into(), "off".into()),
            ("LOG_FORMAT".into(), "json".into()),
        ]
    }
}

impl Drop for JobEnv {
    fn drop(&mut self) {
        use secrecy::ExposeSecret;
        let prefix = self.prefix.clone();
        let url = self.config.redis.url.expose_secret().to_owned();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = runtime.block_on(crate::app::delete_prefix_at(&url, &prefix));
        });
        let _ = cleanup.join();
    }
}
