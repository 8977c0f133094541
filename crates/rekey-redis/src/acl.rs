//! The ACL rules rekey relies on: valid user names, password hashes, and
//! reading `ACL GETUSER` replies.

use redis::Value;
use rekey_core::TargetError;
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `password`: how Redis stores ACL passwords, and
/// what the `#<hash>` / `!<hash>` rules take.
pub(crate) fn sha256_hex(password: &str) -> String {
    hex::encode(Sha256::digest(password.as_bytes()))
}

/// What `ACL GETUSER` says about the user.
pub(crate) struct UserState {
    pub(crate) on: bool,
    pub(crate) hashes: Vec<String>,
}

/// Checks that Redis can hold `user` as an ACL user name.
pub(crate) fn check_user_name(user: &str) -> Result<(), TargetError> {
    if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TargetError::InvalidInput {
            message: "an ACL user name must be non-empty, without spaces or control characters".into(),
        });
    }
    Ok(())
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn texts(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Array(items) | Value::Set(items) => items.iter().map(text).collect(),
        _ => None,
    }
}

/// Reads the `flags` and `passwords` of an `ACL GETUSER` reply (RESP2 array
/// of key/value pairs or RESP3 map; nil when the user does not exist).
pub(crate) fn parse_user(reply: &Value) -> Result<Option<UserState>, &'static str> {
    let pairs: Vec<(&Value, &Value)> = match reply {
        Value::Nil => return Ok(None),
        Value::Array(items) => items.chunks(2).filter_map(|c| Some((c.first()?, c.get(1)?))).collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (k, v)).collect(),
        _ => return Err("unexpected ACL GETUSER reply"),
    };
    let mut flags = None;
    let mut hashes = None;
    for (k, v) in pairs {
        match text(k).as_deref() {
            Some("flags") => flags = texts(v),
            Some("passwords") => hashes = texts(v),
            _ => {}
        }
    }
    match (flags, hashes) {
        (Some(flags), Some(hashes)) => Ok(Some(UserState { on: flags.iter().any(|f| f == "on"), hashes })),
        _ => Err("ACL GETUSER reply without flags or passwords"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hashes_like_redis() {
        // `ACL SETUSER u >foobar` then `ACL GETUSER u` shows this hash.
        assert_eq!(sha256_hex("foobar"), "c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2");
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_getuser_replies() {
        assert!(parse_user(&Value::Nil).unwrap().is_none());
        let resp2 = Value::Array(vec![
            bulk("flags"),
            Value::Array(vec![bulk("on"), bulk("sanitize-payload")]),
            bulk("passwords"),
            Value::Array(vec![bulk("aa"), bulk("bb")]),
            bulk("commands"),
            bulk("+ping"),
        ]);
        let u = parse_user(&resp2).unwrap().unwrap();
        assert!(u.on);
        assert_eq!(u.hashes, ["aa", "bb"]);
        let resp3 =
            Value::Map(vec![(bulk("flags"), Value::Set(vec![bulk("off")])), (bulk("passwords"), Value::Array(vec![]))]);
        let u = parse_user(&resp3).unwrap().unwrap();
        assert!(!u.on && u.hashes.is_empty());
        assert!(parse_user(&Value::Int(3)).is_err());
        assert!(parse_user(&Value::Array(vec![bulk("flags")])).is_err());
    }
}
