//! Durations in config files as humantime strings (`"5s"`, `"500ms"`, `"1m 30s"`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

use crate::IntegrationError;

pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(s.trim())
        .map_err(|e| serde::de::Error::custom(format!("invalid duration `{s}`: {e} (write e.g. \"5s\", \"500ms\")")))
}

/// A duration that must be above zero.
pub(crate) fn positive(field: &str, d: Duration) -> Result<Duration, IntegrationError> {
    if d.is_zero() { Err(IntegrationError::invalid(field, "must be more than zero")) } else { Ok(d) }
}
