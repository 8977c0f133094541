//! The engine's futures are `Send + 'static`-friendly: a service can spawn its
//! rotation worker on tokio. Needs the in-memory store (the default feature).
#![cfg(feature = "memory")]
use std::sync::Arc;

#[tokio::test]
async fn rotations_and_the_scheduler_can_be_spawned() {
    let m = Arc::new(
        rekey::RotationManager::builder(Arc::new(rekey::memory::MemoryStore::new()))
            .clock(rekey::tokio_clock())
            .build()
            .unwrap(),
    );
    let m2 = m.clone();
    let h = tokio::spawn(async move { m2.process_scheduled_rotations().await.len() });
    assert_eq!(h.await.unwrap(), 0);

    let p: rekey::SecretPath = "a/b".parse().unwrap();
    use rekey::SecretStoreExt;
    m.store().create(&p, rekey::SecretData::text("first")).await.unwrap();
    let pol = rekey::RotationPolicy::builder("p").build().unwrap();
    let m3 = m.clone();
    let h = tokio::spawn(async move { m3.rotate_secret(&p, &pol, None).await.success() });
    assert!(h.await.unwrap());
}
