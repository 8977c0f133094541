//! Tables for people, JSON for scripts. Nothing printed here ever holds a
//! secret value: only paths, versions, times, outcomes and secret-free
//! error texts reach this module.
//!
//! Every `--json` document is one envelope (see docs/cli.md, "JSON
//! output"): `{"version": 1, "ok": <bool>, "command": "<name>", ...}`, one
//! line unless `--pretty`. Its fields are built here and in the commands
//! from the CLI's own values, never by serializing a library type, so a
//! change in the library cannot silently change what scripts read.
//!
//! Text for a terminal passes through [`escape`]: control characters, and
//! invisible characters that reorder or hide text (bidi controls), are
//! shown as `\u{..}` escapes instead of acting on the terminal.

use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::ConfigError;
use crate::error::CliError;

/// The version of the JSON envelope; raised on any incompatible change.
pub const JSON_VERSION: u64 = 1;

/// Where and how to print.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// JSON on stdout instead of tables.
    pub json: bool,
    /// Indented JSON instead of one line.
    pub pretty: bool,
    /// The command's name, for the envelope.
    pub command: &'static str,
}

/// Whether a character must not reach a terminal as it is.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
        )
}

/// `s` with control and bidi characters shown as `\u{..}` escapes.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The envelope around `body`'s fields.
pub fn envelope(command: Option<&str>, ok: bool, body: Value) -> Value {
    let mut m = Map::new();
    m.insert("version".into(), Value::from(JSON_VERSION));
    m.insert("ok".into(), Value::Bool(ok));
    m.insert("command".into(), command.map_or(Value::Null, Value::from));
    if let Value::Object(fields) = body {
        for (k, v) in fields {
            if !matches!(k.as_str(), "version" | "ok" | "command") {
                m.insert(k, v);
            }
        }
    }
    Value::Object(m)
}

/// Prints one JSON document on stdout. JSON escapes control characters
/// itself; the invisible ones it leaves (bidi controls and the like, only
/// ever inside strings) are written as `\uXXXX` escapes too.
pub fn print_json(v: &Value, pretty: bool) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{}", json_text(v, pretty));
}

/// A document with the envelope's keys first (`version`, `ok`, `command`),
/// then the others in order of name.
struct EnvelopeFirst<'a>(&'a Value);

impl serde::Serialize for EnvelopeFirst<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(m) = self.0 else { return self.0.serialize(s) };
        const FIRST: [&str; 3] = ["version", "ok", "command"];
        let mut map = s.serialize_map(Some(m.len()))?;
        for k in FIRST {
            if let Some(v) = m.get(k) {
                map.serialize_entry(k, v)?;
            }
        }
        for (k, v) in m.iter().filter(|(k, _)| !FIRST.contains(&k.as_str())) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A document of `body`'s fields in the envelope: `version`, `ok`,
/// `command`, then `body`'s fields as it serializes them.
#[derive(serde::Serialize)]
struct EnvelopeOf<'a, T> {
    version: u64,
    ok: bool,
    command: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// The text of a JSON document, with no raw invisible characters.
fn json_text(v: &Value, pretty: bool) -> String {
    json_text_of(&EnvelopeFirst(v), pretty)
}

/// The text of any serializable document, with no raw invisible characters.
fn json_text_of<T: serde::Serialize>(v: &T, pretty: bool) -> String {
    let text = if pretty { serde_json::to_string_pretty(v) } else { serde_json::to_string(v) }.unwrap_or_default();
    // JSON escapes every ASCII control character itself.
    if text.is_ascii() {
        return text;
    }
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        if unsafe_char(c) && !c.is_ascii() {
            for unit in c.encode_utf16(&mut [0; 2]) {
                safe.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            safe.push(c);
        }
    }
    safe
}

impl Out {
    /// Prints `body` in the envelope; `ok` is `body["ok"]` when it is a
    /// boolean, else `true`.
    pub fn json_value(&self, body: &Value) {
        let ok = body.get("ok").and_then(Value::as_bool).unwrap_or(true);
        self.emit(ok, body.clone());
    }

    /// Prints `body` in the envelope with `ok`.
    pub fn emit(&self, ok: bool, body: Value) {
        print_json(&envelope(Some(self.command), ok, body), self.pretty);
    }

    /// Prints `body` in the envelope with `ok`, serialized as it is: no
    /// `Value` tree is built (for large documents, such as `status` of
    /// thousands of secrets). `body` must serialize to a map whose keys come
    /// in order of name (as those of a `Value` map do) and are none of
    /// `version`, `ok` and `command`, so that the document is the one
    /// [`emit`](Self::emit) would print.
    pub fn emit_fields<T: serde::Serialize>(&self, ok: bool, body: &T) {
        let doc = EnvelopeOf { version: JSON_VERSION, ok, command: self.command, body };
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{}", json_text_of(&doc, self.pretty));
    }

    /// Prints a line of text on stdout (escaped: one line on the terminal).
    pub fn line(&self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{}", escape(s));
    }

    /// Prints a table on stdout.
    pub fn table(&self, t: &Table) {
        let mut o = std::io::stdout().lock();
        let _ = write!(o, "{}", t.render());
    }

    /// Reports an error: JSON on stdout with `--json`, text on stderr always.
    pub fn error(&self, e: &CliError) {
        let mut err = std::io::stderr().lock();
        let diagnostics = match e {
            CliError::Config(ConfigError::Invalid { path, diagnostics }) => {
                let _ = writeln!(err, "error: {}; nothing was run:", escape(&e.to_string()));
                for d in diagnostics {
                    let _ = writeln!(err, "{}", escape(&format!("{}:{d}", path.display())));
                }
                Some(diagnostics)
            }
            _ => {
                let _ = writeln!(err, "error: {}", escape(&e.to_string()));
                None
            }
        };
        if self.json {
            let mut body = serde_json::json!({
                "error": { "kind": e.kind(), "message": e.to_string(), "exit_code": e.exit_code() },
            });
            if let (Some(d), Value::Object(m)) = (diagnostics, &mut body) {
                let list: Vec<Value> = d
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "line": d.line, "column": d.column, "field": d.field, "message": d.message,
                        })
                    })
                    .collect();
                m.insert("diagnostics".into(), Value::Array(list));
            }
            self.emit(false, body);
        }
    }
}

/// A text table with aligned columns; cells are escaped.
#[derive(Debug, Default)]
pub struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(head: &[&str]) -> Self {
        Self { head: head.iter().map(|s| (*s).to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| escape(&c).into_owned()).collect());
    }

    /// Renders it.
    pub fn render(&self) -> String {
        let n = self.head.len();
        let mut widths: Vec<usize> = self.head.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut s = String::new();
        let mut line = |cells: &[String]| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate().take(n) {
                if i + 1 == n {
                    l.push_str(c);
                } else {
                    l.push_str(&format!("{c:<w$}  ", w = widths[i]));
                }
            }
            s.push_str(l.trim_end());
            s.push('\n');
        };
        line(&self.head);
        for r in &self.rows {
            line(r);
        }
        s
    }
}

/// An optional value for a table cell.
pub fn cell<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".to_owned())
}

/// A time for a table cell.
pub fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    cell(t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

/// A time for JSON: RFC 3339 in UTC with the store's full precision.
pub fn time_json(t: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    time_text(t).map_or(Value::Null, Value::from)
}

/// The text [`time_json`] holds.
pub fn time_text(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// A trigger's short name (`manual`, `schedule`, `emergency`), as the
/// engine records it.
pub fn trigger_name(t: &rekey::RotationTrigger) -> &'static str {
    match t {
        rekey::RotationTrigger::Manual => "manual",
        rekey::RotationTrigger::Schedule => "schedule",
        rekey::RotationTrigger::Emergency { .. } => "emergency",
        _ => "other",
    }
}

/// A quarantine recorded beside a secret, for JSON: since when, after how
/// many failures in a row, and why.
pub fn quarantine_json(q: Option<&rekey::record::QuarantineRecord>) -> Value {
    q.map_or(
        Value::Null,
        |q| serde_json::json!({ "since": time_json(Some(q.since)), "failures": q.failures, "reason": q.reason }),
    )
}

/// A quarantine for people: `since <time> after N failure(s): <reason>`.
pub fn quarantine_text(q: &rekey::record::QuarantineRecord) -> String {
    format!("since {} after {} failure(s): {}", when(Some(q.since)), q.failures, q.reason)
}

/// A duration for people, always with its unit (`250ms`, `1m 30s`).
pub fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    // Whole milliseconds: humantime would print every nanosecond.
    let ms = Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    humantime::format_duration(ms).to_string()
}

/// A duration for people when only its size matters (how long until a
/// secret is due, how long since it rotated): its two largest units
/// (`29d 23h`, `5m 2s`, `40s`, `250ms`).
pub fn approx_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let units = [(secs / 86_400, "d"), (secs / 3600 % 24, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")];
    let first = units.iter().position(|(n, _)| *n > 0).unwrap_or(units.len() - 1);
    units
        .iter()
        .skip(first)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approximate_durations_keep_their_two_largest_units() {
        let s = Duration::from_secs;
        assert_eq!(approx_duration(s(30 * 86_400) - Duration::from_millis(14)), "29d 23h");
        assert_eq!(approx_duration(s(302)), "5m 2s");
        assert_eq!(approx_duration(s(3600)), "1h");
        assert_eq!(approx_duration(s(86_400 + 59)), "1d");
        assert_eq!(approx_duration(s(40)), "40s");
        assert_eq!(approx_duration(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn control_and_bidi_characters_are_escaped() {
        assert_eq!(escape("plain/path"), "plain/path");
        assert_eq!(escape("a\u{1b}[31mb\rc\u{7}d\ne"), "a\\u{1b}[31mb\\u{d}c\\u{7}d\\u{a}e");
        assert_eq!(escape("x\u{202e}y\u{2066}z\u{9b}"), "x\\u{202e}y\\u{2066}z\\u{9b}");
        let mut t = Table::new(&["A"]);
        t.row(vec!["\u{1b}]0;title\u{7}".into()]);
        assert!(!t.render().contains('\u{1b}'));
    }

    #[test]
    fn json_escapes_bidi_characters_and_stays_json() {
        let v = serde_json::json!({ "m": "a\u{202e}b\u{1b}c\u{85}" });
        let safe = json_text(&v, false);
        assert!(!safe.chars().any(unsafe_char), "{safe}");
        assert_eq!(serde_json::from_str::<Value>(&safe).unwrap(), v);
    }

    /// `emit_fields` prints the document `emit` prints for the same fields
    /// (given in order of name), escapes included.
    #[test]
    fn fields_in_the_envelope_are_the_value_document() {
        #[derive(serde::Serialize)]
        struct Body {
            a_list: Vec<u32>,
            message: &'static str,
            z: Option<f64>,
        }
        let body = Body { a_list: vec![1, 2], message: "a\u{202e}b\u{1b}c", z: Some(0.25) };
        for pretty in [false, true] {
            let value = json_text(&envelope(Some("status"), false, serde_json::to_value(&body).unwrap()), pretty);
            let doc = EnvelopeOf { version: JSON_VERSION, ok: false, command: "status", body: &body };
            assert_eq!(json_text_of(&doc, pretty), value);
        }
    }

    #[test]
    fn durations_have_units() {
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_secs(90)), "1m 30s");
        assert_eq!(duration(Duration::from_micros(1_500_250)), "1s 500ms");
    }
}
