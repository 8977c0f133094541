//! Tables for people, JSON for scripts. Nothing printed here ever holds a
//! secret value: only paths, versions, times, outcomes and secret-free
//! error texts reach this module.

use std::io::Write;

use crate::config::ConfigError;
use crate::error::CliError;

/// Where and how to print.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    /// JSON on stdout instead of tables.
    pub json: bool,
}

impl Out {
    /// Prints a JSON value on stdout (one document).
    pub fn json_value(&self, v: &serde_json::Value) {
        let mut o = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut o, v);
        let _ = writeln!(o);
    }

    /// Prints a line on stdout.
    pub fn line(&self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
    }

    /// Reports an error: JSON on stdout with `--json`, text on stderr always.
    pub fn error(&self, e: &CliError) {
        let diagnostics = match e {
            CliError::Config(ConfigError::Invalid { path, diagnostics }) => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "error: {e}; nothing was run:");
                for d in diagnostics {
                    let _ = writeln!(err, "{}:{d}", path.display());
                }
                Some(diagnostics.clone())
            }
            _ => {
                eprintln!("error: {e}");
                None
            }
        };
        if self.json {
            self.json_value(&serde_json::json!({
                "ok": false,
                "error": { "kind": e.kind(), "message": e.to_string(), "exit_code": e.exit_code() },
                "diagnostics": diagnostics,
            }));
        }
    }
}

/// A text table with aligned columns.
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
        self.rows.push(cells);
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
