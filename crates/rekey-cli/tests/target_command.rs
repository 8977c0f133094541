//! `target = { type = "command" }`: an external hook rotating a credential
//! on a "system" kept by a /bin/sh script (its valid credentials in a file),
//! through the binary against OpenBao.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const HOOK: &str = r#"
[ "$REKEY_PATH" = "$EXPECT_PATH" ] || { echo "REKEY_PATH is $REKEY_PATH" >&2; exit 4; }
case "$1" in
  apply) printf '%s\n' "$REKEY_NEW" > "$CREDS" ;;
  test) grep -qxF "$REKEY_CREDENTIAL" "$CREDS" || { echo "login refused for $REKEY_CREDENTIAL" >&2; exit 3; } ;;
  revoke) printf '%s\n' "$REKEY_KEEP" > "$CREDS" ;;
  *) exit 2 ;;
esac
"#;

#[tokio::test]
async fn rotate_through_an_external_hook_and_refuse_a_bad_one_at_its_key() {
    let Some(bao) = Bao::from_env() else { return };
    let dir = scratch("hook");
    let path = format!("{}/svc", unique("hook"));
    let initial = "hook-initial-s3cr3t-00001";
    bao.put(&path, json!({ "value": initial })).await;
    let (creds, hook) = (dir.join("creds"), dir.join("hook.sh"));
    std::fs::write(&creds, format!("{initial}\n")).unwrap();
    std::fs::write(&hook, HOOK).unwrap();
    let secret = |extra: &str| {
        format!(
            "{}[policies.p]\nschedule = \"manual\"\nstrategy = \"staged\"\n\
             [[secret]]\npath = \"{path}\"\npolicy = \"p\"\n\
             target = {{ type = \"command\", program = \"/bin/sh\", args = [{:?}], env = {{ CREDS = {:?}, EXPECT_PATH = \"{path}\"{extra} }} }}\n",
            vault_store(&bao),
            hook.display().to_string(),
            creds.display().to_string(),
        )
    };
    let cfg = write_config(&dir, &secret(""));
    let env = [("VAULT_TOKEN", bao.token.as_str())];
    let plan = rekey(&cfg, &["plan", "--json"], &env).await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains(r#""target":"command""#), "{}", plan.stdout);

    let r = rekey(&cfg, &["rotate", &path, "--json"], &env).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let now = bao.read(&path).await;
    let new = now["value"].as_str().unwrap().to_owned();
    assert_ne!(new, initial);
    assert_eq!(std::fs::read_to_string(&creds).unwrap(), format!("{new}\n"), "the system holds the store's value");
    assert_no_leak(&[initial.to_owned(), new]);

    // A hook config that would let rekey's own variable be overwritten is
    // refused while the file is read, at its key.
    // A hook given rekey's whole environment (its VAULT_TOKEN) is warned of.
    let text = secret("").replace("program = \"/bin/sh\"", "program = \"/bin/sh\", inherit_env = true");
    let cfg = write_config(&dir, &text);
    for cmd in ["plan", "check"] {
        let r = rekey(&cfg, &[cmd, "--json"], &env).await;
        assert_eq!(r.code, 0, "{cmd}: {}", r.stderr);
        assert!(r.stdout.contains("inherit_env = true passes rekey's whole environment"), "{cmd}: {}", r.stdout);
    }

    let text = secret(", REKEY_NEW = \"x\"");
    let line = text.lines().position(|l| l.starts_with("target = ")).unwrap() + 1;
    let column = text.lines().nth(line - 1).unwrap().find("env = ").unwrap() + "env = ".len() + 1;
    let cfg = write_config(&dir, &text);
    let r = rekey(&cfg, &["check"], &env).await;
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let at = format!("rekey.toml:{line}:{column}: secret[1].target.env: invalid `env.REKEY_NEW`");
    assert!(r.stderr.contains(&at), "{at}\n{}", r.stderr);
}
