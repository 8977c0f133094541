//! HttpVerifier against a local HTTP server.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Reply, capture_logs, closed_port, serve};
use rekey_core::{
    ExposeSecret, RotationId, RotationManager, RotationPolicy, RotationStrategy, SecretData, SecretPath,
    SecretStoreExt, SystemClock, Verifier, VerifyContext, VerifyError,
};
use rekey_integrations::{HttpVerifier, HttpVerifierConfig, IntegrationError, VerifierConfig};

const TOKEN: &str = "tok-3f9a1c7e5b2d4a60";

fn bearer_config(url: String) -> HttpVerifierConfig {
    toml::from_str(&format!(
        r#"
        name = "api"
        url = "{url}"
        timeout = "2s"
        placement = {{ type = "header", name = "Authorization", prefix = "Bearer " }}
        "#
    ))
    .unwrap()
}

async fn verify(v: &dyn Verifier, candidate: &SecretData, field: Option<&str>) -> Result<(), VerifyError> {
    let path: SecretPath = "app/api-key".parse().unwrap();
    v.verify(VerifyContext { path: &path, rotation_id: RotationId::new(), candidate, field }).await
}

#[tokio::test]
async fn bearer_token_passes_only_when_right() {
    let server = serve(|r| {
        if r.header("authorization") == Some(&format!("Bearer {TOKEN}")) {
            Reply::status(200)
        } else {
            Reply::status(401)
        }
    })
    .await;
    let logs = capture_logs();
    let v = HttpVerifier::new(&bearer_config(server.url("/v1/me?x=1"))).unwrap();

    verify(&v, &SecretData::text(TOKEN), None).await.unwrap();
    let err = verify(&v, &SecretData::text("tok-wrong-00000000"), None).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Failed(m) if m.contains("expected 200, got 401")), "{err:?}");
    assert!(!err.to_string().contains("tok-wrong"), "{err}");

    // A field of a multi-field secret.
    let fields = SecretData::fields([("username", "app"), ("token", TOKEN)]);
    verify(&v, &fields, Some("token")).await.unwrap();
    let err = verify(&v, &fields, Some("missing")).await.unwrap_err();
    assert!(matches!(err, VerifyError::Failed(_)));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/v1/me?x=1", "the candidate never goes into the URL");
    }
    let shown = format!("{v:?} {}", logs.text());
    assert!(!shown.contains(TOKEN) && !shown.contains("tok-wrong"), "{shown}");
}

#[tokio::test]
async fn expected_status_list_and_method() {
    let server = serve(|r| Reply::status(if r.method == "POST" { 204 } else { 405 })).await;
    let config: HttpVerifierConfig = toml::from_str(&format!(
        r#"
        name = "api"
        url = "{}"
        method = "post"
        expect_status = [200, 204]
        placement = {{ type = "header", name = "X-Api-Key" }}
        headers = {{ Accept = "application/json" }}
        "#,
        server.url("/check")
    ))
    .unwrap();
    let v = HttpVerifier::new(&config).unwrap();
    verify(&v, &SecretData::text(TOKEN), None).await.unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.header("x-api-key"), Some(TOKEN));
    assert_eq!(r.header("accept"), Some("application/json"));
}

#[tokio::test]
async fn basic_auth_literal_and_from_field() {
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("app:{TOKEN}")));
    let server =
        serve(move |r| Reply::status(if r.header("authorization") == Some(&expected) { 200 } else { 401 })).await;
    for placement in
        [r#"{ type = "basic_auth", username = "app" }"#, r#"{ type = "basic_auth", username_field = "username" }"#]
    {
        let config: HttpVerifierConfig =
            toml::from_str(&format!("name = \"b\"\nurl = \"{}\"\nplacement = {placement}", server.url("/"))).unwrap();
        let v = HttpVerifier::new(&config).unwrap();
        let good = SecretData::fields([("username", "app"), ("password", TOKEN)]);
        verify(&v, &good, Some("password")).await.unwrap();
        let bad = SecretData::fields([("username", "app"), ("password", "nope-nope")]);
        let err = verify(&v, &bad, Some("password")).await.unwrap_err();
        assert!(matches!(&err, VerifyError::Failed(m) if m.contains("expected 200, got 401")), "{err:?}");
    }
    // username_field missing from the candidate: fails closed, says which field.
    let config: HttpVerifierConfig = toml::from_str(&format!(
        "name = \"b\"\nurl = \"{}\"\nplacement = {{ type = \"basic_auth\", username_field = \"user\" }}",
        server.url("/")
    ))
    .unwrap();
    let v = HttpVerifier::new(&config).unwrap();
    let err = verify(&v, &SecretData::fields([("password", TOKEN)]), Some("password")).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Failed(m) if m.contains("`user`")), "{err:?}");
}

#[tokio::test]
async fn slow_server_times_out_and_closed_port_is_unavailable() {
    let server = serve(|_| Reply { status: 200, delay: Duration::from_secs(5) }).await;
    let mut config = bearer_config(server.url("/slow"));
    config.timeout = Duration::from_millis(300);
    let v = HttpVerifier::new(&config).unwrap();
    let started = Instant::now();
    let err = verify(&v, &SecretData::text(TOKEN), None).await.unwrap_err();
    assert_eq!(err, VerifyError::TimedOut(Duration::from_millis(300)));
    assert!(started.elapsed() < Duration::from_secs(2));

    let v = HttpVerifier::new(&bearer_config(format!("http://{}/", closed_port().await))).unwrap();
    let err = verify(&v, &SecretData::text(TOKEN), None).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Unavailable(m) if m.contains("127.0.0.1") && m.contains("onnect")), "{err:?}");
    assert!(!err.to_string().contains(TOKEN));

    let server = serve(|_| Reply::status(503)).await;
    let v = HttpVerifier::new(&bearer_config(server.url("/"))).unwrap();
    let err = verify(&v, &SecretData::text(TOKEN), None).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Unavailable(m) if m.contains("got 503")), "{err:?}");
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let target = serve(|_| Reply::status(200)).await;
    let loc = target.url("/elsewhere");
    let server = serve(move |_| Reply { status: 302, delay: Duration::ZERO }).await;
    let _ = loc;
    let v = HttpVerifier::new(&bearer_config(server.url("/"))).unwrap();
    let err = verify(&v, &SecretData::text(TOKEN), None).await.unwrap_err();
    assert!(matches!(&err, VerifyError::Failed(m) if m.contains("got 302")), "{err:?}");
    assert!(target.requests().is_empty());
}

#[test]
fn bad_configs_name_the_field() {
    let base = bearer_config("http://127.0.0.1:1/".into());
    let cases: Vec<(HttpVerifierConfig, &str)> = vec![
        (HttpVerifierConfig { name: " ".into(), ..base.clone() }, "name"),
        (HttpVerifierConfig { url: "ftp://x/".into(), ..base.clone() }, "url"),
        (HttpVerifierConfig { url: "not a url".into(), ..base.clone() }, "url"),
        (HttpVerifierConfig { url: "https://u:p@host/".into(), ..base.clone() }, "url"),
        (HttpVerifierConfig { url: "http://billing.internal/v1/me".into(), ..base.clone() }, "url"),
        (HttpVerifierConfig { url: "http://10.0.0.7:8080/".into(), ..base.clone() }, "url"),
        (HttpVerifierConfig { method: "GE T".into(), ..base.clone() }, "method"),
        (HttpVerifierConfig { timeout: Duration::ZERO, ..base.clone() }, "timeout"),
        (
            HttpVerifierConfig { expect_status: rekey_integrations::ExpectStatus::Any(vec![]), ..base.clone() },
            "expect_status",
        ),
        (
            HttpVerifierConfig { expect_status: rekey_integrations::ExpectStatus::One(999), ..base.clone() },
            "expect_status",
        ),
        (
            HttpVerifierConfig {
                placement: rekey_integrations::Placement::Header { name: "Bad Header".into(), prefix: String::new() },
                ..base.clone()
            },
            "placement.name",
        ),
        (
            HttpVerifierConfig {
                placement: rekey_integrations::Placement::BasicAuth { username: None, username_field: None },
                ..base.clone()
            },
            "placement",
        ),
    ];
    for (config, field) in cases {
        let err = HttpVerifier::new(&config).unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
        assert!(matches!(err, IntegrationError::InvalidConfig { .. }));
    }
    // Unknown keys are refused by the parser.
    let err = toml::from_str::<HttpVerifierConfig>(
        "name = \"a\"\nurl = \"http://x/\"\nplacement = { type = \"header\", name = \"A\" }\ntoken = \"x\"",
    )
    .unwrap_err();
    assert!(err.to_string().contains("token"), "{err}");
    let err = toml::from_str::<HttpVerifierConfig>(
        "name = \"a\"\nurl = \"http://x/\"\ntimeout = \"ten\"\nplacement = { type = \"header\", name = \"A\" }",
    )
    .unwrap_err();
    assert!(err.to_string().contains("timeout") || err.to_string().contains("duration"), "{err}");
}

/// A rotation through the engine: a service that rejects every candidate
/// makes the staged rotation fail, and the current value stays.
#[tokio::test]
async fn rotation_rolls_back_when_the_service_rejects() {
    let server = serve(|r| {
        let ok = r.header("authorization").is_some_and(|h| h.starts_with("Bearer ") && h.len() > 20);
        Reply::status(if ok { 200 } else { 401 })
    })
    .await;
    let verifier: VerifierConfig = toml::from_str(&format!(
        r#"
        type = "http"
        name = "api"
        url = "{}"
        placement = {{ type = "header", name = "Authorization", prefix = "Bearer " }}
        "#,
        server.url("/")
    ))
    .unwrap();
    let store = Arc::new(rekey_memory::MemoryStore::new());
    let clock = Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d))));
    let manager =
        RotationManager::builder(store.clone()).clock(clock).verifier(verifier.build().unwrap()).build().unwrap();
    let path: SecretPath = "app/api-key".parse().unwrap();
    store.create(&path, SecretData::text("initial-value")).await.unwrap();
    let policy = RotationPolicy::builder("p")
        .manual()
        .strategy(RotationStrategy::Staged)
        .require_verification(true)
        .verification_tests(["api"])
        .build()
        .unwrap();
    let ok = manager.rotate_secret(&path, &policy, None).await;
    assert!(ok.success(), "{:?}", ok.error);
    let current = store.current(&path).await.unwrap();
    let value = current.data.as_text().unwrap().expose_secret().to_owned();
    assert_ne!(value, "initial-value");
    assert_eq!(server.requests()[0].header("authorization"), Some(format!("Bearer {value}").as_str()));

    let failed = manager.rotate_secret(&path, &policy, Some("short".to_owned().into())).await;
    assert!(!failed.success());
    let after = store.current(&path).await.unwrap();
    assert_eq!(after.data.as_text().unwrap().expose_secret(), value);
}

#[test]
fn plain_http_goes_only_to_this_machine_unless_allowed() {
    let base = bearer_config("http://127.0.0.1:1/".into());
    for local in ["http://127.0.0.1:1/", "http://localhost:8080/x", "http://[::1]:1/", "https://billing.internal/"] {
        let c = HttpVerifierConfig { url: local.into(), ..base.clone() };
        assert!(HttpVerifier::new(&c).is_ok(), "{local}");
        assert_eq!(c.transport_warning(), None, "{local}");
    }
    let remote = HttpVerifierConfig { url: "http://billing.internal/v1/me".into(), ..base.clone() };
    let e = HttpVerifier::new(&remote).unwrap_err();
    assert!(e.to_string().contains("unencrypted") && e.to_string().contains("allow_insecure_http"), "{e}");
    let allowed = HttpVerifierConfig { allow_insecure_http: true, ..remote };
    assert!(HttpVerifier::new(&allowed).is_ok());
    let w = allowed.transport_warning().expect("a warning");
    assert!(w.contains("billing.internal") && w.contains("plain http://"), "{w}");
}
