//! Duration text: humantime parsing, compact exact formatting.

use std::time::Duration;

use super::error::{PolicyError, clip};

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

/// Parses a humantime duration (`30s`, `5m`, `90 days`, `1h 30m`).
pub(crate) fn parse_duration(field: &'static str, s: &str) -> Result<Duration, PolicyError> {
    humantime::parse_duration(s.trim()).map_err(|e| PolicyError::InvalidDuration {
        field,
        input: clip(s),
        reason: e.to_string(),
    })
}

/// Serde helpers for `Duration` as a humantime string.
pub(crate) mod serde_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map_err(serde::de::Error::custom)
    }
}
