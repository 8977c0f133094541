//! `target = { type = "command", ... }`: an external hook, a program of
//! yours that applies, tests and revokes the credential
//! (`rekey_integrations::CommandTarget`), built while the file is read.

use rekey_integrations::{CommandTarget, CommandTargetConfig};

use super::keys;
use super::verifier::integration_error;
use super::walker::{Ctx, Kind, Tbl, check, report_at_key};

/// The types of the keys of a command target (the keys come from the
/// library's `CommandTargetConfig`).
const COMMAND_KINDS: &[(&str, Kind)] = &[
    ("program", Kind::Str),
    ("args", Kind::StrList),
    ("timeout", Kind::Str),
    ("env", Kind::Table),
    ("inherit_env", Kind::Bool),
    ("concurrent_credentials", Kind::Bool),
    ("field", Kind::Str),
];

/// Reads a command target for the secret at `path`; `field` is the
/// secret's own `field`, the target's default. Every refusal is reported at
/// the key that causes it.
pub(super) fn command_target(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    plain: Option<&toml::Value>,
    path: Option<&rekey::SecretPath>,
    field: Option<&str>,
) -> Option<(String, bool, Box<CommandTarget>)> {
    let allowed = keys::allowed(keys::fields::<CommandTargetConfig>(), COMMAND_KINDS, &[], &[("type", Kind::Str)]);
    if !check(ctx, t, &allowed, &["program"]) {
        return None;
    }
    let mut table = plain.and_then(toml::Value::as_table).cloned().unwrap_or_default();
    table.remove("type");
    let config: CommandTargetConfig = match toml::Value::Table(table).try_into() {
        Ok(c) => c,
        Err(e) => {
            let e: toml::de::Error = e;
            report_at_key(ctx, t, e.message().to_owned());
            return None;
        }
    };
    match CommandTarget::new(&config) {
        Ok(target) => {
            let target = target.with_default_field(field);
            let target = match path {
                Some(p) => target.for_secret(p),
                None => target,
            };
            Some((config.program.display().to_string(), config.inherit_env, Box::new(target)))
        }
        Err(e) => {
            integration_error(ctx, t, &e);
            None
        }
    }
}
