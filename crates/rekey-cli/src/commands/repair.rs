//! `rekey rollback` and `rekey resume`: putting a secret back the way it
//! was.

use serde_json::json;

use crate::app;
use crate::config::Config;
use crate::error::{CliError, EXIT_OK};
use crate::output::{Out, time_json, when};
use crate::state;

/// `rekey rollback`: the engine's rollback — the last value that was
/// current and good becomes current again (never a candidate that failed),
/// on the credential target first.
pub async fn rollback(config: Config, out: Out, path: &str) -> Result<u8, CliError> {
    let app = app::build(config, None).await?;
    let s = app.secret(path)?.clone();
    let rb =
        app.manager.rollback(&s.path).await.map_err(|e| CliError::engine(format!("rolling back {}", s.path), &e))?;
    let mut ev = state::event_now("rollback", "cli");
    ev.old_version = Some(rb.replaced.to_string());
    ev.new_version = Some(rb.current.id.to_string());
    ev.detail = Some(format!("restored the value of version {}", rb.restored));
    if let Err(e) = state::record_event(&*app.store, &s.path, ev, false).await {
        tracing::warn!(path = %s.path, error = %e, "could not record the rollback beside the secret");
    }
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

/// `rekey resume`.
pub async fn resume(config: Config, out: Out, path: &str) -> Result<u8, CliError> {
    let app = app::build(config, None).await?;
    let s = app.secret(path)?.clone();
    let meta = app.store.read_metadata(&s.path).await.map_err(|e| CliError::store(format!("reading {}", s.path), e))?;
    let st = state::read(&meta);
    // The engine's own record (held in the store, seen by every process)
    // and this command's record beside it are both lifted.
    let engine_quarantined = rekey::SecretRecord::read(&meta).quarantine.is_some();
    app.manager.resume(&s.path).await.map_err(|e| CliError::engine(format!("resuming {}", s.path), &e))?;
    let was_quarantined = st.quarantined.is_some() || engine_quarantined;
    if st.quarantined.is_some() || st.failures > 0 {
        let mut ev = state::event_now("resumed", "cli");
        ev.detail = st.quarantined.as_deref().map(|q| format!("quarantine since {q}"));
        state::record_event(&*app.store, &s.path, ev, true)
            .await
            .map_err(|e| CliError::store(format!("updating {}", s.path), e))?;
    }
    if out.json {
        out.emit(true, json!({ "path": s.path.as_str(), "was_quarantined": was_quarantined }));
    } else if was_quarantined {
        out.line(&format!("{}: quarantine lifted; the daemon rotates it again when it is due", s.path));
    } else {
        out.line(&format!("{}: was not quarantined", s.path));
    }
    app.finish().await;
    Ok(EXIT_OK)
}
