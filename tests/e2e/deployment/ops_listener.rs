//! With `MINGUS_OPS_ADDR`, `/ops` and `/metrics` answer only on the operator listener.

use std::sync::Arc;

use mingus_tests::{TestDb, test_config};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[tokio::test]
async fn the_operator_routes_live_on_their_own_listener_only() {
    let db = TestDb::new().await;
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_url = format!("http://{}", public.local_addr().unwrap());
    let ops_url = format!("http://{}", ops.local_addr().unwrap());
    let ops_addr = ops.local_addr().unwrap().to_string();
    let config = Arc::new(test_config(
        &db.url,
        &prefix,
        &[("MINGUS_OPS_ADDR", &ops_addr)],
    ));
    assert!(!config.listen.ops_on_public);
    let token = config
        .admin_token
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    let state = mingus_api::build_state(config).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(mingus_api::serve_with_ops(
        public,
        Some(ops),
        state,
        async {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();
    let status = |url: String, auth: bool| {
        let mut request = client.get(url);
        if auth {
            request = request.bearer_auth(&token);
        }
        async move { request.send().await.unwrap().status() }
    };
    // Public: health and the API, no operator surface (a JSON 404, as for any unknown route).
    assert_eq!(
        status(format!("{public_url}/health/live"), false).await,
        StatusCode::OK
    );
    for path in ["/ops", "/ops/stats", "/metrics"] {
        assert_eq!(
            status(format!("{public_url}{path}"), true).await,
            StatusCode::NOT_FOUND,
            "{path} on the public listener"
        );
    }
    // Operator listener: the same routes answer, still behind the admin token.
    assert_eq!(
        status(format!("{ops_url}/ops/stats"), true).await,
        StatusCode::OK
    );
    assert_eq!(
        status(format!("{ops_url}/ops/stats"), false).await,
        StatusCode::UNAUTHORIZED
    );
    let metrics = client
        .get(format!("{ops_url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("mingus_http_requests_total")
    );
    // Shutdown stops both listeners.
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("both listeners stop")
        .unwrap()
        .unwrap();
    mingus_tests::delete_redis_prefix(&prefix).await.ok();
}
