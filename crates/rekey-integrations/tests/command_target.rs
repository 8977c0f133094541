//! CommandTarget (the external hook) through the engine, against a real
//! program: a /bin/sh script that keeps a system's valid credentials in a
//! file, one per line. Each test drives a whole rotation and checks what
//! the "system" accepts afterwards, and that no credential leaks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::capture_logs;
use rekey_core::SecretStoreExt as _;
use rekey_core::{
    CredentialTarget as _, RotationManager, RotationPolicy, RotationStrategy, SecretBinding, SecretData, SecretPath,
    SecretStore, SecretString, TargetError,
};
use rekey_integrations::{CommandTarget, CommandTargetConfig, IntegrationError};
use rekey_memory::MemoryStore;

const INITIAL: &str = "hook-initial-credential-0001";
const CANDIDATE: &str = "hook-candidate-credential-7f3a9c";

/// The system's side: `$CREDS` holds the valid credentials. `FAIL` makes an
/// operation misbehave: `refuse` (exit 3, naming the credential on
/// stderr), `crash` (half-done: writes, then exits 1), `hang`.
const SCRIPT: &str = r#"
op="$1"
[ "$op" = "$REKEY_OPERATION" ] || exit 9
case "$op:${FAIL:-}" in
  apply:refuse) echo "refused $REKEY_NEW" >&2; exit 3 ;;
  apply:crash) printf '%s\n' "$REKEY_NEW" > "$CREDS"; echo "lost $REKEY_NEW midway" >&2; exit 1 ;;
  apply:hang) exec sleep 30 ;;
esac
case "$op" in
  apply)
    if [ "$MODE" = several ]; then
      grep -qxF "$REKEY_NEW" "$CREDS" || printf '%s\n' "$REKEY_NEW" >> "$CREDS"
    else
      printf '%s\n' "$REKEY_NEW" > "$CREDS"
    fi ;;
  test) grep -qxF "$REKEY_CREDENTIAL" "$CREDS" || { echo "login failed" >&2; exit 3; } ;;
  revoke)
    { grep -vxF "$REKEY_REVOKE" "$CREDS" || true; } > "$CREDS.new"
    grep -qxF "$REKEY_KEEP" "$CREDS.new" || printf '%s\n' "$REKEY_KEEP" >> "$CREDS.new"
    mv "$CREDS.new" "$CREDS" ;;
  *) exit 2 ;;
esac
"#;

struct System {
    _dir: tempfile::TempDir,
    creds: PathBuf,
    script: PathBuf,
}

impl System {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("creds");
        std::fs::write(&creds, format!("{INITIAL}\n")).unwrap();
        let script = dir.path().join("hook.sh");
        std::fs::write(&script, SCRIPT).unwrap();
        Self { creds, script, _dir: dir }
    }

    fn valid(&self) -> Vec<String> {
        std::fs::read_to_string(&self.creds).unwrap().lines().map(str::to_owned).collect()
    }

    fn target(&self, several: bool, fail: Option<&str>) -> CommandTarget {
        let mut env = std::collections::BTreeMap::new();
        env.insert("CREDS".to_owned(), self.creds.display().to_string());
        env.insert("MODE".to_owned(), if several { "several" } else { "one" }.to_owned());
        if let Some(f) = fail {
            env.insert("FAIL".to_owned(), f.to_owned());
        }
        let c = CommandTargetConfig { concurrent_credentials: several, ..config(&self.script, env) };
        CommandTarget::new(&c).unwrap()
    }
}

fn config(script: &Path, env: std::collections::BTreeMap<String, String>) -> CommandTargetConfig {
    CommandTargetConfig {
        program: "/bin/sh".into(),
        args: vec![script.display().to_string()],
        timeout: Duration::from_secs(2),
        env,
        inherit_env: false,
        concurrent_credentials: false,
        field: None,
    }
}

async fn setup(target: CommandTarget) -> (Arc<MemoryStore>, RotationManager, SecretPath) {
    let store = Arc::new(MemoryStore::new());
    let path: SecretPath = "hook/app".parse().unwrap();
    store.create(&path, SecretData::text(INITIAL)).await.unwrap();
    let clock = rekey_core::SystemClock::new(|d| Box::pin(tokio::time::sleep(d)));
    let manager = RotationManager::builder(store.clone()).clock(Arc::new(clock)).build().unwrap();
    manager.bind(path.clone(), SecretBinding::new().target(Arc::new(target)));
    (store, manager, path)
}

fn staged() -> RotationPolicy {
    RotationPolicy::builder("staged").manual().strategy(RotationStrategy::Staged).max_retries(0).build().unwrap()
}

async fn current(store: &MemoryStore, path: &SecretPath) -> String {
    use rekey_core::ExposeSecret;
    let v = store.read(path, &rekey_core::VersionSelector::Current).await.unwrap();
    v.data.as_text().map(|s| s.expose_secret().to_owned()).unwrap()
}

fn assert_no_leak(text: &str) {
    for v in [CANDIDATE, INITIAL] {
        assert!(!text.contains(v), "a credential leaked: {text}");
    }
}

#[tokio::test]
async fn a_rotation_through_the_hook_leaves_only_the_new_credential_valid() {
    for several in [false, true] {
        let sys = System::new();
        let (store, manager, path) = setup(sys.target(several, None)).await;
        let r = manager.rotate_secret(&path, &staged(), Some(SecretString::from(CANDIDATE))).await;
        assert!(r.success(), "{r}");
        assert_eq!(current(&store, &path).await, CANDIDATE);
        // On a system that keeps several, the replaced one is revoked too.
        assert_eq!(sys.valid(), [CANDIDATE], "several = {several}");
        assert_no_leak(&format!("{r} {r:?}"));
    }
}

#[tokio::test]
async fn a_refused_apply_changes_nothing_and_its_message_is_redacted() {
    let logs = capture_logs();
    let sys = System::new();
    let (store, manager, path) = setup(sys.target(false, Some("refuse"))).await;
    let r = manager.rotate_secret(&path, &staged(), Some(SecretString::from(CANDIDATE))).await;
    assert!(!r.success(), "{r}");
    let message = r.error.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(message.contains("exited with status 3") && message.contains("refused [REDACTED]"), "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(current(&store, &path).await, INITIAL);
    assert_eq!(sys.valid(), [INITIAL]);
    assert!(!store.read_metadata(&path).await.unwrap().contains_key(rekey_core::JOURNAL_KEY), "no journal left");
    assert_no_leak(&format!("{r} {r:?} {}", logs.text()));
}

#[tokio::test]
async fn a_hook_that_fails_midway_or_hangs_is_undone_with_revoke() {
    let logs = capture_logs();
    for fail in ["crash", "hang"] {
        let sys = System::new();
        let (store, manager, path) = setup(sys.target(false, Some(fail))).await;
        let started = std::time::Instant::now();
        let r = manager.rotate_secret(&path, &staged(), Some(SecretString::from(CANDIDATE))).await;
        assert!(!r.success() && r.rollback_performed, "{fail}: {r}");
        assert!(started.elapsed() < Duration::from_secs(10), "{fail}: killed at its timeout");
        let message = r.error.as_ref().map(ToString::to_string).unwrap_or_default();
        let expected = if fail == "crash" { "exited with status 1" } else { "timed out" };
        assert!(message.contains(expected), "{fail}: {message}");
        // The store still serves the old credential, and the system accepts it
        // (and only it) again.
        assert_eq!(current(&store, &path).await, INITIAL);
        assert_eq!(sys.valid(), [INITIAL], "{fail}");
        assert!(!store.read_metadata(&path).await.unwrap().contains_key(rekey_core::JOURNAL_KEY), "{fail}");
        assert_no_leak(&format!("{r} {r:?}"));
    }
    assert_no_leak(&logs.text());
}

#[tokio::test]
async fn a_missing_program_changes_nothing() {
    let sys = System::new();
    let mut c = config(&sys.script, Default::default());
    c.program = "/nonexistent/rekey-hook".into();
    let target = CommandTarget::new(&c).unwrap();
    let err = target.apply(&SecretData::text(CANDIDATE), None).await.unwrap_err();
    assert!(err.changed_nothing() && matches!(err.unmarked(), TargetError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("not found"), "{err}");
}

#[test]
fn bad_configuration_names_its_field() {
    let base = config(Path::new("/bin/true"), Default::default());
    let field = |c: &CommandTargetConfig| match CommandTarget::new(c) {
        Err(IntegrationError::InvalidConfig { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let mut c = base.clone();
    c.env.insert("REKEY_NEW".into(), "x".into());
    assert_eq!(field(&c), "env.REKEY_NEW");
    let c = CommandTargetConfig { timeout: Duration::ZERO, ..base.clone() };
    assert_eq!(field(&c), "timeout");
    let c = CommandTargetConfig { program: PathBuf::new(), ..base.clone() };
    assert_eq!(field(&c), "program");
    let c = CommandTargetConfig { field: Some(" ".into()), ..base.clone() };
    assert_eq!(field(&c), "field");
    let parsed: CommandTargetConfig =
        toml::from_str("program = \"/bin/true\"\nconcurrent_credentials = true\ntimeout = \"5s\"").unwrap();
    assert!(parsed.concurrent_credentials && parsed.timeout == Duration::from_secs(5));
    assert!(toml::from_str::<CommandTargetConfig>("program = \"/bin/true\"\nshell = true").is_err());
}
