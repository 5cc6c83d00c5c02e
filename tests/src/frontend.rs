//! Helpers for `/v1` tests: user tokens (JWTs) signed with the app's secret, and a second API instance
//! sharing the first one's database and Redis namespace (as replicas behind a load balancer do).

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::TestApp;

/// Signs `claims` with the app's `MINGUS_JWT_SECRET`.
pub fn sign_token(app: &TestApp, claims: &Value) -> String {
    let secret = app
        .config
        .jwt_secret
        .as_ref()
        .expect("tests configure a JWT secret");
    mingus_api::v1::jwt::sign_hs256(claims, secret.expose_secret().as_bytes())
}

/// Claims of a Supabase user token for `user_id`, valid for ten minutes.
pub fn user_claims(user_id: Uuid) -> Value {
    json!({
        "sub": user_id.to_string(),
        "aud": "authenticated",
        "role": "authenticated",
        "email": format!("{user_id}@example.com"),
        "iat": chrono::Utc::now().timestamp(),
        "exp": chrono::Utc::now().timestamp() + 600,
    })
}

/// A valid user token for `user_id`.
pub fn user_token(app: &TestApp, user_id: Uuid) -> String {
    sign_token(app, &user_claims(user_id))
}

/// Another API process serving the same configuration; stops when dropped.
pub struct ApiInstance {
    pub address: String,
    stop: Option<oneshot::Sender<()>>,
}

impl ApiInstance {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }
}

impl Drop for ApiInstance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestApp {
    /// Starts a second API instance on the same database and Redis key prefix.
    pub async fn another_instance(&self) -> ApiInstance {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let state = mingus_api::build_state(self.config.clone()).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            mingus_api::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .expect("API serves");
        });
        ApiInstance {
            address,
            stop: Some(stop),
        }
    }
}
