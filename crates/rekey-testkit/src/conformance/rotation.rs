//! Conformance cases: the calls a rotation makes (`snapshot`,
//! `stage_rotation`, `promote_rotation`, `put_rotation`) keep the semantics
//! of the primitive calls they combine, whatever shortcut a store takes.

use rekey_core::{
    DynSecretStore, JOURNAL_KEY, Metadata, MetadataPatch, PromoteRequest, PutOptions, RecordWrite, RotationId,
    SecretStoreExt, StageOutcome, StageRequest, VersionSelector,
};

use super::helpers::*;

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// `snapshot` returns what reading the current version and the metadata
/// returns; a missing secret is `NotFound`.
pub async fn snapshot_matches_reads(store: &DynSecretStore, prefix: &str) {
    let case = "snapshot_matches_reads";
    let p = path(prefix, case, "s");
    let v = value("a");
    ok(case, "create", store.create(&p, v.clone()).await);
    let m = meta(&[("rekey.k", "v")]);
    ok(case, "write metadata", store.write_metadata(&p, m.clone()).await);
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    let snap = ok(case, "snapshot with value", store.snapshot(&p, true).await);
    check(case, snap.current.id == cur.meta.id, "snapshot's current version differs from read(Current)'s");
    check(case, snap.current.created_at == cur.meta.created_at, "snapshot's creation time differs from read's");
    check(case, snap.metadata == m, &format!("snapshot's metadata {:?}, wrote {m:?}", snap.metadata));
    match &snap.data {
        Some(d) => same_value(case, "snapshot value", d, &v),
        None => check(case, false, "snapshot(with_value) returned no value"),
    }
    let bare = ok(case, "snapshot without value", store.snapshot(&p, false).await);
    check(case, bare.current.id == cur.meta.id, "snapshot(false) names another current version");
    let missing = path(prefix, case, "never-written");
    let e = err(case, "snapshot of a missing secret", store.snapshot(&missing, false).await);
    expect_kind(case, "snapshot of a missing secret", &e, "not_found");
}

/// `stage_rotation` stages a pending candidate, reports the version current
/// when it staged and the metadata before the call, keeps a required journal
/// line, and stages nothing while a rotation journal is present.
pub async fn stage_rotation_stages_and_reports_base(store: &DynSecretStore, prefix: &str) {
    let case = "stage_rotation_stages_and_reports_base";
    let p = path(prefix, case, "s");
    let v1 = ok(case, "create", store.create(&p, value("a")).await);
    let m = meta(&[("rekey.owner", "team")]);
    ok(case, "write metadata", store.write_metadata(&p, m.clone()).await);
    let r = RotationId::new();
    let line = format!("id={r} step=stage strategy=staged");
    let req = StageRequest::new(r).journal(line.clone(), true);
    let staged = match ok(case, "stage_rotation", store.stage_rotation(&p, value("b"), req).await) {
        StageOutcome::Staged(s) => s,
        StageOutcome::Journalled(_) => return check(case, false, "stage_rotation found a journal that is not there"),
    };
    check(case, staged.base.id == v1.id, "the base is not the version current when staging");
    check(case, staged.metadata == m, &format!("metadata before the call {:?}, expected {m:?}", staged.metadata));
    check_rotation(case, "staged candidate", &staged.candidate, r);
    let pend = read(case, "read pending", store, &p, VersionSelector::Pending).await;
    check(case, pend.meta.id == staged.candidate.id, "read(Pending) is not the staged candidate");
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    check(case, cur.meta.id == v1.id, "stage_rotation changed the current version");
    let after = ok(case, "read metadata", store.read_metadata(&p).await);
    check(case, after.get(JOURNAL_KEY) == Some(&line), "a required journal line is not in the metadata");
    // While a journal is there, nothing is staged.
    let other = RotationId::new();
    match ok(
        case,
        "stage_rotation over a journal",
        store.stage_rotation(&p, value("c"), StageRequest::new(other)).await,
    ) {
        StageOutcome::Journalled(snap) => {
            check(case, snap.current.id == v1.id, "the journalled snapshot names another current version");
            check(case, snap.journalled(), "the journalled snapshot lacks the journal");
        }
        StageOutcome::Staged(_) => check(case, false, "stage_rotation staged over another rotation's journal"),
    }
    let pend = read(case, "read pending after refusal", store, &p, VersionSelector::Pending).await;
    check(case, pend.meta.id == staged.candidate.id, "a refused stage_rotation replaced the candidate");
    let missing = path(prefix, case, "never-written");
    let e = err(
        case,
        "stage_rotation of a missing secret",
        store.stage_rotation(&missing, value("x"), StageRequest::new(other)).await,
    );
    expect_kind(case, "stage_rotation of a missing secret", &e, "not_found");
}

/// `promote_rotation` makes the candidate current and writes the record's
/// `must` part; a lost compare-and-swap changes neither the current version
/// nor the metadata.
pub async fn promote_rotation_records_only_when_it_wins(store: &DynSecretStore, prefix: &str) {
    let case = "promote_rotation_records_only_when_it_wins";
    let p = path(prefix, case, "s");
    let v1 = ok(case, "create", store.create(&p, value("a")).await);
    let c = value("b");
    let r = RotationId::new();
    let staged = ok(case, "stage", store.stage(&p, c.clone(), r).await);
    let mut must = MetadataPatch::new();
    must.set("rekey.done", "yes");
    let mut may = MetadataPatch::new();
    may.set("rekey.note", "optional");
    let record = RecordWrite { must, may, new_version_keys: vec!["rekey.keep".to_owned()] };
    // A stale expected version: nothing happens.
    let stale = foreign_version(case, store, prefix).await;
    let req = PromoteRequest { candidate: &staged.id, expected: &stale, value: Some(&c), record: &record };
    let e = err(case, "promote_rotation with a stale expected version", store.promote_rotation(&p, req).await);
    expect_kind(case, "promote_rotation with a stale expected version", &e, "conflict");
    let m = ok(case, "read metadata after the lost race", store.read_metadata(&p).await);
    check(case, !m.contains_key("rekey.done"), "a lost promote_rotation wrote its record");
    let cur = read(case, "read current after the lost race", store, &p, VersionSelector::Current).await;
    check(case, cur.meta.id == v1.id, "a lost promote_rotation changed the current version");
    // The right one wins and records.
    let req = PromoteRequest { candidate: &staged.id, expected: &v1.id, value: Some(&c), record: &record };
    let now = ok(case, "promote_rotation", store.promote_rotation(&p, req).await);
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    check(case, cur.meta.id == now.id, "promote_rotation returned an id other than read(Current)'s");
    same_value(case, "current after promote_rotation", &cur.data, &c);
    check_rotation(case, "promoted version", &cur.meta, r);
    let m = ok(case, "read metadata", store.read_metadata(&p).await);
    check(case, m.get("rekey.done").map(String::as_str) == Some("yes"), "promote_rotation did not write its record");
    check(
        case,
        m.get("rekey.keep").map(String::as_str) == Some(cur.meta.id.as_str()),
        &format!("the new version key holds {:?}, not the new current version {}", m.get("rekey.keep"), cur.meta.id),
    );
    let pending = ok(case, "pending after promote_rotation", store.pending(&p).await);
    check(case, pending.is_none(), "a candidate is still pending after promote_rotation");
}

/// `put_rotation` writes the new current version and the record's `must`
/// part; a lost compare-and-swap writes neither.
pub async fn put_rotation_records_only_when_it_wins(store: &DynSecretStore, prefix: &str) {
    let case = "put_rotation_records_only_when_it_wins";
    let p = path(prefix, case, "s");
    let v1 = ok(case, "create", store.create(&p, value("a")).await);
    let mut must = MetadataPatch::new();
    must.set("rekey.done", "yes");
    let record = RecordWrite { must, may: MetadataPatch::new(), new_version_keys: vec!["rekey.keep".to_owned()] };
    let stale = foreign_version(case, store, prefix).await;
    let e = err(
        case,
        "put_rotation with a stale expected version",
        store
            .put_rotation(&p, value("x"), PutOptions::if_current(stale).with_rotation(RotationId::new()), &record)
            .await,
    );
    expect_kind(case, "put_rotation with a stale expected version", &e, "conflict");
    let m = ok(case, "read metadata after the lost race", store.read_metadata(&p).await);
    check(case, !m.contains_key("rekey.done"), "a lost put_rotation wrote its record");
    let r = RotationId::new();
    let b = value("b");
    let now = ok(
        case,
        "put_rotation",
        store.put_rotation(&p, b.clone(), PutOptions::if_current(v1.id.clone()).with_rotation(r), &record).await,
    );
    let cur = read(case, "read current", store, &p, VersionSelector::Current).await;
    check(case, cur.meta.id == now.id, "put_rotation returned an id other than read(Current)'s");
    same_value(case, "current after put_rotation", &cur.data, &b);
    check_rotation(case, "written version", &cur.meta, r);
    let m = ok(case, "read metadata", store.read_metadata(&p).await);
    check(case, m.get("rekey.done").map(String::as_str) == Some("yes"), "put_rotation did not write its record");
    check(
        case,
        m.get("rekey.keep").map(String::as_str) == Some(cur.meta.id.as_str()),
        "put_rotation did not set the new version key to the written version",
    );
}
