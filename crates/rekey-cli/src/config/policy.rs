//! `[policies.NAME]`: named rotation policies.

use rekey::{RotationPolicy, RotationPolicyConfig};

use super::keys;
use super::walker::{Ctx, Kind, Tbl, check, quoted, report_at_key, suggest};

/// The types of a policy's keys (the keys come from the library's
/// `RotationPolicyConfig`, less `name`: the table's name).
pub(super) const POLICY_KINDS: &[(&str, Kind)] = &[
    ("schedule", Kind::Str),
    ("strategy", Kind::Str),
    ("require_verification", Kind::Bool),
    ("verification_tests", Kind::StrList),
    ("auto_rollback", Kind::Bool),
    ("max_retries", Kind::Int),
    ("initial_backoff", Kind::Str),
    ("max_backoff", Kind::Str),
    ("backoff_multiplier", Kind::Num),
    ("window", Kind::Str),
    ("jitter", Kind::Str),
    ("grace_period", Kind::Str),
    ("verification_timeout", Kind::Str),
    ("quarantine_after", Kind::Int),
    ("failure_backoff", Kind::Str),
    ("max_failure_backoff", Kind::Str),
];

pub(super) fn policy_config(
    ctx: &mut Ctx<'_>,
    t: &Tbl<'_>,
    plain: Option<&toml::Value>,
    name: &str,
    verifiers: &[&str],
) -> Option<RotationPolicy> {
    let allowed = keys::allowed(keys::fields::<RotationPolicyConfig>(), POLICY_KINDS, &["name"], &[]);
    let mut bad = !check(ctx, t, &allowed, &[]);
    if let Some(tests) = t.strs("verification_tests") {
        for test in &tests {
            if !verifiers.contains(&test.as_str()) {
                let known = if verifiers.is_empty() {
                    "no `[[verifier]]` is configured".to_owned()
                } else {
                    format!("configured verifiers: {}", quoted(verifiers))
                };
                ctx.err(
                    t.span_of("verification_tests"),
                    t.field("verification_tests"),
                    format!("unknown verifier {test:?}{}; {known}", suggest(test, verifiers.iter().copied())),
                );
                bad = true;
            }
        }
    }
    let mut out_of_range = Vec::new();
    for key in ["max_retries", "quarantine_after"] {
        if let Some(v) = t.int(key)
            && u32::try_from(v).is_err()
        {
            ctx.err(t.span_of(key), t.field(key), format!("{v} is out of range (0 to {})", u32::MAX));
            out_of_range.push(key);
            bad = true;
        }
    }
    // The library's own type reads the table, so every key it defines is
    // taken as it defines it. Keys already reported are left out, so the
    // policy's rules are still checked (and reported) for the rest.
    let mut table = plain.and_then(toml::Value::as_table).cloned().unwrap_or_default();
    table.retain(|k, _| {
        !out_of_range.contains(&k)
            && allowed.iter().any(|(a, kind)| *a == k && t.item(k).is_some_and(|i| kind.accepts(i)))
    });
    table.insert("name".to_owned(), toml::Value::String(name.to_owned()));
    let mut c: RotationPolicyConfig = match toml::Value::Table(table).try_into() {
        Ok(c) => c,
        Err(e) => {
            let e: toml::de::Error = e;
            report_at_key(ctx, t, e.message().to_owned());
            return None;
        }
    };
    c.schedule = c.schedule.as_deref().map(normalise_schedule);
    match RotationPolicy::try_from(c) {
        Ok(p) if !bad => Some(p),
        Ok(_) => None,
        Err(e) => {
            let field = e.field();
            // Report at the key the rule is about, or at the table.
            let key = if t.item(field).is_some() {
                field
            } else {
                ["grace_period", "schedule", "jitter", "strategy"]
                    .into_iter()
                    .find(|k| t.item(k).is_some())
                    .unwrap_or(field)
            };
            let msg = e.to_string();
            let msg = msg.strip_prefix(&format!("{field}: ")).unwrap_or(&msg).to_owned();
            ctx.err(t.span_of(key), t.field(field), msg);
            None
        }
    }
}

/// `schedule = "0 3 * * *"` (a bare cron expression) is accepted as `cron: ...`.
fn normalise_schedule(s: &str) -> String {
    let t = s.trim();
    let fields = t.split_whitespace().count();
    let looks_cron = (5..=6).contains(&fields)
        && !t.to_ascii_lowercase().starts_with("every")
        && !t.to_ascii_lowercase().starts_with("cron:")
        && t.split_whitespace().all(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || "*/,-?LW#".contains(c)));
    if looks_cron { format!("cron: {t}") } else { t.to_owned() }
}
