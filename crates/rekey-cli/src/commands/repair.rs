//! `rekey rollback` and `rekey resume`: putting a secret back the way it
//! was.

use rekey::SecretStoreExt;
use serde_json::json;

use crate::app;
use crate::config::Config;
use crate::error::{CliError, EXIT_OK};
use crate::output::Out;
use crate::state;

/// `rekey rollback`.
pub async fn rollback(config: Config, out: Out, path: &str) -> Result<u8, CliError> {
    let app = app::build(config, None).await?;
    let s = app.secret(path)?.clone();
    let ctx = |what: &str| format!("{what} {}", s.path);
    let current = app.store.current(&s.path).await.map_err(|e| CliError::store(ctx("reading"), e))?;
    let previous =
        app.store.previous(&s.path).await.map_err(|e| CliError::store(ctx("reading the previous version of"), e))?;
    // The system that checks the credential must accept the old value again
    // before consumers read it.
    let target = match &s.target {
        Some(t) => Some(app::target(t).map_err(CliError::Usage)?),
        None => None,
    };
    if let Some(t) = &target {
        t.apply(&previous.data, Some(&current.data))
            .await
            .map_err(|e| CliError::Failed(format!("re-applying the previous value to the {} target: {e}", t.name())))?;
    }
    let promoted = match app.store.promote(&s.path, &previous.meta.id, &current.meta.id).await {
        Ok(m) => m,
        Err(e) => {
            if let Some(t) = &target
                && let Err(te) = t.apply(&current.data, Some(&previous.data)).await
            {
                tracing::error!(path = %s.path, error = %te, "rollback failed and the target could not be restored to the current value");
            }
            return Err(CliError::store(ctx("rolling back"), e));
        }
    };
    let mut ev = state::event_now("rollback", "cli");
    ev.old_version = Some(current.meta.id.to_string());
    ev.new_version = Some(promoted.id.to_string());
    ev.detail = Some(format!("restored the value of version {}", previous.meta.id));
    if let Err(e) = state::record_event(&*app.store, &s.path, ev, false).await {
        tracing::warn!(path = %s.path, error = %e, "could not record the rollback beside the secret");
    }
    if out.json {
        out.emit(
            true,
            json!({
                "path": s.path.as_str(),
                "replaced_version": current.meta.id.as_str(),
                "restored_from": previous.meta.id.as_str(),
                "current_version": promoted.id.as_str(),
            }),
        );
    } else {
        out.line(&format!(
            "{}: rolled back; version {} (the value of {}) is current, replacing {}",
            s.path, promoted.id, previous.meta.id, current.meta.id
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
    let was = st.quarantined.is_some() || st.failures > 0;
    if was {
        let mut ev = state::event_now("resumed", "cli");
        ev.detail = st.quarantined.as_deref().map(|q| format!("quarantine since {q}"));
        state::record_event(&*app.store, &s.path, ev, true)
            .await
            .map_err(|e| CliError::store(format!("updating {}", s.path), e))?;
    }
    if out.json {
        out.emit(true, json!({ "path": s.path.as_str(), "was_quarantined": st.quarantined.is_some() }));
    } else if st.quarantined.is_some() {
        out.line(&format!("{}: quarantine lifted; the daemon rotates it again when it is due", s.path));
    } else {
        out.line(&format!("{}: was not quarantined", s.path));
    }
    app.finish().await;
    Ok(EXIT_OK)
}
