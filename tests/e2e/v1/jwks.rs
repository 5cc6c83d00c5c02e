//! ES256 and RS256 user tokens verified with the issuer's JSON Web Key Set (`MINGUS_JWT_JWKS_URL`), as
//! Supabase signs them now: keys made by openssl, the set served on loopback, tokens signed by
//! jsonwebtoken. HS256 with the secret keeps working beside them.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mingus_tests::TestApp;
use mingus_tests::frontend::{user_claims, user_token};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{list_keys, user_on};

/// A key pair made by openssl: the private key (DER: PKCS#8 for EC, PKCS#1 for RSA, as jsonwebtoken
/// takes them) and the public half as a JWK.
struct KeyPair {
    private_der: Vec<u8>,
    jwk: Value,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    // Tests run in parallel in one process: each file its own name.
    let path = std::env::temp_dir().join(format!("mingus-jwks-{}-{name}", uuid::Uuid::new_v4()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// P-256: the public key's DER ends with the uncompressed point 04 ‖ x ‖ y.
fn ec_key(kid: &str) -> KeyPair {
    let private_pem = openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ]);
    let path = temp_file(&format!("{kid}.pem"), &private_pem);
    let der = openssl(&[
        "pkey",
        "-in",
        path.to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
    ]);
    let private_der = openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        path.to_str().unwrap(),
        "-outform",
        "DER",
    ]);
    std::fs::remove_file(&path).unwrap();
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4, "an uncompressed point");
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                     "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])});
    KeyPair { private_der, jwk }
}

fn rsa_key(kid: &str) -> KeyPair {
    let private_pem = openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
    ]);
    let path = temp_file(&format!("{kid}.pem"), &private_pem);
    let private_der = openssl(&[
        "rsa",
        "-in",
        path.to_str().unwrap(),
        "-outform",
        "DER",
        "-traditional",
    ]);
    let modulus = String::from_utf8(openssl(&[
        "rsa",
        "-in",
        path.to_str().unwrap(),
        "-noout",
        "-modulus",
    ]))
    .unwrap();
    std::fs::remove_file(&path).unwrap();
    let hex = modulus.trim().strip_prefix("Modulus=").unwrap();
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                     "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"});
    KeyPair { private_der, jwk }
}

fn sign(claims: &Value, algorithm: Algorithm, kid: Option<&str>, key: &KeyPair) -> String {
    let encoding = match algorithm {
        Algorithm::ES256 => EncodingKey::from_ec_der(&key.private_der),
        _ => EncodingKey::from_rsa_der(&key.private_der),
    };
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

/// Serves `{"keys": [...]}` on a loopback port and counts the fetches.
async fn serve_jwks(keys: Vec<Value>) -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let set = json!({ "keys": keys });
    let router = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let set = set.clone();
            async move { axum::Json(set) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, fetches)
}

#[tokio::test]
async fn es256_and_rs256_tokens_verify_with_the_issuers_key_set() {
    let (ec, rsa, stranger) = (ec_key("ec-1"), rsa_key("rsa-1"), ec_key("ec-1"));
    let (url, fetches) = serve_jwks(vec![ec.jwk.clone(), rsa.jwk.clone()]).await;
    let app = TestApp::spawn_with(&[("MINGUS_JWT_JWKS_URL", &url)]).await;
    let user = user_on(&app, None).await;
    let claims = user_claims(user);

    for (name, token) in [
        ("ES256", sign(&claims, Algorithm::ES256, Some("ec-1"), &ec)),
        (
            "RS256",
            sign(&claims, Algorithm::RS256, Some("rsa-1"), &rsa),
        ),
        ("HS256 beside them", user_token(&app, user)),
    ] {
        let answer = list_keys(&app, &token).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.body);
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "one fetch serves every token"
    );

    let refused = [
        (
            "another key under a known kid",
            sign(&claims, Algorithm::ES256, Some("ec-1"), &stranger),
            "token_signature_invalid",
        ),
        (
            "an RS256 token naming the EC key",
            sign(&claims, Algorithm::RS256, Some("ec-1"), &rsa),
            "token_signature_invalid",
        ),
        (
            "no kid",
            sign(&claims, Algorithm::ES256, None, &ec),
            "token_key_unknown",
        ),
        (
            "an unknown kid",
            sign(&claims, Algorithm::ES256, Some("ec-9"), &ec),
            "token_key_unknown",
        ),
    ];
    for (name, token, code) in refused {
        let answer = list_keys(&app, &token).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::UNAUTHORIZED, code),
            "{name}: {}",
            answer.body
        );
    }
    // A flood of made-up kids makes no fetch within the refetch interval.
    for i in 0..20 {
        let token = sign(
            &claims,
            Algorithm::ES256,
            Some(&format!("made-up-{i}")),
            &ec,
        );
        assert_eq!(
            list_keys(&app, &token).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "unknown kids did not refetch"
    );
    // The claims rules are the HS256 ones: an expired ES256 token is expired.
    let mut expired = claims.clone();
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 120);
    let answer = list_keys(&app, &sign(&expired, Algorithm::ES256, Some("ec-1"), &ec)).await;
    assert_eq!(answer.code(), "token_expired");
}

#[tokio::test]
async fn an_unreachable_key_set_answers_503_and_without_a_key_set_es256_is_refused() {
    let ec = ec_key("ec-1");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/jwks.json");
    let app = TestApp::spawn_with(&[("MINGUS_JWT_JWKS_URL", &url)]).await;
    let user = user_on(&app, None).await;
    let token = sign(&user_claims(user), Algorithm::ES256, Some("ec-1"), &ec);
    let answer = list_keys(&app, &token).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(
        list_keys(&app, &user_token(&app, user)).await.status,
        StatusCode::OK,
        "HS256 unaffected"
    );

    let plain = TestApp::spawn().await;
    let user = user_on(&plain, None).await;
    let answer = list_keys(
        &plain,
        &sign(&user_claims(user), Algorithm::ES256, Some("ec-1"), &ec),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::UNAUTHORIZED, "token_algorithm_unsupported")
    );
}
