//! The span-keeping TOML walker: positions (line:column) of every key and
//! value, type checks of each table's keys, and "did you mean" suggestions.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use toml_edit::{Item, TableLike, Value};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The field it names, e.g. `secret[2].policy`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}: {}", self.line, self.column, self.field, self.message)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Int,
    Bool,
    Num,
    Table,
    StrList,
    TableList,
    StrOrInt,
    Any,
}

impl Kind {
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Int => "an integer",
            Kind::Bool => "a boolean (true or false)",
            Kind::Num => "a number",
            Kind::Table => "a table",
            Kind::StrList => "an array of strings",
            Kind::TableList => "an array of tables",
            Kind::StrOrInt => "a string or an integer",
            Kind::Any => "a value",
        }
    }

    pub(super) fn accepts(self, item: &Item) -> bool {
        let v = item.as_value();
        match self {
            Kind::Str => v.is_some_and(Value::is_str),
            Kind::Int => v.is_some_and(Value::is_integer),
            Kind::Bool => v.is_some_and(Value::is_bool),
            Kind::Num => v.is_some_and(|v| v.is_integer() || v.is_float()),
            Kind::Table => item.is_table_like(),
            Kind::StrList => v.and_then(Value::as_array).is_some_and(|a| a.iter().all(Value::is_str)),
            Kind::TableList => {
                item.is_array_of_tables()
                    || v.and_then(Value::as_array).is_some_and(|a| a.iter().all(Value::is_inline_table))
            }
            Kind::StrOrInt => v.is_some_and(|v| v.is_str() || v.is_integer()),
            Kind::Any => true,
        }
    }
}

pub(super) fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(v) => match v {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a date-time",
            Value::Array(_) => "an array",
            Value::InlineTable(_) => "a table",
        },
    }
}

pub(super) struct Ctx<'a> {
    pub(super) src: &'a str,
    pub(super) diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    pub(super) fn pos(&self, span: Option<Range<usize>>) -> (usize, usize) {
        let at = span.map(|s| s.start).unwrap_or(0).min(self.src.len());
        let before = self.src.get(..at).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before.get(line_start..).map(|s| s.chars().count()).unwrap_or(0) + 1;
        (line, column)
    }

    pub(super) fn err(&mut self, span: Option<Range<usize>>, field: impl Into<String>, message: impl Into<String>) {
        let (line, column) = self.pos(span);
        self.diags.push(Diagnostic { line, column, field: field.into(), message: message.into() });
    }
}

/// A table of the file with where it is and what it is called.
pub(super) struct Tbl<'a> {
    pub(super) t: &'a dyn TableLike,
    pub(super) span: Option<Range<usize>>,
    pub(super) name: String,
}

impl<'a> Tbl<'a> {
    pub(super) fn field(&self, key: &str) -> String {
        if self.name.is_empty() { key.to_owned() } else { format!("{}.{key}", self.name) }
    }

    pub(super) fn item(&self, key: &str) -> Option<&'a Item> {
        self.t.get(key)
    }

    /// The position of a key's value (or of the key, or of the table).
    pub(super) fn span_of(&self, key: &str) -> Option<Range<usize>> {
        match self.t.get_key_value(key) {
            Some((k, item)) => item_span(item).or_else(|| k.span()),
            None => self.span.clone(),
        }
    }

    pub(super) fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.t.get_key_value(key).and_then(|(k, _)| k.span()).or_else(|| self.span.clone())
    }

    pub(super) fn str(&self, key: &str) -> Option<&'a str> {
        self.item(key).and_then(Item::as_str)
    }

    pub(super) fn int(&self, key: &str) -> Option<i64> {
        self.item(key).and_then(Item::as_integer)
    }

    pub(super) fn bool(&self, key: &str) -> Option<bool> {
        self.item(key).and_then(Item::as_bool)
    }

    pub(super) fn strs(&self, key: &str) -> Option<Vec<String>> {
        let a = self.item(key)?.as_array()?;
        Some(a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
    }

    pub(super) fn sub(&self, key: &str) -> Option<Tbl<'a>> {
        let item = self.item(key)?;
        let t = item.as_table_like()?;
        Some(Tbl { t, span: item_span(item).or_else(|| self.key_span(key)), name: self.field(key) })
    }
}

pub(super) fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Table(t) => t.span(),
        Item::Value(v) => v.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::None => None,
    }
}

pub(super) fn list<'a>(item: &'a Item, name: &str, fallback: Option<Range<usize>>) -> Vec<Tbl<'a>> {
    match item {
        Item::ArrayOfTables(a) => a
            .iter()
            .enumerate()
            .map(|(i, t)| Tbl {
                t: t as &dyn TableLike,
                span: t.span().or(fallback.clone()),
                name: format!("{name}[{}]", i + 1),
            })
            .collect(),
        Item::Value(Value::Array(a)) => a
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.as_inline_table().map(|t| Tbl {
                    t: t as &dyn TableLike,
                    span: v.span().or(fallback.clone()),
                    name: format!("{name}[{}]", i + 1),
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn suggest<'s>(word: &str, known: impl IntoIterator<Item = &'s str>) -> String {
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let d = strsim::levenshtein(word, k);
        if d <= 2.max(word.len() / 3) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| format!(" (did you mean `{k}`?)")).unwrap_or_default()
}

pub(super) fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// Checks keys and value types of a table; returns whether it was clean.
pub(super) fn check(ctx: &mut Ctx<'_>, t: &Tbl<'_>, allowed: &[(&str, Kind)], required: &[&str]) -> bool {
    let before = ctx.diags.len();
    let names: Vec<&str> = allowed.iter().map(|(k, _)| *k).collect();
    for (key, item) in t.t.iter() {
        match allowed.iter().find(|(k, _)| *k == key) {
            None => {
                let msg = format!(
                    "unknown key `{key}`{}; expected one of {}",
                    suggest(key, names.iter().copied()),
                    quoted(&names)
                );
                ctx.err(t.key_span(key), t.field(key), msg);
            }
            Some((_, kind)) if !kind.accepts(item) => {
                let msg = format!("expected {}, found {}", kind.name(), type_name(item));
                ctx.err(t.span_of(key), t.field(key), msg);
            }
            Some(_) => {}
        }
    }
    for key in required {
        if t.item(key).is_none() {
            ctx.err(t.span.clone(), t.field(key), format!("missing required key `{key}`"));
        }
    }
    ctx.diags.len() == before
}

pub(super) fn parse_duration(ctx: &mut Ctx<'_>, t: &Tbl<'_>, key: &str) -> Option<Duration> {
    let s = t.str(key)?;
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            ctx.err(t.span_of(key), t.field(key), "must be greater than zero");
            None
        }
        Err(e) => {
            ctx.err(t.span_of(key), t.field(key), format!("{s:?} is not a duration ({e}); expected e.g. `30s`, `5m`"));
            None
        }
    }
}

pub(super) fn strip_field(msg: &str, field: &str) -> String {
    msg.strip_prefix(&format!("{field}: ")).unwrap_or(msg).to_owned()
}

/// Reports a message from a library's deserializer or validator at the key
/// it names (a message that starts with the key, or quotes it as `key`),
/// or at the table when it names none.
pub(super) fn report_at_key(ctx: &mut Ctx<'_>, t: &Tbl<'_>, msg: String) {
    let named = t.t.iter().map(|(k, _)| k).find(|k| {
        msg.starts_with(&format!("{k}:")) || msg.starts_with(&format!("{k} ")) || msg.contains(&format!("`{k}`"))
    });
    match named {
        Some(k) => {
            let msg = strip_field(&msg, k);
            ctx.err(t.span_of(k), t.field(k), msg);
        }
        None => ctx.err(t.span.clone(), t.name.clone(), msg),
    }
}

/// What is wrong with a URL of an HTTP(S) endpoint, if anything.
pub(super) fn url_problem(s: &str) -> Option<String> {
    match url::Url::parse(s.trim()) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            Some(format!("{s:?} is not an http:// or https:// URL (scheme `{}`)", u.scheme()))
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some(format!("{s:?} has no host")),
        Ok(_) => None,
        Err(e) => Some(format!("{s:?} is not a valid URL ({e}); expected e.g. \"https://host:8200\"")),
    }
}

/// A target library's refusal in config terms: its message without the
/// error kind's prefix.
pub(super) fn target_refusal(e: rekey::TargetError) -> String {
    match e {
        rekey::TargetError::InvalidInput { message } => message,
        other => other.to_string(),
    }
}
