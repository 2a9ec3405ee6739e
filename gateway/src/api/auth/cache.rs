//! The in-memory API-key cache: positive look-ups (the key's row, active or not) live at most
//! `auth.key_cache_secs`, so a key revoked through another node (or the CLI) is refused here within
//! that bound; a revocation through this node evicts the entry at once. It also throttles
//! `last_used_at` writes to one per key per minute, made off the request path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::model::ApiKey;
use crate::store::Store;

/// `last_used_at` is written at most this often per key (and node).
pub const TOUCH_EVERY_MS: i64 = 60_000;

#[derive(Clone)]
struct Cached {
    key: ApiKey,
    fetched: Instant,
}

/// Keys already looked up, by token hash, each trusted for at most `ttl`.
#[derive(Clone)]
pub struct KeyCache {
    entries: Arc<RwLock<HashMap<String, Cached>>>,
    /// Key id -> when this node last wrote its `last_used_at` (unix ms).
    touched: Arc<Mutex<HashMap<String, i64>>>,
    ttl: Duration,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::new(Duration::from_secs(5))
    }
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        KeyCache {
            entries: Arc::default(),
            touched: Arc::default(),
            ttl,
        }
    }

    /// How long an entry is trusted.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The cached key for `hash` when it is younger than the TTL (a stale entry is dropped).
    pub fn get(&self, hash: &str) -> Option<ApiKey> {
        let fresh = {
            let map = self.entries.read();
            match map.get(hash) {
                None => return None,
                Some(c) if c.fetched.elapsed() < self.ttl => return Some(c.key.clone()),
                Some(_) => false,
            }
        };
        if !fresh {
            self.entries.write().remove(hash);
        }
        None
    }

    /// Remembers a key read from the store (a zero TTL remembers nothing).
    pub fn put(&self, hash: String, key: ApiKey) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.entries.write();
        // Drop stale entries now and then so the map stays as small as the set of live tokens.
        if map.len() >= 1024 {
            let ttl = self.ttl;
            map.retain(|_, c| c.fetched.elapsed() < ttl);
        }
        map.insert(
            hash,
            Cached {
                key,
                fetched: Instant::now(),
            },
        );
    }

    /// Forgets every entry of key `id` (revoked through this node: refused from now on).
    pub fn evict(&self, id: &str) {
        self.entries.write().retain(|_, c| c.key.id != id);
    }

    /// Whether this use of key `id` at `now` should be written as its `last_used_at` (the first
    /// use, then at most once per [`TOUCH_EVERY_MS`]); records it when so.
    pub fn should_touch(&self, id: &str, now: i64) -> bool {
        let mut t = self.touched.lock();
        match t.get(id) {
            Some(&last) if now - last < TOUCH_EVERY_MS => false,
            _ => {
                t.insert(id.to_string(), now);
                true
            }
        }
    }

    /// Writes `last_used_at` in the background: the request does not wait for it.
    pub fn touch_later(&self, store: Arc<dyn Store>, id: String, now: i64) {
        if !self.should_touch(&id, now) {
            return;
        }
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_key(&id, now).await {
                tracing::debug!(key = %id, error = %e, "recording the key's last use failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> ApiKey {
        ApiKey {
            id: id.into(),
            name: "k".into(),
            role: crate::model::Role::Admin,
            team_id: None,
            token_hash: "h".into(),
            created_at: 0,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            bootstrap: false,
        }
    }

    #[test]
    fn entries_expire_and_evict() {
        let c = KeyCache::new(Duration::from_millis(50));
        c.put("h1".into(), key("k1"));
        c.put("h2".into(), key("k2"));
        assert_eq!(c.get("h1").map(|k| k.id), Some("k1".into()));
        c.evict("k1");
        assert!(c.get("h1").is_none());
        assert!(c.get("h2").is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get("h2").is_none(), "no entry outlives the TTL");
        let none = KeyCache::new(Duration::ZERO);
        none.put("h".into(), key("k"));
        assert!(none.get("h").is_none());
    }

    #[test]
    fn touches_are_throttled_per_key() {
        let c = KeyCache::default();
        assert!(c.should_touch("k1", 1_000));
        assert!(!c.should_touch("k1", 1_000 + TOUCH_EVERY_MS - 1));
        assert!(c.should_touch("k2", 1_000));
        assert!(c.should_touch("k1", 1_000 + TOUCH_EVERY_MS));
    }
}
