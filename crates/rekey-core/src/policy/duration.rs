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

/// The serde adapter for a [`Duration`] written as text in a configuration
/// file: `#[serde(with = "rekey_core::policy::serde_duration")]`.
///
/// It reads humantime text (`30s`, `500ms`, `5m`, `12h`, `90d`, `1h 30m`,
/// `90 days`; surrounding spaces are ignored) and writes the compact exact
/// form (`90d`, `12h`, `5m`, `30s`, `500ms`), which reads back to the same
/// value. A value that does not parse is an error quoting the text (shortened
/// if very long) and showing the accepted forms.
///
/// ```
/// use std::time::Duration;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, PartialEq, Debug)]
/// struct Config {
///     #[serde(with = "rekey_core::policy::serde_duration")]
///     timeout: Duration,
/// }
///
/// let c: Config = serde_json::from_str(r#"{"timeout": "1m 30s"}"#)?;
/// assert_eq!(c.timeout, Duration::from_secs(90));
/// assert_eq!(serde_json::to_string(&Config { timeout: Duration::from_secs(12 * 3600) })?, r#"{"timeout":"12h"}"#);
/// assert_eq!(serde_json::to_string(&Config { timeout: Duration::from_millis(500) })?, r#"{"timeout":"500ms"}"#);
///
/// let e = serde_json::from_str::<Config>(r#"{"timeout": "5 parsecs"}"#).unwrap_err();
/// assert!(e.to_string().contains(r#"invalid duration "5 parsecs""#), "{e}");
/// assert!(e.to_string().contains("500ms"), "{e}");
/// # Ok::<(), serde_json::Error>(())
/// ```
pub mod serde_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `d` in the compact exact form (`90d`, `12h`, `500ms`).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::super::text::format_duration(*d))
    }

    /// Reads humantime text; the error quotes the text and shows the
    /// accepted forms.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map_err(|e| {
            serde::de::Error::custom(format_args!(
                "invalid duration {:?}: {e}; write e.g. \"500ms\", \"30s\", \"5m\", \"12h\", \"90d\" or \"1h 30m\"",
                super::clip(&s)
            ))
        })
    }
}
