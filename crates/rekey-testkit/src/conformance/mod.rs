//! The store conformance suite: the semantics of
//! [`rekey_core::store`], checked against a live store.
//!
//! Every case is a `pub async fn(store: &DynSecretStore, prefix: &str)` that
//! panics (failing the test) with a message naming the case when the store
//! does not behave as the contract says. Each case writes only under
//! `<prefix>/<case name>/`, so with a fresh prefix ([`unique_prefix`]) the
//! suite can run repeatedly and concurrently against one shared server.
//!
//! What the suite relies on, so that every backend can pass it unchanged:
//!
//! * It asserts exact [`StoreError`] variants, values, stages and the order
//!   of versions, never the form of a [`VersionId`] (a number on Vault, a
//!   UUID on AWS and in memory).
//! * [`promote`](rekey_core::SecretStore::promote) may return a new id (Vault
//!   promotes by copying): the suite checks the returned id against
//!   `read(Current)`, never against the promoted id.
//! * Every secret value it writes contains [`SECRET_MARKER`]; every error it
//!   sees is checked for that marker in its `Display`, its `Debug` and its
//!   source chain, and so is the `Debug` of every version it reads.
//!
//! Run everything with [`run_all`], or each case as its own test with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```
//! use std::sync::Arc;
//! use rekey_core::DynSecretStore;
//! use rekey_memory::MemoryStore;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store: Arc<DynSecretStore> = Arc::new(MemoryStore::new());
//! rekey_testkit::conformance::run_all(store, &rekey_testkit::unique_prefix("doc")).await;
//! # }
//! ```
//!
//! [`unique_prefix`]: crate::unique_prefix

use std::sync::Arc;

use futures::future::BoxFuture;
use rekey_core::DynSecretStore;

mod concurrency;
mod helpers;
mod metadata;
mod rotation;
mod staging;
mod versions;

pub use concurrency::*;
pub use metadata::*;
pub use rotation::*;
pub use staging::*;
pub use versions::*;

/// Text contained in every secret value the suite writes; no error message
/// and no `Debug` output may contain it.
pub const SECRET_MARKER: &str = "s3cr3t-cf-";

/// One case of the suite.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's name (also its function's name in this module).
    pub name: &'static str,
    /// Runs the case against a store under a prefix.
    pub run: for<'a> fn(&'a DynSecretStore, &'a str) -> BoxFuture<'a, ()>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Runs every case of [`CASES`] in turn against `store`, under `prefix`.
///
/// Panics with the failing case's name on the first failure.
pub async fn run_all(store: Arc<DynSecretStore>, prefix: &str) {
    for case in CASES {
        (case.run)(&*store, prefix).await;
    }
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        mod boxed {
            use super::*;
            $(
                pub(super) fn $name<'a>(store: &'a DynSecretStore, prefix: &'a str) -> BoxFuture<'a, ()> {
                    Box::pin(super::$name(store, prefix))
                }
            )*
        }

        /// Every case, in the order [`run_all`] runs them.
        pub const CASES: &[Case] = &[$(Case { name: stringify!($name), run: boxed::$name }),*];
    };
}

cases!(
    create_read_round_trip_text,
    create_read_round_trip_fields,
    create_twice_already_exists,
    read_missing_not_found,
    previous_of_single_version_not_found,
    pending_nothing_staged_not_found,
    read_unknown_version_not_found,
    put_if_current_stale_conflict,
    put_same_rotation_id_once,
    put_overwrite,
    versions_listed_oldest_first,
    staging_never_changes_current,
    stage_same_rotation_id_once,
    stage_other_rotation_replaces_candidate,
    promote_pending,
    promote_stale_expected_conflict,
    rollback_restores_previous,
    discard_removes_candidate,
    discard_current_invalid,
    stage_missing_secret_not_found,
    promote_unknown_version_not_found,
    metadata_round_trip_and_replace,
    metadata_key_outside_namespace_invalid,
    metadata_update_touches_only_named_keys,
    metadata_concurrent_updates_keep_every_key,
    delete_then_read_not_found,
    delete_then_recreate,
    race_put_if_current,
    race_promote_distinct_versions,
    race_promote_same_candidate,
    created_at_monotonic,
    no_secret_in_debug_or_errors,
    snapshot_matches_reads,
    stage_rotation_stages_and_reports_base,
    promote_rotation_records_only_when_it_wins,
    put_rotation_records_only_when_it_wins,
);

/// Defines one `#[tokio::test]` per conformance case in the calling module.
///
/// `$make` is an expression evaluating to a future of
/// `Option<Arc<DynSecretStore>>`; `None` skips the test (e.g. when
/// [`env::require`](crate::env::require) finds no server outside CI). Each
/// test runs under a fresh [`unique_prefix`](crate::unique_prefix) tagged
/// `$tag`. The calling crate needs `tokio` with the `macros` and `rt`
/// features.
///
/// ```
/// // In a backend's `tests/conformance.rs`:
/// mod conformance {
///     use std::sync::Arc;
///     use rekey_core::DynSecretStore;
///     rekey_testkit::conformance_tests!("memory", async {
///         Some(Arc::new(rekey_memory::MemoryStore::new()) as Arc<DynSecretStore>)
///     });
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($tag:expr, $make:expr) => {
        $crate::conformance_tests!(@each $tag, $make;
            create_read_round_trip_text,
            create_read_round_trip_fields,
            create_twice_already_exists,
            read_missing_not_found,
            previous_of_single_version_not_found,
            pending_nothing_staged_not_found,
            read_unknown_version_not_found,
            put_if_current_stale_conflict,
            put_same_rotation_id_once,
            put_overwrite,
            versions_listed_oldest_first,
            staging_never_changes_current,
            stage_same_rotation_id_once,
            stage_other_rotation_replaces_candidate,
            promote_pending,
            promote_stale_expected_conflict,
            rollback_restores_previous,
            discard_removes_candidate,
            discard_current_invalid,
            stage_missing_secret_not_found,
            promote_unknown_version_not_found,
            metadata_round_trip_and_replace,
            metadata_key_outside_namespace_invalid,
            metadata_update_touches_only_named_keys,
            metadata_concurrent_updates_keep_every_key,
            delete_then_read_not_found,
            delete_then_recreate,
            race_put_if_current,
            race_promote_distinct_versions,
            race_promote_same_candidate,
            created_at_monotonic,
            no_secret_in_debug_or_errors,
            snapshot_matches_reads,
            stage_rotation_stages_and_reports_base,
            promote_rotation_records_only_when_it_wins,
            put_rotation_records_only_when_it_wins,
        );

        /// How many cases the macro defined (checked against `CASES`).
        #[allow(dead_code)]
        const CONFORMANCE_TESTS_DEFINED: usize = 36;
    };
    (@each $tag:expr, $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store: ::std::option::Option<::std::sync::Arc<$crate::__rekey_core::DynSecretStore>> = $make.await;
                if let ::std::option::Option::Some(store) = store {
                    $crate::conformance::$name(&*store, &$crate::unique_prefix($tag)).await;
                }
            }
        )*
    };
}
