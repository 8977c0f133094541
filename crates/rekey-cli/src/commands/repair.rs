//! `rekey rollback` and `rekey resume`: putting a secret back the way it
//! was.

use serde_json::json;

use crate::app;
use crate::config::Config;
use crate::error::{CliError, EXIT_OK};
use crate::output::{Out, quarantine_text, time_json, when};

/// `rekey rollback`: the engine's rollback — the last value that was
/// current and good becomes current again (never a candidate that failed),
/// on the credential target first. The engine records it beside the secret
/// (a `rollback` event; the replaced version counts as failed).
pub async fn rollback(config: Config, out: Out, path: &str) -> Result<u8, CliError> {
    let app = app::build(config, None).await?;
    let s = app.secret(path)?.clone();
    let rb =
        app.manager.rollback(&s.path).await.map_err(|e| CliError::engine(format!("rolling back {}", s.path), &e))?;
    if out.json {
        out.emit(
            true,
            json!({
                "path": s.path.as_str(),
                "replaced_version": rb.replaced.as_str(),
                "restored_from": rb.restored.as_str(),
                "restored_was_current_since": time_json(rb.restored_was_current_since),
                "current_version": rb.current.id.as_str(),
            }),
        );
    } else {
        let since =
            rb.restored_was_current_since.map(|t| format!(", current since {}", when(Some(t)))).unwrap_or_default();
        out.line(&format!(
            "{}: rolled back; version {} (the value of version {}{since}) is current, replacing {}",
            s.path, rb.current.id, rb.restored, rb.replaced
        ));
    }
    app.finish().await;
    Ok(EXIT_OK)
}

/// `rekey resume`: the engine lifts the quarantine recorded beside the
/// secret (for every process) and records a `resumed` event.
pub async fn resume(config: Config, out: Out, path: &str) -> Result<u8, CliError> {
    let app = app::build(config, None).await?;
    let s = app.secret(path)?.clone();
    let meta = app.store.read_metadata(&s.path).await.map_err(|e| CliError::store(format!("reading {}", s.path), e))?;
    let quarantine = rekey::SecretRecord::read_brief(&meta).quarantine;
    app.manager.resume(&s.path).await.map_err(|e| CliError::engine(format!("resuming {}", s.path), &e))?;
    if out.json {
        out.emit(true, json!({ "path": s.path.as_str(), "was_quarantined": quarantine.is_some() }));
    } else if let Some(q) = &quarantine {
        out.line(&format!(
            "{}: quarantine lifted (it was quarantined {}); the daemon rotates it again when it is due",
            s.path,
            quarantine_text(q)
        ));
    } else {
        out.line(&format!("{}: was not quarantined", s.path));
    }
    app.finish().await;
    Ok(EXIT_OK)
}
