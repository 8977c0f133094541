//! [`RotationRequest`]: one rotation to run.

use std::sync::Arc;

use secrecy::SecretString;

use super::audit::RotationTrigger;
use super::binding::SecretBinding;
use crate::SecretPath;
use crate::policy::RotationPolicy;

/// One rotation to run; see [`RotationManager::rotate`](crate::RotationManager::rotate).
#[derive(Debug)]
#[must_use]
pub struct RotationRequest<'a> {
    pub(super) path: &'a SecretPath,
    pub(super) policy: &'a RotationPolicy,
    pub(super) new_value: Option<SecretString>,
    pub(super) trigger: RotationTrigger,
    pub(super) binding: Option<Arc<SecretBinding>>,
    /// Scheduled runs: skip if the current version is newer than this.
    pub(super) rotated_before_ns: Option<i64>,
}

impl<'a> RotationRequest<'a> {
    /// A manual rotation of `path` under `policy`, with a generated value.
    pub fn new(path: &'a SecretPath, policy: &'a RotationPolicy) -> Self {
        Self { path, policy, new_value: None, trigger: RotationTrigger::Manual, binding: None, rotated_before_ns: None }
    }

    /// Use this value instead of generating one (the whole value, or the
    /// binding's field).
    pub fn value(mut self, value: SecretString) -> Self {
        self.new_value = Some(value);
        self
    }

    /// What started the rotation. An emergency trigger ignores the policy's
    /// window.
    pub fn trigger(mut self, trigger: RotationTrigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// Per-secret options for this rotation (instead of the binding
    /// registered with [`RotationManager::bind`](crate::RotationManager::bind)).
    pub fn binding(mut self, binding: Arc<SecretBinding>) -> Self {
        self.binding = Some(binding);
        self
    }
}
