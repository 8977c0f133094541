//! How rekey's values and metadata are written into Secrets Manager.
//!
//! * Values: [`SecretData::Text`] is the plain `SecretString`;
//!   [`SecretData::Fields`] is a JSON object of string values
//!   (`{"username":"app","password":"..."}`), the shape AWS's own rotation
//!   functions use. On read, a `SecretString` that is a JSON object whose
//!   values are *all* strings is `Fields`; anything else is `Text`.
//! * Metadata: secret tags whose keys start with `rekey.` (see
//!   [`encode_tag_value`]).

use std::collections::BTreeMap;

use base64::Engine as _;
use rekey_core::{ExposeSecret, SecretData, SecretString, StoreError};

/// Secrets Manager's limit on a `SecretString`, in bytes.
pub const MAX_SECRET_STRING_BYTES: usize = 65_536;

/// Metadata keys (tag keys) must start with this.
pub const METADATA_PREFIX: &str = "rekey.";

/// AWS's limits on tags: per resource, per key, per value.
pub const MAX_TAGS: usize = 50;
/// The longest tag key AWS accepts (characters).
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// The longest tag value AWS accepts (characters).
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// Marks a tag value stored base64-encoded because its text has characters
/// AWS does not allow in tag values.
const B64_MARK: &str = "b64:";

/// The `SecretString` for a value. Never logged.
pub(crate) fn encode_value(data: &SecretData) -> Result<SecretString, StoreError> {
    let text = match data {
        SecretData::Text(s) => {
            if s.expose_secret().is_empty() {
                return Err(StoreError::invalid("Secrets Manager does not store an empty secret value"));
            }
            s.expose_secret().to_owned()
        }
        SecretData::Fields(m) => {
            let plain: BTreeMap<&str, &str> = m.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
            serde_json::to_string(&plain)
                .map_err(|_| StoreError::invalid("the fields could not be encoded as a JSON object"))?
        }
    };
    if text.len() > MAX_SECRET_STRING_BYTES {
        return Err(StoreError::invalid(format!(
            "the encoded value is {} bytes long; Secrets Manager's limit is {MAX_SECRET_STRING_BYTES}",
            text.len()
        )));
    }
    Ok(SecretString::from(text))
}

/// The value of a `SecretString`: fields if it is a JSON object of strings.
pub(crate) fn decode_value(text: String) -> SecretData {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text)
        && map.values().all(serde_json::Value::is_string)
    {
        let fields = map
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, SecretString::from(s))),
                _ => None,
            })
            .collect();
        return SecretData::Fields(fields);
    }
    SecretData::Text(SecretString::from(text))
}

/// Whether `c` may appear in an AWS tag key or value
/// (`[\p{L}\p{Z}\p{N}_.:/=+\-@]`).
fn tag_char_ok(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

/// Checks a metadata key: `rekey.` prefix, AWS tag-key charset and length.
pub(crate) fn check_metadata_key(key: &str) -> Result<(), StoreError> {
    if !key.starts_with(METADATA_PREFIX) || key.len() == METADATA_PREFIX.len() {
        return Err(StoreError::invalid(format!(
            "metadata key {key:?} must start with `{METADATA_PREFIX}` (it is stored as a secret tag)"
        )));
    }
    if key.chars().count() > MAX_TAG_KEY_CHARS {
        return Err(StoreError::invalid(format!("metadata key {key:?} is longer than {MAX_TAG_KEY_CHARS} characters")));
    }
    if !key.chars().all(tag_char_ok) {
        return Err(StoreError::invalid(format!(
            "metadata key {key:?} has a character AWS tags do not allow (allowed: letters, digits, spaces and `_.:/=+-@`)"
        )));
    }
    Ok(())
}

/// The tag value for a metadata value.
///
/// A value made only of characters AWS allows in tag values is stored as it
/// is; any other value (and one that itself starts with `b64:`) is stored as
/// `b64:` + its standard base64, which uses only allowed characters. The
/// result must fit AWS's 256-character limit.
pub(crate) fn encode_tag_value(key: &str, value: &str) -> Result<String, StoreError> {
    let out = if value.chars().all(tag_char_ok) && !value.starts_with(B64_MARK) {
        value.to_owned()
    } else {
        format!("{B64_MARK}{}", base64_encode(value.as_bytes()))
    };
    if out.chars().count() > MAX_TAG_VALUE_CHARS {
        return Err(StoreError::invalid(format!(
            "the value of metadata key {key:?} is {} characters long once stored as a tag; AWS's limit is {MAX_TAG_VALUE_CHARS}",
            out.chars().count()
        )));
    }
    Ok(out)
}

/// The metadata value of a tag value written by [`encode_tag_value`]. A
/// `b64:` value that does not decode is returned as it is.
pub(crate) fn decode_tag_value(value: &str) -> String {
    value
        .strip_prefix(B64_MARK)
        .and_then(base64_decode)
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| value.to_owned())
}

fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// The metadata among a secret's tags: those whose keys start with `rekey.`.
pub(crate) fn metadata_from_tags(tags: &[aws_sdk_secretsmanager::types::Tag]) -> rekey_core::Metadata {
    tags.iter()
        .filter_map(|t| match (t.key(), t.value()) {
            (Some(k), v) if k.starts_with(METADATA_PREFIX) => Some((k.to_owned(), decode_tag_value(v.unwrap_or("")))),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_and_fields_round_trip() {
        let t = SecretData::text("plain s3cret");
        assert!(decode_value(encode_value(&t).unwrap().expose_secret().to_owned()).same_as(&t));
        let f = SecretData::fields([("username", "app"), ("password", "p\"w{}")]);
        let enc = encode_value(&f).unwrap();
        assert!(enc.expose_secret().starts_with('{'));
        assert!(decode_value(enc.expose_secret().to_owned()).same_as(&f));
        // An empty set of fields is `{}`.
        let empty = SecretData::Fields(BTreeMap::new());
        assert!(decode_value(encode_value(&empty).unwrap().expose_secret().to_owned()).same_as(&empty));
    }

    #[test]
    fn non_string_json_stays_text() {
        // An RDS-style secret with a numeric port is not a set of string
        // fields: reading it as text keeps it byte for byte.
        let raw = r#"{"username":"u","password":"p","port":5432}"#;
        assert!(decode_value(raw.to_owned()).same_as(&SecretData::text(raw)));
        assert!(decode_value("[1,2]".to_owned()).same_as(&SecretData::text("[1,2]")));
        assert!(decode_value("{not json".to_owned()).same_as(&SecretData::text("{not json")));
    }

    #[test]
    fn rejects_empty_and_oversized_values() {
        assert!(matches!(encode_value(&SecretData::text("")), Err(StoreError::InvalidInput { .. })));
        let big = SecretData::text("x".repeat(MAX_SECRET_STRING_BYTES + 1));
        assert!(matches!(encode_value(&big), Err(StoreError::InvalidInput { .. })));
        assert!(encode_value(&SecretData::text("x".repeat(MAX_SECRET_STRING_BYTES))).is_ok());
    }

    #[test]
    fn tag_values_round_trip() {
        for v in ["", "2030-01-01T00:00:00Z", "a b c", "x,y;z", "{\"json\":1}", "b64:literal", "ünïcode ✓", "\n"] {
            let enc = encode_tag_value("rekey.k", v).unwrap();
            assert!(enc.chars().all(tag_char_ok), "{enc}");
            assert_eq!(decode_tag_value(&enc), v);
        }
        assert_eq!(encode_tag_value("rekey.k", "plain-value").unwrap(), "plain-value");
        assert!(encode_tag_value("rekey.k", &"x".repeat(257)).is_err());
        assert!(encode_tag_value("rekey.k", &",".repeat(190)).is_err());
    }

    #[test]
    fn base64_matches_known_vectors() {
        for (plain, enc) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
        }
        assert!(base64_decode("Zm9").is_none());
        assert!(base64_decode("Z===").is_none());
        assert!(base64_decode("Zm=v").is_none());
        assert!(base64_decode("Zm!v").is_none());
    }

    #[test]
    fn metadata_keys_are_checked() {
        assert!(check_metadata_key("rekey.rotation.step").is_ok());
        assert!(check_metadata_key("owner").is_err());
        assert!(check_metadata_key("rekey.").is_err());
        assert!(check_metadata_key("rekey.a,b").is_err());
        assert!(check_metadata_key(&format!("rekey.{}", "k".repeat(123))).is_err());
    }
}
