//! `[policies.NAME]`: named rotation policies.

use rekey::{RotationPolicy, RotationPolicyConfig};

use super::walker::{Ctx, Kind, Tbl, check, quoted, suggest};

const POLICY_KEYS: [(&str, Kind); 14] = [
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
];

pub(super) fn policy_config(ctx: &mut Ctx<'_>, t: &Tbl<'_>, name: &str, verifiers: &[&str]) -> Option<RotationPolicy> {
    let mut bad = !check(ctx, t, &POLICY_KEYS, &[]);
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
    let u32_of = |ctx: &mut Ctx<'_>, key: &str| -> Option<u32> {
        let v = t.int(key)?;
        match u32::try_from(v) {
            Ok(v) => Some(v),
            Err(_) => {
                ctx.err(t.span_of(key), t.field(key), format!("{v} is out of range (0 to {})", u32::MAX));
                None
            }
        }
    };
    let mut c = RotationPolicyConfig { name: name.to_owned(), ..RotationPolicyConfig::default() };
    c.schedule = t.str("schedule").map(normalise_schedule);
    c.strategy = t.str("strategy").map(str::to_owned);
    c.require_verification = t.bool("require_verification");
    c.verification_tests = t.strs("verification_tests");
    c.auto_rollback = t.bool("auto_rollback");
    c.max_retries = u32_of(ctx, "max_retries");
    c.initial_backoff = t.str("initial_backoff").map(str::to_owned);
    c.max_backoff = t.str("max_backoff").map(str::to_owned);
    c.backoff_multiplier = t.num("backoff_multiplier");
    c.window = t.str("window").map(str::to_owned);
    c.jitter = t.str("jitter").map(str::to_owned);
    c.grace_period = t.str("grace_period").map(str::to_owned);
    c.verification_timeout = t.str("verification_timeout").map(str::to_owned);
    c.quarantine_after = u32_of(ctx, "quarantine_after");
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
