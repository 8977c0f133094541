//! Rotates a PostgreSQL role's password end to end: generate a password, set
//! it on the role (as a client-side SCRAM-SHA-256 verifier), log in with it,
//! then make it current in the secret store atomically — rolling everything
//! back if any step fails. Prints versions and outcomes, never a password.
//!
//! ```text
//! REKEY_PG_ADMIN_URL=postgres://postgres:ADMIN_PW@127.0.0.1:5432/postgres \
//!     cargo run --example pg_rotate -- [--role app] [--rotations 3] [--path db/app] [--vault]
//! ```
//!
//! * `REKEY_PG_ADMIN_URL` (required): a role that may `ALTER ROLE` the target
//!   role (`CREATEROLE` or superuser). The role is created (`LOGIN`, no
//!   grants) if it does not exist.
//! * `--vault`: keep the secret in Vault / OpenBao (KV v2 at `secret/`) read
//!   from `VAULT_ADDR` and `VAULT_TOKEN`, instead of in memory. The secret is
//!   created on the first run, with a fresh password that is set on the role.
//!
//! The secret's value is `{username, password}`; the staged strategy stages
//! the new password, applies it to the role, verifies it by logging in, then
//! promotes it with compare-and-swap.

use std::process::ExitCode;
use std::sync::Arc;

use rekey_core::{
    CredentialTarget, DynSecretStore, RotationManager, RotationPolicy, RotationStrategy, SecretBinding, SecretData,
    SecretPath, SecretStoreExt, SecretString, StoreError, SystemClock,
};
use rekey_postgres::{PostgresConfig, PostgresTarget};

struct Args {
    role: String,
    rotations: u32,
    path: String,
    vault: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { role: "app".into(), rotations: 3, path: "db/app".into(), vault: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--role" => a.role = value()?,
            "--path" => a.path = value()?,
            "--rotations" => a.rotations = value()?.parse().map_err(|_| "--rotations takes a number".to_owned())?,
            "--vault" => a.vault = true,
            "-h" | "--help" => {
                return Err("usage: pg_rotate [--role NAME] [--rotations N] [--path STORE/PATH] [--vault]".into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(a)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pg_rotate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let url = std::env::var("REKEY_PG_ADMIN_URL")
        .map_err(|_| "set REKEY_PG_ADMIN_URL=postgres://ADMIN:PASSWORD@HOST:PORT/DB (a role with CREATEROLE)")?;
    let admin = PostgresConfig::from_url(&url)?;
    let target = Arc::new(PostgresTarget::single_user(admin, args.role.clone())?);
    target.ensure_roles().await?;

    let store: Arc<DynSecretStore> = if args.vault {
        let cfg = rekey_vault::VaultConfig::from_env()?;
        Arc::new(rekey_vault::VaultStore::connect(cfg).await?)
    } else {
        Arc::new(rekey_memory::MemoryStore::new())
    };
    let path: SecretPath = args.path.parse()?;

    // First run: a fresh password, set on the role, then stored.
    match store.current(&path).await {
        Ok(v) => println!("secret {path}: current version {}", v.meta.id),
        Err(StoreError::NotFound { .. }) => {
            let generator = rekey_core::SecretGenerator::random(32)?;
            let password: SecretString = rekey_core::GenerateSecret::generate(&generator)?;
            let first = SecretData::Fields(
                [("username".to_owned(), SecretString::from(args.role.clone())), ("password".to_owned(), password)]
                    .into_iter()
                    .collect(),
            );
            target.apply(&first, None).await?;
            let v = store.create(&path, first).await?;
            println!("secret {path}: created version {} with a fresh password for role {}", v.id, args.role);
        }
        Err(e) => return Err(e.into()),
    }

    let manager = RotationManager::builder(store.clone())
        .clock(Arc::new(SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))))
        .build()?;
    manager.bind(path.clone(), SecretBinding::new().field("password").target(target.clone()));
    let policy = RotationPolicy::builder("pg-rotate").strategy(RotationStrategy::Staged).auto_rollback(true).build()?;

    for i in 1..=args.rotations {
        let r = manager.rotate_secret(&path, &policy, None).await;
        println!(
            "rotation {i}: {} -> {} ({}, verified: {}, {} ms)",
            r.old_version.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            r.new_version.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            r.outcome,
            r.verification_passed,
            r.duration.as_millis(),
        );
        if !r.success() {
            return Err(format!("rotation failed: {r}").into());
        }
    }

    // The store's current password is the one the role accepts.
    let current = store.current(&path).await?;
    target.test(&current.data).await?;
    println!("role {} logs in with the current version {} of {path}", args.role, current.meta.id);
    Ok(())
}
