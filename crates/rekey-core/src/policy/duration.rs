//! Duration text: humantime parsing, compact exact formatting.

use std::time::Duration;

use super::error::PolicyError;
use super::text::clip;

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
        s.serialize_str(&super::super::text::format_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map_err(serde::de::Error::custom)
    }
}
