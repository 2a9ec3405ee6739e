//! The in-memory snapshot of every webhook: the matcher built from them and a lookup by id.
//! Swapped whole whenever a webhook changes, so readers never lock against writers for long.

use std::collections::HashMap;
use std::sync::Arc;

use crate::matching::Matcher;
use crate::model::Webhook;
use crate::store::{Store, StoreResult};

/// One consistent view of the webhooks.
pub struct Snapshot {
    pub matcher: Matcher,
    pub by_id: HashMap<String, Arc<Webhook>>,
}

impl Snapshot {
    pub fn build(webhooks: Vec<Webhook>) -> Self {
        Self::with_matcher(Matcher::new(webhooks.clone()), webhooks)
    }

    fn with_matcher(matcher: Matcher, webhooks: Vec<Webhook>) -> Self {
        for bad in matcher.invalid() {
            tracing::warn!(webhook = %bad.webhook_id, error = %bad.error, "stored webhook does not compile; it is skipped");
        }
        let by_id = webhooks
            .into_iter()
            .map(|w| (w.id.clone(), Arc::new(w)))
            .collect();
        Snapshot { matcher, by_id }
    }
}

/// A handle to the current snapshot.
#[derive(Clone)]
pub struct Subscriptions {
    current: Arc<parking_lot::RwLock<Arc<Snapshot>>>,
    /// Serialises reloads so an older snapshot never replaces a newer one.
    reload_lock: Arc<tokio::sync::Mutex<()>>,
}

impl Subscriptions {
    pub fn new(webhooks: Vec<Webhook>) -> Self {
        Subscriptions {
            current: Arc::new(parking_lot::RwLock::new(Arc::new(Snapshot::build(
                webhooks,
            )))),
            reload_lock: Arc::default(),
        }
    }

    pub fn get(&self) -> Arc<Snapshot> {
        self.current.read().clone()
    }

    pub fn webhook(&self, id: &str) -> Option<Arc<Webhook>> {
        self.current.read().by_id.get(id).cloned()
    }

    /// Reloads every webhook from the store and swaps in a new snapshot.
    pub async fn reload(&self, store: &dyn Store) -> StoreResult<()> {
        let _guard = self.reload_lock.lock().await;
        let webhooks = store.all_webhooks().await?;
        // Reuses the compiled form of unchanged webhooks.
        let matcher = self.get().matcher.rebuild(webhooks.clone());
        let snap = Arc::new(Snapshot::with_matcher(matcher, webhooks));
        *self.current.write() = snap;
        Ok(())
    }
}
