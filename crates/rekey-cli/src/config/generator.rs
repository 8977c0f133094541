//! `generator = { ... }` of a `[[secret]]`: how new values are made.

use rekey::{GeneratorConfig, GeneratorKind};

use super::keys;
use super::walker::{Ctx, Kind, Tbl, check, report_at_key, strip_field};

/// The types of a generator's keys (the keys come from the library's
/// `GeneratorConfig`).
pub(super) const GENERATOR_KINDS: &[(&str, Kind)] = &[
    ("type", Kind::Str),
    ("length", Kind::Int),
    ("charset", Kind::Str),
    ("min_lower", Kind::Int),
    ("min_upper", Kind::Int),
    ("min_digits", Kind::Int),
    ("min_symbols", Kind::Int),
    ("symbols", Kind::Str),
];

pub(super) fn generator_config(ctx: &mut Ctx<'_>, t: &Tbl<'_>, plain: Option<&toml::Value>) -> Option<GeneratorConfig> {
    let fields = keys::fields::<GeneratorConfig>();
    if !check(ctx, t, &keys::allowed(fields, GENERATOR_KINDS, &[], &[]), &[]) {
        return None;
    }
    if let Some(k) = t.str("type")
        && let Err(e) = k.parse::<GeneratorKind>()
    {
        ctx.err(t.span_of("type"), t.field("type"), strip_field(&e.to_string(), "type"));
        return None;
    }
    for (key, _) in GENERATOR_KINDS.iter().filter(|(_, kind)| *kind == Kind::Int) {
        if let Some(v) = t.int(key)
            && usize::try_from(v).is_err()
        {
            ctx.err(t.span_of(key), t.field(key), format!("{v} is negative"));
            return None;
        }
    }
    // The library's own type reads the table (every key as it defines it).
    let mut table = plain.and_then(toml::Value::as_table).cloned().unwrap_or_default();
    if let Some(toml::Value::String(k)) = table.get("type").cloned() {
        // `GeneratorKind`'s parser accepts what its serde names do not
        // (case, `-`); the check above used the parser.
        if let Ok(kind) = k.parse::<GeneratorKind>() {
            table.insert("type".to_owned(), toml::Value::String(kind.to_string()));
        }
    }
    let c: GeneratorConfig = match toml::Value::Table(table).try_into() {
        Ok(c) => c,
        Err(e) => {
            let e: toml::de::Error = e;
            report_at_key(ctx, t, e.message().to_owned());
            return None;
        }
    };
    match c.build() {
        Ok(_) => Some(c),
        Err(e) => {
            let msg = e.to_string();
            let key = fields.iter().copied().find(|k| msg.starts_with(&format!("{k}:"))).unwrap_or("type");
            ctx.err(t.span_of(key), t.field(key), strip_field(&msg, key));
            None
        }
    }
}
