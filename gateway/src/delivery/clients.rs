//! The engine's HTTP clients: the shared pair every webhook uses, and one pair per webhook that
//! presents a TLS client certificate (mTLS). Every client is built the same way — the outbound
//! guard as resolver, no redirects, the same timeouts, the operator's extra root certificates
//! (`delivery.extra_root_certificates`) — and differs only by the identity it presents.
//!
//! Per-webhook clients are cached under the webhook id with the fingerprint of its certificate
//! and key: a changed certificate builds a new client; the cache holds at most
//! [`MAX_CACHED`] webhooks (the least recently used leaves first).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::attempt::Clients;
use super::guard::OutboundGuard;
use crate::model::Webhook;

/// Most webhooks whose mTLS clients are kept.
pub const MAX_CACHED: usize = 256;

/// How every client is built.
#[derive(Clone)]
struct Recipe {
    guard: OutboundGuard,
    roots: Vec<reqwest::Certificate>,
    workers: usize,
}

impl Recipe {
    fn builder(&self) -> reqwest::ClientBuilder {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .dns_resolver(Arc::new(self.guard.clone()))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("webhook-gateway/", env!("CARGO_PKG_VERSION")));
        for c in &self.roots {
            b = b.add_root_certificate(c.clone());
        }
        b
    }

    fn build(&self, identity: Option<reqwest::Identity>) -> reqwest::Result<Clients> {
        let with = |b: reqwest::ClientBuilder| match &identity {
            Some(i) => b.identity(i.clone()),
            None => b,
        };
        Ok(Clients {
            pooled: with(self.builder())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(self.workers)
                .build()?,
            fresh: with(self.builder()).pool_max_idle_per_host(0).build()?,
        })
    }
}

/// A cached client pair and when it was last used (a counter, for eviction).
struct Cached {
    fingerprint: String,
    clients: Clients,
    used: u64,
}

/// The shared clients and the per-webhook mTLS ones.
pub struct ClientSet {
    recipe: Recipe,
    shared: Clients,
    per_webhook: Mutex<(u64, HashMap<String, Cached>)>,
}

/// Reads the PEM files of `delivery.extra_root_certificates` (comma-separated paths).
pub fn load_roots(paths: &str) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let mut out = Vec::new();
    for path in paths.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let pem = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!("delivery.extra_root_certificates: cannot read {path}: {e}")
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            anyhow::anyhow!("delivery.extra_root_certificates: {path} is not PEM certificates: {e}")
        })?;
        if certs.is_empty() {
            anyhow::bail!("delivery.extra_root_certificates: {path} holds no PEM certificate");
        }
        out.extend(certs);
    }
    Ok(out)
}

impl ClientSet {
    pub fn new(
        guard: OutboundGuard,
        roots: Vec<reqwest::Certificate>,
        workers: usize,
    ) -> anyhow::Result<Self> {
        let recipe = Recipe {
            guard,
            roots,
            workers,
        };
        Ok(ClientSet {
            shared: recipe.build(None)?,
            recipe,
            per_webhook: Mutex::new((0, HashMap::new())),
        })
    }

    /// The clients for `webhook`'s attempts; an error (its certificate cannot make a client)
    /// says why, without any key material.
    pub fn for_webhook(&self, webhook: &Webhook) -> Result<Clients, String> {
        let Some(cert) = &webhook.client_certificate else {
            return Ok(self.shared.clone());
        };
        let fingerprint = cert.fingerprint();
        let mut guard = self.per_webhook.lock();
        let (tick, map) = &mut *guard;
        *tick += 1;
        if let Some(c) = map.get_mut(&webhook.id)
            && c.fingerprint == fingerprint
        {
            c.used = *tick;
            return Ok(c.clients.clone());
        }
        let identity = reqwest::Identity::from_pem(cert.identity_pem().as_bytes())
            .map_err(|e| format!("client_certificate: unusable certificate or key: {e}"))?;
        let clients = self
            .recipe
            .build(Some(identity))
            .map_err(|e| format!("client_certificate: cannot build a TLS client: {e}"))?;
        if map.len() >= MAX_CACHED && !map.contains_key(&webhook.id) {
            let oldest = map
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(
            webhook.id.clone(),
            Cached {
                fingerprint,
                clients: clients.clone(),
                used: *tick,
            },
        );
        Ok(clients)
    }

    /// How many webhooks have a cached mTLS client.
    pub fn cached(&self) -> usize {
        self.per_webhook.lock().1.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClientCertificate;

    fn cert(cn: &str) -> ClientCertificate {
        let mut p = rcgen::CertificateParams::new(vec!["client.test".to_string()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let c = p.self_signed(&key).unwrap();
        ClientCertificate {
            certificate: c.pem(),
            private_key: key.serialize_pem(),
        }
    }

    fn set() -> ClientSet {
        ClientSet::new(OutboundGuard::new(Vec::new()), Vec::new(), 2).unwrap()
    }

    fn fingerprint_of(s: &ClientSet, id: &str) -> Option<String> {
        s.per_webhook
            .lock()
            .1
            .get(id)
            .map(|c| c.fingerprint.clone())
    }

    #[test]
    fn a_webhook_without_a_certificate_uses_the_shared_clients() {
        let s = set();
        let w = Webhook {
            id: "wh_plain".into(),
            ..Webhook::default()
        };
        s.for_webhook(&w).unwrap();
        assert_eq!(s.cached(), 0);
    }

    #[test]
    fn the_client_is_reused_until_the_certificate_changes() {
        let s = set();
        let first = cert("one");
        let mut w = Webhook {
            id: "wh_a".into(),
            client_certificate: Some(first.clone()),
            ..Webhook::default()
        };
        s.for_webhook(&w).unwrap();
        s.for_webhook(&w).unwrap();
        assert_eq!(s.cached(), 1);
        assert_eq!(fingerprint_of(&s, "wh_a"), Some(first.fingerprint()));
        let second = cert("two");
        w.client_certificate = Some(second.clone());
        s.for_webhook(&w).unwrap();
        assert_eq!(s.cached(), 1, "the old client is replaced, not kept beside");
        assert_eq!(fingerprint_of(&s, "wh_a"), Some(second.fingerprint()));
        assert_ne!(first.fingerprint(), second.fingerprint());
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_least_recently_used() {
        let s = set();
        let c = cert("many");
        let hook = |i: usize| Webhook {
            id: format!("wh_{i}"),
            client_certificate: Some(c.clone()),
            ..Webhook::default()
        };
        for i in 0..MAX_CACHED {
            s.for_webhook(&hook(i)).unwrap();
        }
        // Webhook 0 is used again, so webhook 1 is now the least recently used.
        s.for_webhook(&hook(0)).unwrap();
        s.for_webhook(&hook(MAX_CACHED)).unwrap();
        assert_eq!(s.cached(), MAX_CACHED);
        assert!(fingerprint_of(&s, "wh_0").is_some());
        assert!(fingerprint_of(&s, "wh_1").is_none());
        assert!(fingerprint_of(&s, &format!("wh_{MAX_CACHED}")).is_some());
    }

    #[test]
    fn an_unusable_key_is_an_error_naming_the_field_without_the_key() {
        let s = set();
        let mut c = cert("bad");
        c.private_key = "-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n".into();
        let w = Webhook {
            id: "wh_bad".into(),
            client_certificate: Some(c),
            ..Webhook::default()
        };
        let Err(e) = s.for_webhook(&w) else {
            panic!("an unusable key made a client");
        };
        assert!(e.starts_with("client_certificate:"), "{e}");
        assert!(!e.contains("QUJD"), "{e}");
    }

    #[test]
    fn extra_roots_are_read_and_a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, cert("ca").certificate).unwrap();
        let p = path.display().to_string();
        assert_eq!(load_roots(&format!(" {p} ,{p}")).unwrap().len(), 2);
        assert!(load_roots("").unwrap().is_empty());
        let e = load_roots("/nonexistent/ca.pem").unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        assert!(load_roots(&junk.display().to_string()).is_err());
    }
}
