//! `rekey` against the moto server (AWS Secrets Manager): rotate, read the
//! value back over plain HTTP (Secrets Manager's JSON protocol, no rekey and
//! no SDK code on the read-back path), status and history agree with the
//! native stages, rollback — and no secret value in any output.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use serde_json::{Value, json};

struct Moto {
    endpoint: String,
    http: reqwest::Client,
}

impl Moto {
    fn from_env() -> Option<Self> {
        let endpoint = rekey_testkit::env::require("REKEY_TEST_AWS_ENDPOINT", "moto")?;
        Some(Self { endpoint, http: reqwest::Client::new() })
    }

    async fn call(&self, action: &str, body: Value) -> Value {
        let r = self
            .http
            .post(&self.endpoint)
            .header("X-Amz-Target", format!("secretsmanager.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .expect("moto answers");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "{action}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn create(&self, name: &str, value: &str) {
        self.call("CreateSecret", json!({ "Name": name, "SecretString": value })).await;
    }

    async fn current(&self, name: &str) -> (String, String) {
        let v = self.call("GetSecretValue", json!({ "SecretId": name, "VersionStage": "AWSCURRENT" })).await;
        (v["SecretString"].as_str().unwrap().to_owned(), v["VersionId"].as_str().unwrap().to_owned())
    }

    async fn stage_of(&self, name: &str, stage: &str) -> Option<String> {
        let v = self.call("ListSecretVersionIds", json!({ "SecretId": name, "IncludeDeprecated": true })).await;
        v["Versions"].as_array()?.iter().find_map(|x| {
            let has = x["VersionStages"].as_array()?.iter().any(|s| s == stage);
            has.then(|| x["VersionId"].as_str().unwrap_or_default().to_owned())
        })
    }
}

#[tokio::test]
async fn rotate_against_moto_and_read_back_over_http() {
    let Some(moto) = Moto::from_env() else { return };
    let prefix = unique("aws");
    let dir = scratch("aws");
    let key = format!("{prefix}/api-key");
    let db = format!("{prefix}/db");
    moto.create(&key, "aws-initial-api-key-s3cr3t").await;
    moto.create(&db, r#"{"username":"app","password":"aws-initial-db-pw-s3cr3t"}"#).await;
    let cfg = write_config(
        &dir,
        &format!(
            r#"[store]
type = "aws"
region = "us-east-1"
endpoint_url = "{}"

[policies.staged]
schedule = "every 1h"
strategy = "staged"

[[secret]]
path = "{key}"
policy = "staged"
generator = {{ type = "hex", length = 48 }}

[[secret]]
path = "{db}"
policy = "staged"
field = "password"
"#,
            moto.endpoint
        ),
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing-access-key"),
        ("AWS_SECRET_ACCESS_KEY", "testing-secret-access-key-xyz"),
        ("AWS_REGION", "us-east-1"),
    ];
    let r = rekey(&cfg, &["check"], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    let r = rekey(&cfg, &["rotate", "--all", "--json"], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["summary"]["rotated"], 2);
    // The AWS calls the run made, counted by the store's client.
    let calls = r.json()["summary"]["store_calls"].as_u64().unwrap_or(0);
    let per = r.json()["summary"]["store_calls_per_rotation"].as_f64().unwrap_or(0.0);
    assert!(calls >= 2 * 4 && (per - calls as f64 / 2.0).abs() < 1e-9, "{}", r.stdout);
    eprintln!("rotate --all on moto: {calls} API calls, {per} per rotation");
    let (value, version) = moto.current(&key).await;
    assert_eq!(value.len(), 48);
    assert!(value.chars().all(|c| c.is_ascii_hexdigit()));
    let (dbv, _) = moto.current(&db).await;
    let dbj: Value = serde_json::from_str(&dbv).unwrap();
    assert_eq!(dbj["username"], "app");
    let pw = dbj["password"].as_str().unwrap().to_owned();
    assert_ne!(pw, "aws-initial-db-pw-s3cr3t");
    // Nothing left pending: AWSPENDING is gone or on the current version,
    // where AWS's own rotation may leave it too (the store's default).
    let pending = moto.stage_of(&key, "AWSPENDING").await;
    assert!(pending.is_none() || pending.as_deref() == Some(version.as_str()), "pending: {pending:?}");

    // status and history agree with the native stages.
    let r = rekey(&cfg, &["status", "--json"], &env).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = r.json()["secrets"][0].clone();
    assert_eq!(s["path"], key.as_str());
    assert_eq!(s["current_version"], version.as_str(), "{s}");
    assert_eq!(s["last_result"], "rotated");
    let r = rekey(&cfg, &["history", &key, "--json"], &env).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let h = r.json();
    let find = |flag: &str| {
        h["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v[flag] == true)
            .map(|v| v["version"].as_str().unwrap().to_owned())
    };
    assert_eq!(find("current"), Some(version.clone()));
    assert_eq!(find("previous"), moto.stage_of(&key, "AWSPREVIOUS").await);
    assert_eq!(h["events"][0]["event"], "rotated");

    // rollback: the old value is AWSCURRENT again.
    let r = rekey(&cfg, &["rollback", &key], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(moto.current(&key).await.0, "aws-initial-api-key-s3cr3t");

    assert_no_leak(&[
        "aws-initial-api-key-s3cr3t".to_owned(),
        "aws-initial-db-pw-s3cr3t".to_owned(),
        value,
        pw,
        "testing-secret-access-key-xyz".to_owned(),
    ]);
}
