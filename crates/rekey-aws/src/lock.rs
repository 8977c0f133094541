//! In-process serialisation of writes to one secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

type Table = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// One async mutex per secret name, created on demand and dropped when
/// nobody holds or waits for it.
#[derive(Clone, Default)]
pub(crate) struct SecretLocks {
    table: Table,
}

/// Holds one secret's lock; releases it (and forgets an idle entry) on drop.
pub(crate) struct SecretGuard {
    table: Table,
    name: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl SecretLocks {
    /// Waits for the lock of `name`.
    pub(crate) async fn lock(&self, name: &str) -> SecretGuard {
        let mutex = {
            let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(table.entry(name.to_owned()).or_default())
        };
        let guard = mutex.lock_owned().await;
        SecretGuard { table: Arc::clone(&self.table), name: name.to_owned(), guard: Some(guard) }
    }

    /// How many secrets have a lock entry (held or awaited).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Drop for SecretGuard {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        // Release first, then forget the entry if only the table holds it
        // (nobody else holds a clone, so nobody waits for it).
        drop(self.guard.take());
        if table.get(&self.name).is_some_and(|m| Arc::strong_count(m) == 1) {
            table.remove(&self.name);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serialises_one_name_and_forgets_idle_entries() {
        let locks = SecretLocks::default();
        let g = locks.lock("a").await;
        // Another name is independent.
        let h = locks.lock("b").await;
        drop(h);
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _g = locks.lock("a").await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(g);
        waiter.await.unwrap();
        assert_eq!(locks.len(), 0);
    }
}
