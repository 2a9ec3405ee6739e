//! A [`Store`] wrapper that watches writes: each failed write (unavailable or rejected) counts in
//! `gateway_store_write_failures_total` and marks the store as rejecting writes until a write
//! succeeds again, which is what `/readyz` reads (a full disk leaves reads working, so a ping
//! alone would stay ready). Reads pass straight through.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    AttemptRecord, Page, PruneCutoffs, PruneReport, Store, StoreError, StoreResult, WebhookQuery,
};
use super::{DeliveryStats, StatsQuery};
use crate::metrics::Metrics;
use crate::model::{
    ApiKey, Attempt, AttemptQuery, ConsoleSession, Delivery, DeliveryStatus, Event, IngestOutcome,
    MailDigest, MailOutcome, NewEvent, OutboxMail, PluginRecord, Scope, Webhook, WebhookHealth,
};
use crate::model::{PortalLink, PortalRedeem};

/// Wraps a store; see the module docs.
pub struct ObservedStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl ObservedStore {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        ObservedStore { inner, metrics }
    }

    /// Notes the outcome of a write and passes it on.
    fn seen<T>(&self, out: StoreResult<T>) -> StoreResult<T> {
        match &out {
            Ok(_) => self.metrics.write_health.succeeded(),
            Err(e @ (StoreError::Unavailable(_) | StoreError::Internal(_))) => {
                self.metrics.write_failed(&e.to_string())
            }
            // Not found / conflict are answers about the data, not a failing store.
            Err(_) => self.metrics.write_health.succeeded(),
        }
        out
    }
}

#[async_trait]
impl Store for ObservedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    async fn write_probe(&self) -> StoreResult<()> {
        let out = self.inner.write_probe().await;
        self.seen(out)
    }
    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()> {
        let out = self.inner.insert_api_key(key).await;
        self.seen(out)
    }
    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.inner.api_key_by_hash(token_hash).await
    }
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.inner.list_api_keys().await
    }
    async fn revoke_api_key(&self, id: &str, now: i64) -> StoreResult<Option<ApiKey>> {
        let out = self.inner.revoke_api_key(id, now).await;
        self.seen(out)
    }
    async fn touch_api_key(&self, id: &str, at: i64) -> StoreResult<()> {
        let out = self.inner.touch_api_key(id, at).await;
        self.seen(out)
    }
    async fn insert_console_session(&self, session: ConsoleSession) -> StoreResult<()> {
        let out = self.inner.insert_console_session(session).await;
        self.seen(out)
    }
    async fn console_session(&self, id_hash: &str) -> StoreResult<Option<ConsoleSession>> {
        self.inner.console_session(id_hash).await
    }
    async fn touch_console_session(&self, id_hash: &str, at: i64) -> StoreResult<()> {
        let out = self.inner.touch_console_session(id_hash, at).await;
        self.seen(out)
    }
    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()> {
        let out = self.inner.delete_console_session(id_hash).await;
        self.seen(out)
    }
    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let out = self.inner.insert_webhook(webhook).await;
        self.seen(out)
    }
    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        let out = self.inner.update_webhook(webhook).await;
        self.seen(out)
    }
    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        let out = self.inner.delete_webhook(id).await;
        self.seen(out)
    }
    async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        self.inner.get_webhook(id).await
    }
    async fn list_webhooks(&self, query: &WebhookQuery) -> StoreResult<Page<Webhook>> {
        self.inner.list_webhooks(query).await
    }
    async fn all_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.inner.all_webhooks().await
    }
    async fn count_webhooks_in_scope(&self, scope: &Scope) -> StoreResult<u64> {
        self.inner.count_webhooks_in_scope(scope).await
    }
    async fn webhook_health(&self, id: &str) -> StoreResult<WebhookHealth> {
        self.inner.webhook_health(id).await
    }
    async fn ingest(&self, new: NewEvent) -> StoreResult<IngestOutcome> {
        let out = self.inner.ingest(new).await;
        self.seen(out)
    }
    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>> {
        self.inner.get_event(id).await
    }
    async fn get_events(&self, ids: &[String]) -> StoreResult<Vec<Event>> {
        self.inner.get_events(ids).await
    }
    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        self.inner.get_delivery(id).await
    }
    async fn deliveries_for_event(&self, event_id: &str) -> StoreResult<Vec<Delivery>> {
        self.inner.deliveries_for_event(event_id).await
    }
    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        // A claim that found nothing wrote nothing: it proves nothing about writes.
        match self.inner.claim_due(now, lease_until, limit).await {
            Ok(v) if v.is_empty() => Ok(v),
            out => self.seen(out),
        }
    }
    async fn next_due_at(&self) -> StoreResult<Option<i64>> {
        self.inner.next_due_at().await
    }
    async fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
    ) -> StoreResult<Vec<(String, WebhookHealth)>> {
        let out = self.inner.record_attempts(records).await;
        self.seen(out)
    }
    async fn set_webhook_enabled(
        &self,
        id: &str,
        enabled: bool,
        reason: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        let out = self
            .inner
            .set_webhook_enabled(id, enabled, reason, now)
            .await;
        self.seen(out)
    }
    async fn disable_webhook(
        &self,
        id: &str,
        reason: &str,
        now: i64,
        notice: Option<&OutboxMail>,
    ) -> StoreResult<bool> {
        let out = self.inner.disable_webhook(id, reason, now, notice).await;
        self.seen(out)
    }
    async fn requeue_delivery(&self, id: &str, now: i64) -> StoreResult<()> {
        let out = self.inner.requeue_delivery(id, now).await;
        self.seen(out)
    }
    async fn requeue_failed_since(
        &self,
        webhook_id: &str,
        since: i64,
        now: i64,
    ) -> StoreResult<u64> {
        let out = self
            .inner
            .requeue_failed_since(webhook_id, since, now)
            .await;
        self.seen(out)
    }
    async fn fail_pending_for_webhook(
        &self,
        webhook_id: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<u64> {
        let out = self
            .inner
            .fail_pending_for_webhook(webhook_id, reason, now)
            .await;
        self.seen(out)
    }
    async fn list_attempts(&self, query: &AttemptQuery) -> StoreResult<Page<Attempt>> {
        self.inner.list_attempts(query).await
    }
    async fn delivery_counts(&self) -> StoreResult<Vec<(DeliveryStatus, u64)>> {
        self.inner.delivery_counts().await
    }
    async fn prune_batch(&self, cutoffs: PruneCutoffs, batch: usize) -> StoreResult<PruneReport> {
        let out = self.inner.prune_batch(cutoffs, batch).await;
        self.seen(out)
    }
    async fn reclaim_space(&self) -> StoreResult<()> {
        let out = self.inner.reclaim_space().await;
        self.seen(out)
    }
    async fn disk_usage(&self) -> StoreResult<Option<u64>> {
        self.inner.disk_usage().await
    }
    async fn put_plugin(&self, record: &PluginRecord, component: &[u8]) -> StoreResult<()> {
        let out = self.inner.put_plugin(record, component).await;
        self.seen(out)
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
        let out = self.inner.delete_plugin(name, version).await;
        self.seen(out)
    }

    async fn insert_portal_link(&self, link: &PortalLink) -> StoreResult<()> {
        let out = self.inner.insert_portal_link(link).await;
        self.seen(out)
    }
    async fn redeem_portal_link(&self, token_hash: &str, now: i64) -> StoreResult<PortalRedeem> {
        let out = self.inner.redeem_portal_link(token_hash, now).await;
        self.seen(out)
    }
    async fn delivery_stats(&self, query: &StatsQuery) -> StoreResult<DeliveryStats> {
        self.inner.delivery_stats(query).await
    }
    async fn enqueue_mail(&self, mail: &OutboxMail) -> StoreResult<()> {
        let out = self.inner.enqueue_mail(mail).await;
        self.seen(out)
    }
    async fn due_mail_digests(&self, now: i64, limit: usize) -> StoreResult<Vec<MailDigest>> {
        self.inner.due_mail_digests(now, limit).await
    }
    async fn close_mail_digest(&self, digest: &MailDigest, mail: &OutboxMail) -> StoreResult<bool> {
        let out = self.inner.close_mail_digest(digest, mail).await;
        self.seen(out)
    }
    async fn claim_mail(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>> {
        let out = self.inner.claim_mail(now, lease_until, limit).await;
        self.seen(out)
    }
    async fn finish_mail(&self, id: &str, outcome: &MailOutcome, now: i64) -> StoreResult<()> {
        let out = self.inner.finish_mail(id, outcome, now).await;
        self.seen(out)
    }
}
