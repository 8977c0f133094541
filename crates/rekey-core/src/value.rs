//! Secret values: a single string, or several named fields.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// The value of one version of a secret.
///
/// A secret is either one opaque string ([`SecretData::Text`]) or a set of
/// named string fields ([`SecretData::Fields`], e.g. `username` + `password`).
/// A rotation replaces one field and keeps the others
/// ([`SecretData::with_field`]).
///
/// `Debug` shows the shape (field names) and never a value:
///
/// ```
/// use rekey_core::SecretData;
/// let d = SecretData::fields([("username", "app"), ("password", "hunter2")]);
/// let shown = format!("{d:?}");
/// assert!(!shown.contains("hunter2") && !shown.contains("app\""));
/// assert_eq!(d.field("password").map(|s| secrecy::ExposeSecret::expose_secret(s).to_owned()), Some("hunter2".into()));
/// ```
#[derive(Clone)]
pub enum SecretData {
    /// One opaque string.
    Text(SecretString),
    /// Named fields, each secret (field names are not secret).
    Fields(BTreeMap<String, SecretString>),
}

impl SecretData {
    /// A single-string value.
    pub fn text(value: impl Into<String>) -> Self {
        Self::Text(SecretString::from(value.into()))
    }

    /// A multi-field value.
    pub fn fields<K: Into<String>, V: Into<String>>(fields: impl IntoIterator<Item = (K, V)>) -> Self {
        Self::Fields(fields.into_iter().map(|(k, v)| (k.into(), SecretString::from(v.into()))).collect())
    }

    /// The single string of a [`Text`](Self::Text) value.
    pub fn as_text(&self) -> Option<&SecretString> {
        match self {
            Self::Text(s) => Some(s),
            Self::Fields(_) => None,
        }
    }

    /// One field of a [`Fields`](Self::Fields) value.
    pub fn field(&self, name: &str) -> Option<&SecretString> {
        match self {
            Self::Text(_) => None,
            Self::Fields(m) => m.get(name),
        }
    }

    /// The field names (empty for a text value).
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        let m = match self {
            Self::Text(_) => None,
            Self::Fields(m) => Some(m),
        };
        m.into_iter().flat_map(|m| m.keys().map(String::as_str))
    }

    /// The value a rotation targets: the whole text (`field == None`) or one
    /// field.
    pub fn get(&self, field: Option<&str>) -> Option<&SecretString> {
        match field {
            None => self.as_text(),
            Some(f) => self.field(f),
        }
    }

    /// A copy with the rotated part replaced: the whole value when `field` is
    /// `None`, otherwise that one field (added if absent), other fields kept.
    ///
    /// Replacing a field of a text value is an error: the caller configured a
    /// field for a secret that has none.
    pub fn with_field(&self, field: Option<&str>, value: SecretString) -> Result<Self, crate::StoreError> {
        match (field, self) {
            (None, _) => Ok(Self::Text(value)),
            (Some(f), Self::Fields(m)) => {
                let mut m = m.clone();
                m.insert(f.to_owned(), value);
                Ok(Self::Fields(m))
            }
            (Some(f), Self::Text(_)) => Err(crate::StoreError::invalid(format!(
                "cannot set field `{f}`: the secret is a single text value, not a set of fields"
            ))),
        }
    }

    /// The parts of the value that are secret, for redaction: the text, or
    /// every field but `username` (which names who logs in and shows up in
    /// every login error). Exposes the values: pass them only to
    /// [`redact`](crate::redact::redact).
    pub fn secret_parts(&self) -> Vec<&str> {
        match self {
            Self::Text(s) => vec![s.expose_secret()],
            Self::Fields(m) => m
                .iter()
                .filter(|(k, _)| k.as_str() != crate::verify::USERNAME_FIELD)
                .map(|(_, v)| v.expose_secret())
                .collect(),
        }
    }

    /// Compares two values (for tests and idempotence checks).
    pub fn same_as(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Text(a), Self::Text(b)) => a.expose_secret() == b.expose_secret(),
            (Self::Fields(a), Self::Fields(b)) => {
                a.len() == b.len()
                    && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && va.expose_secret() == vb.expose_secret())
            }
            _ => false,
        }
    }

    /// Total length of the value(s) in bytes (for size limits).
    pub fn byte_len(&self) -> usize {
        match self {
            Self::Text(s) => s.expose_secret().len(),
            Self::Fields(m) => m.iter().map(|(k, v)| k.len() + v.expose_secret().len()).sum(),
        }
    }
}

impl From<SecretString> for SecretData {
    fn from(s: SecretString) -> Self {
        Self::Text(s)
    }
}

impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(_) => f.write_str("SecretData::Text([REDACTED])"),
            Self::Fields(m) => {
                f.write_str("SecretData::Fields")?;
                f.debug_map().entries(m.keys().map(|k| (k, "[REDACTED]"))).finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_field_keeps_others() {
        let d = SecretData::fields([("username", "app"), ("password", "old")]);
        let n = d.with_field(Some("password"), SecretString::from("new")).unwrap();
        assert_eq!(n.field("username").unwrap().expose_secret(), "app");
        assert_eq!(n.field("password").unwrap().expose_secret(), "new");
        assert!(SecretData::text("x").with_field(Some("p"), SecretString::from("y")).is_err());
        assert!(n.same_as(&SecretData::fields([("password", "new"), ("username", "app")])));
        assert!(!n.same_as(&d));
    }

    #[test]
    fn debug_hides_values() {
        let d = SecretData::fields([("user", "s3cr3t-a"), ("pw", "s3cr3t-b")]);
        let t = SecretData::text("s3cr3t-c");
        let out = format!("{d:?} {t:?} {d:#?}");
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(out.contains("user") && out.contains("pw"));
    }
}
