//! Validated secret paths.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest path accepted, in bytes (AWS Secrets Manager's name limit).
pub const MAX_PATH_LEN: usize = 512;

/// Why a string is not a valid [`SecretPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is empty (or only `/`).
    #[error("secret path is empty")]
    Empty,
    /// The path is longer than [`MAX_PATH_LEN`] bytes.
    #[error("secret path is {len} bytes long; the limit is {max}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The path contains an empty segment (`a//b` or a trailing `/`).
    #[error("secret path has an empty segment (`//` or a trailing `/`)")]
    EmptySegment,
    /// The path contains a `.` or `..` segment.
    #[error("secret path has a `.` or `..` segment")]
    DotSegment,
    /// The path contains a character outside `A-Z a-z 0-9 / _ + = . @ -`.
    #[error("secret path has a character that is not allowed at byte {index} (allowed: letters, digits and `/_+=.@-`)")]
    BadChar {
        /// Byte offset of the character.
        index: usize,
    },
}

/// A validated, normalised secret path such as `apps/billing/db-password`.
///
/// Segments are separated by `/`; one leading `/` is accepted and dropped
/// (`/secrets/api_key` and `secrets/api_key` are the same path). The allowed
/// characters (`A-Z a-z 0-9 / _ + = . @ -`) are the intersection of what
/// HashiCorp Vault and AWS Secrets Manager accept, so a path valid here is
/// valid on every store.
///
/// ```
/// use rekey_core::SecretPath;
/// let p: SecretPath = "/secrets/api_key".parse()?;
/// assert_eq!(p.as_str(), "secrets/api_key");
/// assert!("a/../b".parse::<SecretPath>().is_err());
/// # Ok::<(), rekey_core::PathError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretPath(std::sync::Arc<str>);

impl SecretPath {
    /// Validates and normalises `path`.
    pub fn new(path: impl AsRef<str>) -> Result<Self, PathError> {
        let raw = path.as_ref();
        let p = raw.strip_prefix('/').unwrap_or(raw);
        if p.is_empty() {
            return Err(PathError::Empty);
        }
        if p.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong { len: p.len(), max: MAX_PATH_LEN });
        }
        let offset = raw.len() - p.len();
        if let Some(index) = p
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'+' | b'=' | b'.' | b'@' | b'-')))
        {
            return Err(PathError::BadChar { index: index + offset });
        }
        for seg in p.split('/') {
            match seg {
                "" => return Err(PathError::EmptySegment),
                "." | ".." => return Err(PathError::DotSegment),
                _ => {}
            }
        }
        Ok(Self(p.into()))
    }

    /// The normalised path, without a leading `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretPath({:?})", self.0)
    }
}

impl FromStr for SecretPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for SecretPath {
    type Error = PathError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for SecretPath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl AsRef<str> for SecretPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for SecretPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(SecretPath::new("/a/b").unwrap().as_str(), "a/b");
        assert_eq!(SecretPath::new("a.b/c-d_e+f=g@h").unwrap().as_str(), "a.b/c-d_e+f=g@h");
    }

    #[test]
    fn rejects_each_bad_form() {
        assert_eq!(SecretPath::new(""), Err(PathError::Empty));
        assert_eq!(SecretPath::new("/"), Err(PathError::Empty));
        assert_eq!(SecretPath::new("a//b"), Err(PathError::EmptySegment));
        assert_eq!(SecretPath::new("a/"), Err(PathError::EmptySegment));
        assert_eq!(SecretPath::new("a/../b"), Err(PathError::DotSegment));
        assert_eq!(SecretPath::new("./b"), Err(PathError::DotSegment));
        assert_eq!(SecretPath::new("a\nb"), Err(PathError::BadChar { index: 1 }));
        assert_eq!(SecretPath::new("/a b"), Err(PathError::BadChar { index: 2 }));
        assert_eq!(SecretPath::new("a\u{7f}"), Err(PathError::BadChar { index: 1 }));
        assert!(matches!(SecretPath::new("x".repeat(513)), Err(PathError::TooLong { len: 513, .. })));
        assert!(SecretPath::new("x".repeat(512)).is_ok());
    }

    #[test]
    fn serde_validates() {
        let p: SecretPath = serde_json::from_str("\"/a/b\"").unwrap();
        assert_eq!(p.as_str(), "a/b");
        assert!(serde_json::from_str::<SecretPath>("\"a/../b\"").is_err());
    }
}
