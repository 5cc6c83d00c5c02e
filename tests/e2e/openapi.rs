//! `/openapi.json` against the router: every `/v1` route and the webhook are documented, every
//! documented operation is served, and the document is self-consistent. (That responses match their
//! schemas is checked on every response of the `/v1` and webhook tests: see `mingus_tests::openapi`.)

use std::collections::BTreeSet;

use mingus_tests::TestApp;
use mingus_tests::openapi::contract;
use serde_json::Value;

#[test]
fn every_v1_route_and_the_webhook_are_documented() {
    let documented: BTreeSet<(String, String)> = contract().operations().into_iter().collect();
    let mut served: Vec<(String, String)> = mingus_api::v1::route_table()
        .into_iter()
        .map(|(method, path)| (method.as_str().to_owned(), path.to_owned()))
        .collect();
    assert!(
        served.len() >= 5,
        "the /v1 route table is empty: {served:?}"
    );
    served.push(("POST".into(), "/webhooks/stripe".into()));
    let missing: Vec<_> = served
        .iter()
        .filter(|op| !documented.contains(op))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from /openapi.json: {missing:?}"
    );
}

#[test]
fn every_reference_resolves_and_operation_ids_are_unique() {
    let doc = contract().document();
    let mut references = Vec::new();
    collect_references(doc, &mut references);
    assert!(!references.is_empty());
    for reference in references {
        let pointer = reference.strip_prefix('#').expect("only local references");
        assert!(doc.pointer(pointer).is_some(), "dangling {reference}");
    }
    let mut ids = BTreeSet::new();
    for (method, path) in contract().operations() {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(ids.insert(id.to_owned()), "operationId {id} used twice");
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{method} {path} documents no response"
        );
    }
}

fn collect_references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => found.push(r.clone()),
                    _ => collect_references(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, found)),
        _ => {}
    }
}

/// A concrete path for a template: parameters become a UUID (a well-formed id nobody owns).
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|part| {
            if part.starts_with('{') {
                "6f1c2a3e-0000-4000-8000-000000000001"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestApp::spawn().await;
    for (method, template) in contract().operations() {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(method.clone(), app.url(&concrete(&template)))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        // The router's fallbacks: an unknown path, or a known path without this method.
        let unrouted =
            (status == 404 && body["error"]["message"] == "no such route") || status == 405;
        assert!(
            !unrouted,
            "{method} {template} is documented but not served: {status} {body}"
        );
    }
}

#[tokio::test]
async fn the_served_document_is_the_embedded_one() {
    let app = TestApp::spawn().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served: Value = response.json().await.unwrap();
    assert_eq!(&served, contract().document());
    // The document describes itself, and validates as what it says.
    contract()
        .check(
            "GET",
            "/openapi.json",
            200,
            Some("application/json"),
            &served.to_string(),
        )
        .unwrap();
}

#[test]
fn the_checker_rejects_what_the_document_does_not_allow() {
    let c = contract();
    // An undocumented status, an unknown path, a body of the wrong shape.
    assert!(
        c.check("GET", "/v1/features", 418, Some("application/json"), "{}")
            .is_err()
    );
    assert!(
        c.check("GET", "/v1/nowhere", 200, Some("application/json"), "{}")
            .is_err()
    );
    assert!(
        c.check(
            "DELETE",
            "/v1/features",
            200,
            Some("application/json"),
            "{}"
        )
        .is_err()
    );
    // Refusing what is not documented is what the document implies.
    assert!(c.check("DELETE", "/v1/features", 405, None, "").is_ok());
    assert!(
        c.check(
            "GET",
            "/v1/features",
            200,
            Some("application/json"),
            r#"{"features": [{"feature": 1}]}"#
        )
        .is_err()
    );
    let error = r#"{"error": {"code": "token_expired", "message": "expired"}}"#;
    assert!(
        c.check("GET", "/v1/features", 401, Some("application/json"), error)
            .is_ok()
    );
    assert_eq!(
        c.template("/v1/api-keys/6f1c2a3e-0000-4000-8000-000000000001")
            .as_deref(),
        Some("/v1/api-keys/{id}")
    );
}
