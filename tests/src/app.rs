//! `mingus-api` started in-process on port 0, with its own database and Redis key prefix.

use std::sync::Arc;

use mingus_common::Config;
use tokio::sync::oneshot;

use crate::TestDb;

/// A development configuration for tests: the given database, a Redis key prefix of its own, small pools.
/// `extra` adds or overrides variables.
pub fn test_config(database_url: &str, redis_prefix: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("MINGUS_ENV".into(), "development".into()),
        ("DATABASE_URL".into(), database_url.into()),
        ("DATABASE_MAX_CONNECTIONS".into(), "10".into()),
        ("DATABASE_MIN_CONNECTIONS".into(), "0".into()),
        ("REDIS_URL".into(), crate::redis_url()),
        ("REDIS_KEY_PREFIX".into(), redis_prefix.into()),
        ("MINGUS_API_ADDR".into(), "127.0.0.1:0".into()),
        // In-process workers and schedulers serve no probes (the recorder is process-wide).
        ("MINGUS_WORKER_METRICS_ADDR".into(), "off".into()),
        ("MINGUS_SCHEDULER_METRICS_ADDR".into(), "off".into()),
        ("STRIPE_WEBHOOK_SECRETS".into(), "whsec_test_secret".into()),
        (
            "MINGUS_JWT_SECRET".into(),
            "test-jwt-secret-0123456789abcdef0123456789".into(),
        ),
        (
            "MINGUS_ADMIN_TOKEN".into(),
            "test-admin-token-0123456789abcdef01234567".into(),
        ),
        (
            "MINGUS_UNSUBSCRIBE_SECRET".into(),
            "test-unsubscribe-secret-0123456789abcdef".into(),
        ),
    ];
    for (key, value) in extra {
        vars.retain(|(k, _)| k != key);
        vars.push(((*key).into(), (*value).into()));
    }
    Config::from_vars(vars).expect("test configuration is valid")
}

/// A running API with its own database and Redis namespace; both are cleaned up on drop.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub config: Arc<Config>,
    pub db: TestDb,
    pub redis_prefix: String,
    stop: Option<oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts the API with extra or overriding configuration variables.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        crate::init_logging();
        let db = TestDb::new().await;
        let redis_prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let config = Arc::new(test_config(&db.url, &redis_prefix, extra));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let state = mingus_api::build_state(config.clone()).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            mingus_api::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .expect("API serves");
        });
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        TestApp {
            address,
            client,
            config,
            db,
            redis_prefix,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request reaches the API")
    }
}

/// Deletes every key under a prefix, a batch at a time (never one blocking command over everything).
pub async fn delete_redis_prefix(prefix: &str) -> redis::RedisResult<()> {
    delete_prefix_at(&crate::redis_url(), prefix).await
}

pub(crate) async fn delete_prefix_at(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    mingus_common::cache::delete_prefix(&mut conn, prefix).await
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let prefix = self.redis_prefix.clone();
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = runtime.block_on(delete_redis_prefix(&prefix));
        });
        let _ = cleanup.join();
    }
}
