//! Text helpers shared by the policy's parsers and errors.

use std::time::Duration;

/// Formats `d` exactly and compactly: `90d`, `12h`, `5m`, `30s`, or
/// humantime's exact form (`1s 500ms`) for fractions of a second.
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 {
        return humantime::format_duration(d).to_string();
    }
    match secs {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Shortens user input quoted in an error to at most 80 characters.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX { s.to_owned() } else { s.chars().take(MAX).chain("...".chars()).collect() }
}
