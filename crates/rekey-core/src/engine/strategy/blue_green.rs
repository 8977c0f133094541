//! BLUE_GREEN: two complete credential sets; the inactive one (named by the
//! previous version's value) is re-keyed, verified and promoted, and the
//! formerly active set stays valid until the next rotation.
//!
//! # Two sets, no pointer
//!
//! The secret is [`SecretData::Fields`] with a `username` field naming the
//! set (e.g. the PostgreSQL role `app_blue` or `app_green`) and a password
//! field (`password` unless the binding names another). As in AWS's
//! "alternating users" rotation there is no separate active pointer: the
//! **current** version is the active set, the **previous** version the
//! inactive one, and promoting a version (CAS) switches them atomically.
//!
//! A rotation re-keys the inactive set: [`inactive_username`] finds it,
//! [`candidate`] builds `{username: inactive, password: new, other fields as
//! in the current value}`. On the very first rotation there is no previous
//! version (or it names the same set); the two set names must then be given
//! (`sets`, e.g. from the binding or from
//! `PostgresTarget::roles()`), and the candidate re-keys the one the current
//! value does not name.
//!
//! # The rotation
//!
//! Success: journal → stage the candidate → apply on the target
//! (`target.apply(candidate, Some(current))`: only the inactive set changes)\*
//! → verify by logging in as the inactive set\* → promote (CAS against the
//! version read at the start) → confirm\* → clear journal. The formerly
//! active set is not touched: consumers still holding it keep working until
//! the next rotation re-keys it (hence a policy's schedule must be at least
//! twice its grace period, checked at policy validation).
//!
//! On failure before promotion the inactive set is revoked on the target
//! (`target.revoke(candidate, keep = current)`, first, as in
//! [`dual_write`](super::dual_write)) and the candidate discarded; the
//! active set never changed. After promotion (a failed confirmation)
//! the previous value is made current again when the policy sets
//! `auto_rollback`, and the candidate is revoked likewise.
//!
//! \* when a target is bound / verification is required.

use secrecy::SecretString;

use crate::SecretData;
use crate::engine::machine::{RotationAction, RotationState};

/// Whether the engine runs this strategy.
pub const SUPPORTED: bool = true;

pub use crate::verify::{PASSWORD_FIELD, USERNAME_FIELD};

/// The next action of a blue-green rotation. Pure: same state, same answer.
pub fn next_action(s: &RotationState) -> RotationAction {
    // The same step sequence as a staged rotation, undo included; what
    // differs is what the manager does at each step (see the module docs).
    super::staged::next_action(s)
}

/// Why a blue-green candidate cannot be built. Messages name fields and set
/// names (user names), never a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlueGreenError {
    /// The secret is one string; blue-green needs `username` and a password
    /// field.
    #[error("blue-green needs a secret with fields `username` and a password field; this one is a single value")]
    NotFields,
    /// The current (or previous) value has no `username` field.
    #[error("blue-green: the {which} value has no `username` field")]
    MissingUsername {
        /// `"current"` or `"previous"`.
        which: &'static str,
    },
    /// The two set names given are the same (or empty).
    #[error("blue-green: the two credential sets must have two different, non-empty user names")]
    BadSets,
    /// The current value names a set that is not one of the two given.
    #[error("blue-green: the current value's user `{username}` is neither `{}` nor `{}`", .sets[0], .sets[1])]
    UnknownSet {
        /// The user the current value names.
        username: String,
        /// The two configured sets.
        sets: [String; 2],
    },
    /// No previous version names another set and no set names were given.
    #[error(
        "blue-green: cannot tell the inactive credential set: the previous version does not name another user \
         (first rotation?); name the two credential sets (their user names)"
    )]
    NoInactiveSet,
}

fn username<'a>(data: &'a SecretData, which: &'static str) -> Result<&'a str, BlueGreenError> {
    use secrecy::ExposeSecret;
    if !matches!(data, SecretData::Fields(_)) {
        return Err(BlueGreenError::NotFields);
    }
    match data.field(USERNAME_FIELD) {
        Some(u) if !u.expose_secret().is_empty() => Ok(u.expose_secret()),
        _ => Err(BlueGreenError::MissingUsername { which }),
    }
}

/// The user name of the set to re-key: the set that `current` does not name.
///
/// * With `sets` (the two user names, authoritative): the one of the two that
///   is not `current`'s (an error if `current` names neither).
/// * Without: `previous`'s user name when it differs from `current`'s;
///   otherwise [`BlueGreenError::NoInactiveSet`].
///
/// ```
/// use rekey_core::SecretData;
/// use rekey_core::engine::strategy::blue_green::inactive_username;
/// let cur = SecretData::fields([("username", "app_blue"), ("password", "x")]);
/// let prev = SecretData::fields([("username", "app_green"), ("password", "y")]);
/// assert_eq!(inactive_username(&cur, Some(&prev), None)?, "app_green");
/// assert_eq!(inactive_username(&cur, None, Some(["app_blue", "app_green"]))?, "app_green");
/// # Ok::<(), rekey_core::engine::strategy::blue_green::BlueGreenError>(())
/// ```
pub fn inactive_username(
    current: &SecretData,
    previous: Option<&SecretData>,
    sets: Option<[&str; 2]>,
) -> Result<String, BlueGreenError> {
    let active = username(current, "current")?;
    if let Some([a, b]) = sets {
        if a.is_empty() || b.is_empty() || a == b {
            return Err(BlueGreenError::BadSets);
        }
        return if active == a {
            Ok(b.to_owned())
        } else if active == b {
            Ok(a.to_owned())
        } else {
            Err(BlueGreenError::UnknownSet { username: active.to_owned(), sets: [a.to_owned(), b.to_owned()] })
        };
    }
    match previous {
        Some(p) => {
            let other = username(p, "previous")?;
            if other != active { Ok(other.to_owned()) } else { Err(BlueGreenError::NoInactiveSet) }
        }
        None => Err(BlueGreenError::NoInactiveSet),
    }
}

/// The candidate of a blue-green rotation: `current`'s fields, with
/// `username` set to the inactive set ([`inactive_username`]) and
/// `password_field` (default [`PASSWORD_FIELD`]) set to `new_password`.
pub fn candidate(
    current: &SecretData,
    previous: Option<&SecretData>,
    sets: Option<[&str; 2]>,
    password_field: Option<&str>,
    new_password: SecretString,
) -> Result<SecretData, BlueGreenError> {
    let inactive = inactive_username(current, previous, sets)?;
    let SecretData::Fields(fields) = current else {
        return Err(BlueGreenError::NotFields);
    };
    let mut fields = fields.clone();
    fields.insert(USERNAME_FIELD.to_owned(), SecretString::from(inactive));
    fields.insert(password_field.unwrap_or(PASSWORD_FIELD).to_owned(), new_password);
    Ok(SecretData::Fields(fields))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::engine::machine::{ActionOutcome, RotationVerdict};
    use crate::policy::RotationStrategy;

    fn run(target: bool, auto_rollback: bool, fail: Option<RotationAction>) -> Vec<RotationAction> {
        let mut s = RotationState::new(RotationStrategy::BlueGreen, true, target, auto_rollback);
        let mut steps = Vec::new();
        for _ in 0..32 {
            let a = next_action(&s);
            steps.push(a);
            if let RotationAction::Finish(_) = a {
                break;
            }
            s.record(a, if Some(a) == fail { ActionOutcome::Failed } else { ActionOutcome::Done });
        }
        steps
    }

    use RotationAction::*;

    #[test]
    fn sequences() {
        assert_eq!(
            run(true, true, None),
            [Journal, Stage, Apply, Verify, Promote, Confirm, ClearJournal, Finish(RotationVerdict::Succeeded)]
        );
        assert_eq!(
            run(true, true, Some(Verify)),
            [Journal, Stage, Apply, Verify, Revoke, Discard, ClearJournal, Finish(RotationVerdict::RolledBack)]
        );
        assert_eq!(
            run(true, true, Some(Confirm)),
            [
                Journal,
                Stage,
                Apply,
                Verify,
                Promote,
                Confirm,
                Rollback,
                Revoke,
                ClearJournal,
                Finish(RotationVerdict::RolledBack)
            ]
        );
        assert_eq!(
            run(true, true, Some(Promote)),
            [
                Journal,
                Stage,
                Apply,
                Verify,
                Promote,
                Revoke,
                Discard,
                ClearJournal,
                Finish(RotationVerdict::RolledBack)
            ]
        );
        assert_eq!(run(false, true, Some(Stage)), [Journal, Stage, ClearJournal, Finish(RotationVerdict::Failed)]);
    }

    fn creds(user: &str, pw: &str) -> SecretData {
        SecretData::fields([("username", user), ("password", pw), ("host", "db")])
    }

    #[test]
    fn candidate_re_keys_the_inactive_set() {
        let (cur, prev) = (creds("blue", "b"), creds("green", "g"));
        let c = candidate(&cur, Some(&prev), None, None, SecretString::from("new")).ok();
        let c = c.as_ref();
        assert_eq!(c.and_then(|c| c.field("username")).map(|u| u.expose_secret().to_owned()).as_deref(), Some("green"));
        assert_eq!(c.and_then(|c| c.field("password")).map(|u| u.expose_secret().to_owned()).as_deref(), Some("new"));
        assert_eq!(c.and_then(|c| c.field("host")).map(|u| u.expose_secret().to_owned()).as_deref(), Some("db"));
    }

    #[test]
    fn first_rotation_needs_sets() {
        let cur = creds("blue", "b");
        assert_eq!(inactive_username(&cur, None, None), Err(BlueGreenError::NoInactiveSet));
        assert_eq!(inactive_username(&cur, Some(&creds("blue", "old")), None), Err(BlueGreenError::NoInactiveSet));
        assert_eq!(inactive_username(&cur, None, Some(["green", "blue"])).as_deref(), Ok("green"));
        assert!(matches!(inactive_username(&cur, None, Some(["a", "b"])), Err(BlueGreenError::UnknownSet { .. })));
        assert_eq!(inactive_username(&cur, None, Some(["a", "a"])), Err(BlueGreenError::BadSets));
    }

    #[test]
    fn bad_shapes_are_errors_without_secrets() {
        let e = inactive_username(&SecretData::text("pw-secret"), None, None);
        assert_eq!(e, Err(BlueGreenError::NotFields));
        let e = inactive_username(&SecretData::fields([("password", "pw-secret")]), None, None);
        assert_eq!(e, Err(BlueGreenError::MissingUsername { which: "current" }));
        let msg = BlueGreenError::MissingUsername { which: "current" }.to_string();
        assert!(!msg.contains("pw-secret"));
    }
}
