//! [`SealedStore`]: the [`Store`] every part of the gateway uses. It wraps a backend and seals
//! the secret fields (`secrets::fields`) of webhooks and deliveries on the way in and opens them
//! on the way out, so the backends' SQL never sees a clear secret and the rest of the gateway
//! never sees a sealed one. Every other method delegates unchanged.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    AttemptRecord, Page, PruneCutoffs, PruneReport, Store, StoreError, StoreResult, WebhookQuery,
};
use super::{DeliveryStats, StatsQuery};
use crate::model::{
    ApiKey, Attempt, AttemptQuery, ConsoleSession, Delivery, DeliveryStatus, Event, IngestOutcome,
    NewEvent, PluginRecord, Scope, Webhook, WebhookHealth,
};
use crate::model::{MailDigest, MailOutcome, OutboxMail, PortalLink, PortalRedeem};
use crate::secrets::{Keyring, SecretsError, fields};

/// A backend with secrets sealed at rest.
pub struct SealedStore {
    inner: Arc<dyn Store>,
    ring: Keyring,
}

impl From<SecretsError> for StoreError {
    fn from(e: SecretsError) -> Self {
        StoreError::Internal(e.to_string())
    }
}

impl SealedStore {
    pub fn new(inner: Arc<dyn Store>, ring: Keyring) -> Self {
        SealedStore { inner, ring }
    }

    fn seal_webhook(&self, w: &Webhook) -> Webhook {
        let mut w = w.clone();
        let _ = fields::webhook::<()>(&mut w, &mut |s| Ok(self.ring.seal(s)));
        w
    }

    fn open_webhook(&self, mut w: Webhook) -> StoreResult<Webhook> {
        fields::webhook(&mut w, &mut |s| self.ring.open(s))?;
        Ok(w)
    }

    fn seal_delivery(&self, d: &mut Delivery) {
        let _ = fields::delivery::<()>(d, &mut |s| Ok(self.ring.seal(s)));
    }

    fn open_delivery(&self, mut d: Delivery) -> StoreResult<Delivery> {
        fields::delivery(&mut d, &mut |s| self.ring.open(s))?;
        Ok(d)
    }

    fn open_deliveries(&self, ds: Vec<Delivery>) -> StoreResult<Vec<Delivery>> {
        ds.into_iter().map(|d| self.open_delivery(d)).collect()
    }
}

#[async_trait]
impl Store for SealedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    async fn write_probe(&self) -> StoreResult<()> {
        self.inner.write_probe().await
    }

    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()> {
        self.inner.insert_api_key(key).await
    }
    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.inner.api_key_by_hash(token_hash).await
    }
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.inner.list_api_keys().await
    }
    async fn revoke_api_key(&self, id: &str, now: i64) -> StoreResult<Option<ApiKey>> {
        self.inner.revoke_api_key(id, now).await
    }
    async fn touch_api_key(&self, id: &str, at: i64) -> StoreResult<()> {
        self.inner.touch_api_key(id, at).await
    }
    async fn insert_console_session(&self, session: ConsoleSession) -> StoreResult<()> {
        self.inner.insert_console_session(session).await
    }
    async fn console_session(&self, id_hash: &str) -> StoreResult<Option<ConsoleSession>> {
        self.inner.console_session(id_hash).await
    }
    async fn touch_console_session(&self, id_hash: &str, at: i64) -> StoreResult<()> {
        self.inner.touch_console_session(id_hash, at).await
    }
    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()> {
        self.inner.delete_console_session(id_hash).await
    }

    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        self.inner.insert_webhook(&self.seal_webhook(webhook)).await
    }
    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        self.inner.update_webhook(&self.seal_webhook(webhook)).await
    }
    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        self.inner.delete_webhook(id).await
    }
    async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        self.inner
            .get_webhook(id)
            .await?
            .map(|w| self.open_webhook(w))
            .transpose()
    }
    async fn list_webhooks(&self, query: &WebhookQuery) -> StoreResult<Page<Webhook>> {
        let page = self.inner.list_webhooks(query).await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|w| self.open_webhook(w))
                .collect::<StoreResult<_>>()?,
            total: page.total,
        })
    }
    async fn all_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.inner
            .all_webhooks()
            .await?
            .into_iter()
            .map(|w| self.open_webhook(w))
            .collect()
    }
    async fn count_webhooks_in_scope(&self, scope: &Scope) -> StoreResult<u64> {
        self.inner.count_webhooks_in_scope(scope).await
    }
    async fn webhook_health(&self, id: &str) -> StoreResult<WebhookHealth> {
        self.inner.webhook_health(id).await
    }

    async fn ingest(&self, mut new: NewEvent) -> StoreResult<IngestOutcome> {
        for d in &mut new.deliveries {
            self.seal_delivery(d);
        }
        self.inner.ingest(new).await
    }
    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>> {
        self.inner.get_event(id).await
    }
    async fn get_events(&self, ids: &[String]) -> StoreResult<Vec<Event>> {
        self.inner.get_events(ids).await
    }
    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        self.inner
            .get_delivery(id)
            .await?
            .map(|d| self.open_delivery(d))
            .transpose()
    }
    async fn deliveries_for_event(&self, event_id: &str) -> StoreResult<Vec<Delivery>> {
        self.open_deliveries(self.inner.deliveries_for_event(event_id).await?)
    }
    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        self.open_deliveries(self.inner.claim_due(now, lease_until, limit).await?)
    }
    async fn next_due_at(&self) -> StoreResult<Option<i64>> {
        self.inner.next_due_at().await
    }
    async fn record_attempts(
        &self,
        mut records: Vec<AttemptRecord>,
    ) -> StoreResult<Vec<(String, WebhookHealth)>> {
        for r in &mut records {
            if let Some(req) = &mut r.request {
                let _ = fields::request::<()>(req, &mut |s| Ok(self.ring.seal(s)));
            }
        }
        self.inner.record_attempts(records).await
    }
    async fn set_webhook_enabled(
        &self,
        id: &str,
        enabled: bool,
        reason: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        self.inner
            .set_webhook_enabled(id, enabled, reason, now)
            .await
    }
    async fn disable_webhook(
        &self,
        id: &str,
        reason: &str,
        now: i64,
        notice: Option<&OutboxMail>,
    ) -> StoreResult<bool> {
        self.inner.disable_webhook(id, reason, now, notice).await
    }
    async fn requeue_delivery(&self, id: &str, now: i64) -> StoreResult<()> {
        self.inner.requeue_delivery(id, now).await
    }
    async fn requeue_failed_since(
        &self,
        webhook_id: &str,
        since: i64,
        now: i64,
    ) -> StoreResult<u64> {
        self.inner
            .requeue_failed_since(webhook_id, since, now)
            .await
    }
    async fn fail_pending_for_webhook(
        &self,
        webhook_id: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<u64> {
        self.inner
            .fail_pending_for_webhook(webhook_id, reason, now)
            .await
    }
    async fn list_attempts(&self, query: &AttemptQuery) -> StoreResult<Page<Attempt>> {
        self.inner.list_attempts(query).await
    }
    async fn delivery_counts(&self) -> StoreResult<Vec<(DeliveryStatus, u64)>> {
        self.inner.delivery_counts().await
    }

    async fn prune_batch(&self, cutoffs: PruneCutoffs, batch: usize) -> StoreResult<PruneReport> {
        self.inner.prune_batch(cutoffs, batch).await
    }
    async fn reclaim_space(&self) -> StoreResult<()> {
        self.inner.reclaim_space().await
    }
    async fn disk_usage(&self) -> StoreResult<Option<u64>> {
        self.inner.disk_usage().await
    }

    async fn put_plugin(&self, record: &PluginRecord, component: &[u8]) -> StoreResult<()> {
        self.inner.put_plugin(record, component).await
    }
    async fn list_plugins(&self) -> StoreResult<Vec<PluginRecord>> {
        self.inner.list_plugins().await
    }
    async fn get_plugin(&self, name: &str, version: &str) -> StoreResult<Option<PluginRecord>> {
        self.inner.get_plugin(name, version).await
    }
    async fn plugin_bytes(&self, sha256: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.plugin_bytes(sha256).await
    }
    async fn delete_plugin(&self, name: &str, version: &str) -> StoreResult<()> {
        self.inner.delete_plugin(name, version).await
    }

    async fn insert_portal_link(&self, link: &PortalLink) -> StoreResult<()> {
        self.inner.insert_portal_link(link).await
    }
    async fn redeem_portal_link(&self, token_hash: &str, now: i64) -> StoreResult<PortalRedeem> {
        self.inner.redeem_portal_link(token_hash, now).await
    }
    async fn delivery_stats(&self, query: &StatsQuery) -> StoreResult<DeliveryStats> {
        self.inner.delivery_stats(query).await
    }

    async fn enqueue_mail(&self, mail: &OutboxMail) -> StoreResult<()> {
        self.inner.enqueue_mail(mail).await
    }
    async fn due_mail_digests(&self, now: i64, limit: usize) -> StoreResult<Vec<MailDigest>> {
        self.inner.due_mail_digests(now, limit).await
    }
    async fn close_mail_digest(&self, digest: &MailDigest, mail: &OutboxMail) -> StoreResult<bool> {
        self.inner.close_mail_digest(digest, mail).await
    }
    async fn claim_mail(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>> {
        self.inner.claim_mail(now, lease_until, limit).await
    }
    async fn finish_mail(&self, id: &str, outcome: &MailOutcome, now: i64) -> StoreResult<()> {
        self.inner.finish_mail(id, outcome, now).await
    }
}
