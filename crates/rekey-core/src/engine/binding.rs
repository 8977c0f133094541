//! Per-secret options: [`SecretBinding`].

use std::fmt;
use std::sync::Arc;

use crate::CredentialTarget;
use crate::generator::GenerateSecret;

/// How one secret is rotated, beyond its policy: which field of a
/// multi-field secret holds the credential, which generator makes its new
/// value, and which system checks it.
///
/// Register it with [`RotationManager::bind`](crate::RotationManager::bind),
/// or pass it with one [`RotationRequest`](crate::RotationRequest). Anything
/// left unset falls back to the manager's defaults (its generator; the whole
/// value; no target).
///
/// ```
/// use std::sync::Arc;
/// use rekey_core::{SecretBinding, SecretGenerator};
/// let binding = SecretBinding::new()
///     .field("password")
///     .generator(Arc::new(SecretGenerator::hex(64)?));
/// assert_eq!(binding.field_name(), Some("password"));
/// # Ok::<(), rekey_core::GeneratorError>(())
/// ```
#[derive(Clone, Default)]
pub struct SecretBinding {
    field: Option<String>,
    generator: Option<Arc<dyn GenerateSecret>>,
    target: Option<Arc<dyn CredentialTarget>>,
    credential_sets: Option<[String; 2]>,
}

impl SecretBinding {
    /// A binding with nothing set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rotate only this field of a multi-field secret (the others are kept).
    pub fn field(mut self, name: impl Into<String>) -> Self {
        self.field = Some(name.into());
        self
    }

    /// Generate this secret's values with `generator` instead of the
    /// manager's.
    pub fn generator(mut self, generator: Arc<dyn GenerateSecret>) -> Self {
        self.generator = Some(generator);
        self
    }

    /// The system that checks this credential: the candidate is applied on
    /// it before verification, its `test` runs as a built-in verification,
    /// and every undo brings it back to the store's current value.
    pub fn target(mut self, target: Arc<dyn CredentialTarget>) -> Self {
        self.target = Some(target);
        self
    }

    /// The two credential sets of a blue-green secret: the user names the
    /// `username` field alternates between (e.g. the two roles of
    /// `PostgresTarget::alternating`). Needed for the first blue-green
    /// rotation, when no previous version names the inactive set; later
    /// rotations check the current value against them.
    pub fn credential_sets(mut self, a: impl Into<String>, b: impl Into<String>) -> Self {
        self.credential_sets = Some([a.into(), b.into()]);
        self
    }

    /// The two credential sets, if set.
    pub fn credential_sets_ref(&self) -> Option<[&str; 2]> {
        self.credential_sets.as_ref().map(|[a, b]| [a.as_str(), b.as_str()])
    }

    /// The field rotated, if any.
    pub fn field_name(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The generator, if set.
    pub fn generator_ref(&self) -> Option<&Arc<dyn GenerateSecret>> {
        self.generator.as_ref()
    }

    /// The credential target, if set.
    pub fn target_ref(&self) -> Option<&Arc<dyn CredentialTarget>> {
        self.target.as_ref()
    }
}

impl fmt::Debug for SecretBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBinding")
            .field("field", &self.field)
            .field("generator", &self.generator)
            .field("target", &self.target.as_ref().map(|t| t.name().to_owned()))
            .field("credential_sets", &self.credential_sets)
            .finish()
    }
}
