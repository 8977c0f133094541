//! Checks on the durations of a config. They are read and written by
//! [`rekey_core::policy::serde_duration`], the one adapter the workspace has.

use std::time::Duration;

use crate::IntegrationError;

/// A duration that must be above zero.
pub(crate) fn positive(field: &str, d: Duration) -> Result<Duration, IntegrationError> {
    if d.is_zero() { Err(IntegrationError::invalid(field, "must be more than zero")) } else { Ok(d) }
}
