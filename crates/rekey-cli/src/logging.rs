//! Logs on stderr: text (escaped: a control character in a path, a name or
//! a verifier's message cannot act on the terminal) or JSON lines.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

use crate::error::in_config_terms;
use crate::output::escape;

/// The log format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// stderr, with every control character of a log line escaped except the
/// newline that ends it, and the library's messages in config terms. The text formatter writes each event with one
/// `write_all` of the whole line.
#[derive(Debug, Clone, Copy, Default)]
struct EscapedStderr;

impl Write for EscapedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, end) = match text.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (&*text, ""),
        };
        let mut err = io::stderr().lock();
        err.write_all(escape(&in_config_terms(body)).as_bytes())?;
        err.write_all(end.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl MakeWriter<'_> for EscapedStderr {
    type Writer = Self;
    fn make_writer(&self) -> Self {
        *self
    }
}

/// Starts logging; the level comes from `RUST_LOG`, else `default_level`.
pub fn init(format: LogFormat, default_level: &str) {
    // The Vault client logs expected 404s (a missing staging candidate) as
    // errors; keep them out unless RUST_LOG asks for them.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default_level},rustify=off,vaultrs=off")));
    let _ = match format {
        // JSON escapes control characters itself.
        LogFormat::Json => tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).json().try_init(),
        // No colours: their escape sequences would be escaped too.
        LogFormat::Text => {
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(EscapedStderr).with_ansi(false).try_init()
        }
    };
}
