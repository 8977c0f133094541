//! Secret values and rekey's bookkeeping to and from KV v2 JSON.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rekey_core::{RotationId, SecretData, SecretString, StoreError, VersionId};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

/// The one key of a text value: `SecretData::Text(s)` is stored as
/// `{"value": s}`, and a KV map whose only key is `value` reads back as text.
pub(crate) const TEXT_KEY: &str = "value";

/// Prefix of the `custom_metadata` keys in which the store records which
/// rotation wrote which version: `rekey-vault.v.<version>` = rotation id.
/// Outside the `rekey.` namespace on purpose, so
/// [`write_metadata`](rekey_core::SecretStore::write_metadata) never touches
/// them and [`read_metadata`](rekey_core::SecretStore::read_metadata) never
/// shows them.
pub(crate) const RECORD_PREFIX: &str = "rekey-vault.v.";

/// How many version records are kept (older ones are removed as new ones
/// are written); Vault's default `max_versions` is 10.
pub(crate) const RECORDS_KEPT: u64 = 10;

/// A JSON object holding plaintext secret values, wiped when dropped.
pub(crate) struct KvBody(pub(crate) Value);

impl Drop for KvBody {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => zeroize::Zeroize::zeroize(s),
        Value::Object(m) => m.values_mut().for_each(wipe),
        Value::Array(a) => a.iter_mut().for_each(wipe),
        _ => {}
    }
}

/// The KV `data` map of a value.
pub(crate) fn to_kv(data: &SecretData) -> Map<String, Value> {
    let mut m = Map::new();
    match data {
        SecretData::Text(s) => {
            m.insert(TEXT_KEY.to_owned(), Value::String(s.expose_secret().to_owned()));
        }
        SecretData::Fields(f) => {
            for (k, v) in f {
                m.insert(k.clone(), Value::String(v.expose_secret().to_owned()));
            }
        }
    }
    m
}

/// A value from a KV `data` map (consumed: each string moves into a
/// `SecretString`).
pub(crate) fn from_kv(value: Value, path: &str) -> Result<SecretData, StoreError> {
    let mut map = match value {
        Value::Object(m) => m,
        Value::Null => return Err(StoreError::not_found(path, Some("the version's data (deleted)".to_owned()))),
        mut other => {
            wipe(&mut other);
            return Err(StoreError::NotSupported {
                message: format!("the data of {path} is not a JSON object of string fields"),
            });
        }
    };
    if map.len() == 1
        && let Some(Value::String(s)) = map.get_mut(TEXT_KEY)
    {
        return Ok(SecretData::Text(SecretString::from(std::mem::take(s))));
    }
    let mut fields = BTreeMap::new();
    let mut bad = None;
    for (k, v) in map.iter_mut() {
        match v {
            Value::String(s) => {
                fields.insert(k.clone(), SecretString::from(std::mem::take(s)));
            }
            other => {
                wipe(other);
                bad.get_or_insert_with(|| k.clone());
            }
        }
    }
    if let Some(k) = bad {
        return Err(StoreError::NotSupported {
            message: format!("field `{k}` of {path} is not a string; rekey handles string fields only"),
        });
    }
    Ok(SecretData::Fields(fields))
}

/// The staged candidate as stored at the staging location: the candidate's
/// KV map under `candidate`, rekey's bookkeeping beside it. One KV write
/// holds both, so a candidate and its rotation id can never be seen apart.
pub(crate) fn envelope(data: &SecretData, rotation: RotationId, base_version: u64) -> KvBody {
    let mut m = Map::new();
    m.insert("rekey_format".to_owned(), Value::from(1));
    m.insert("rotation_id".to_owned(), Value::String(rotation.to_string()));
    m.insert("base_version".to_owned(), Value::from(base_version));
    m.insert("candidate".to_owned(), Value::Object(to_kv(data)));
    KvBody(Value::Object(m))
}

/// A staged candidate read back.
pub(crate) struct Staged {
    pub(crate) rotation: RotationId,
    pub(crate) candidate: KvBody,
}

pub(crate) fn parse_envelope(value: Value, path: &str) -> Result<Staged, StoreError> {
    let mut body = KvBody(value);
    let bad = || StoreError::Other {
        message: format!("the staging entry of {path} is not a rekey candidate (was it written by something else?)"),
        source: None,
    };
    let Value::Object(m) = &mut body.0 else { return Err(bad()) };
    let rotation =
        m.get("rotation_id").and_then(Value::as_str).and_then(|s| RotationId::parse(s).ok()).ok_or_else(bad)?;
    let candidate = match m.remove("candidate") {
        Some(c @ Value::Object(_)) => KvBody(c),
        _ => return Err(bad()),
    };
    Ok(Staged { rotation, candidate })
}

/// The id of the staged candidate of `rotation`.
pub(crate) fn staged_id(rotation: RotationId) -> VersionId {
    VersionId::new(format!("staged-{rotation}"))
}

/// What a version id names.
pub(crate) enum Id {
    /// A KV version of the secret.
    Kv(u64),
    /// The staged candidate of a rotation.
    Staged(RotationId),
    /// Nothing this store ever hands out.
    Unknown,
}

pub(crate) fn parse_id(id: &VersionId) -> Id {
    let s = id.as_str();
    if let Some(r) = s.strip_prefix("staged-") {
        return RotationId::parse(r).map(Id::Staged).unwrap_or(Id::Unknown);
    }
    match s.parse::<u64>() {
        Ok(n) if n > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Id::Kv(n),
        _ => Id::Unknown,
    }
}

pub(crate) fn kv_id(n: u64) -> VersionId {
    VersionId::new(n.to_string())
}

/// The current version's description from a data read's metadata.
pub(crate) fn current_meta(
    m: &vaultrs::api::kv2::responses::SecretVersionMetadata,
) -> Result<rekey_core::VersionMeta, StoreError> {
    Ok(rekey_core::VersionMeta {
        id: kv_id(m.version),
        created_at: time(&m.created_time)?,
        stages: rekey_core::Stages { current: true, previous: false, pending: false },
        rotation_id: recorded(m.custom_metadata.as_ref(), m.version),
    })
}

/// The rotation recorded for version `n`.
pub(crate) fn recorded(custom: Option<&HashMap<String, String>>, n: u64) -> Option<RotationId> {
    custom?.get(&format!("{RECORD_PREFIX}{n}")).and_then(|s| RotationId::parse(s).ok())
}

/// The newest version recorded as written by `rotation`.
pub(crate) fn find_recorded(custom: Option<&HashMap<String, String>>, rotation: RotationId) -> Option<u64> {
    let want = rotation.to_string();
    custom?
        .iter()
        .filter(|(_, v)| **v == want)
        .filter_map(|(k, _)| k.strip_prefix(RECORD_PREFIX)?.parse::<u64>().ok())
        .max()
}

/// The `custom_metadata` changes that record `rotation` for version `n` and
/// drop records of versions too old to keep (null = remove).
pub(crate) fn record_patch(
    custom: Option<&HashMap<String, String>>,
    n: u64,
    rotation: RotationId,
) -> Map<String, Value> {
    let mut m = Map::new();
    for k in custom.into_iter().flat_map(|c| c.keys()) {
        if let Some(v) = k.strip_prefix(RECORD_PREFIX).and_then(|v| v.parse::<u64>().ok())
            && v + RECORDS_KEPT <= n
        {
            m.insert(k.clone(), Value::Null);
        }
    }
    m.insert(format!("{RECORD_PREFIX}{n}"), Value::String(rotation.to_string()));
    m
}

/// Parses Vault's RFC 3339 times.
pub(crate) fn time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Other { message: format!("the server sent an unreadable time `{s}`"), source: None })
}

/// Whether a KV v2 version with this `deletion_time` is deleted now. KV v2
/// sets a *future* deletion time on every version written under
/// `delete_version_after`: such a version is live until then. An
/// unreadable time counts as deleted (fail closed).
pub(crate) fn deleted(deletion_time: &str) -> bool {
    !deletion_time.is_empty() && time(deletion_time).map_or(true, |t| t <= Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_past_or_unreadable_deletion_time_is_deleted() {
        assert!(!deleted(""));
        assert!(!deleted(&(Utc::now() + chrono::Duration::hours(1)).to_rfc3339()));
        assert!(deleted(&(Utc::now() - chrono::Duration::seconds(1)).to_rfc3339()));
        assert!(deleted("not a time"));
    }

    #[test]
    fn text_and_fields_round_trip() {
        let t = from_kv(Value::Object(to_kv(&SecretData::text("x1"))), "p").expect("text");
        assert!(t.same_as(&SecretData::text("x1")));
        let f = SecretData::fields([("username", "u"), ("password", "p")]);
        assert!(from_kv(Value::Object(to_kv(&f)), "p").expect("fields").same_as(&f));
        // A one-field map named `value` is text (documented).
        let v = from_kv(serde_json::json!({"value": "z"}), "p").expect("text");
        assert!(matches!(v, SecretData::Text(_)));
        let e = from_kv(serde_json::json!({"port": 5432}), "p").err().map(|e| e.kind());
        assert_eq!(e, Some("not_supported"));
        assert!(from_kv(serde_json::json!([1]), "p").is_err());
    }

    #[test]
    fn ids() {
        let r = RotationId::new();
        assert!(matches!(parse_id(&staged_id(r)), Id::Staged(x) if x == r));
        assert!(matches!(parse_id(&VersionId::new("12")), Id::Kv(12)));
        for bad in ["0", "+1", "-1", "x", "", "staged-x", "1 "] {
            assert!(matches!(parse_id(&VersionId::new(bad)), Id::Unknown), "{bad}");
        }
    }

    #[test]
    fn records() {
        let r = RotationId::new();
        let mut c = HashMap::new();
        c.insert(format!("{RECORD_PREFIX}3"), r.to_string());
        c.insert(format!("{RECORD_PREFIX}1"), RotationId::new().to_string());
        c.insert("owner".to_owned(), "me".to_owned());
        assert_eq!(recorded(Some(&c), 3), Some(r));
        assert_eq!(find_recorded(Some(&c), r), Some(3));
        let m = record_patch(Some(&c), 11, r);
        assert_eq!(m[&format!("{RECORD_PREFIX}1")], Value::Null);
        assert!(!m.contains_key(&format!("{RECORD_PREFIX}3")));
        assert!(m.get("owner").is_none());
    }
}
