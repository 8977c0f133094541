//! `generator = { ... }` of a `[[secret]]`: how new values are made.

use rekey::GeneratorConfig;

use super::walker::{Ctx, Kind, Tbl, check, strip_field};

pub(super) fn generator_config(ctx: &mut Ctx<'_>, t: &Tbl<'_>) -> Option<GeneratorConfig> {
    let ok = check(
        ctx,
        t,
        &[
            ("type", Kind::Str),
            ("length", Kind::Int),
            ("charset", Kind::Str),
            ("min_lower", Kind::Int),
            ("min_upper", Kind::Int),
            ("min_digits", Kind::Int),
            ("min_symbols", Kind::Int),
            ("symbols", Kind::Str),
        ],
        &[],
    );
    if !ok {
        return None;
    }
    let mut c = GeneratorConfig::default();
    if let Some(k) = t.str("type") {
        match k.parse() {
            Ok(k) => c.kind = k,
            Err(e) => {
                ctx.err(t.span_of("type"), t.field("type"), strip_field(&e.to_string(), "type"));
                return None;
            }
        }
    }
    let mut usize_of = |key: &str| -> Option<Option<usize>> {
        match t.int(key) {
            None => Some(None),
            Some(v) => match usize::try_from(v) {
                Ok(v) => Some(Some(v)),
                Err(_) => {
                    ctx.err(t.span_of(key), t.field(key), format!("{v} is negative"));
                    None
                }
            },
        }
    };
    c.length = usize_of("length")?;
    c.min_lower = usize_of("min_lower")?;
    c.min_upper = usize_of("min_upper")?;
    c.min_digits = usize_of("min_digits")?;
    c.min_symbols = usize_of("min_symbols")?;
    c.charset = t.str("charset").map(str::to_owned);
    c.symbols = t.str("symbols").map(str::to_owned);
    match c.build() {
        Ok(_) => Some(c),
        Err(e) => {
            let msg = e.to_string();
            let key = ["length", "charset", "symbols", "min_lower", "min_upper", "min_digits", "min_symbols", "type"]
                .into_iter()
                .find(|k| msg.starts_with(&format!("{k}:")))
                .unwrap_or("type");
            ctx.err(t.span_of(key), t.field(key), strip_field(&msg, key));
            None
        }
    }
}
