//! The PostgreSQL store: the scale-out sibling of [`super::sqlite::SqliteStore`], with the same
//! semantics (the shared suite in `store::suite` runs against both).
//!
//! - **Several nodes, one queue.** `claim_due` locks due rows with `FOR UPDATE SKIP LOCKED` and
//!   leases them: a claimed delivery's `next_attempt_at` is its lease end, so a dead node's work
//!   becomes due again when the lease runs out, exactly as in SQLite.
//! - **Idempotency across nodes.** The key is inserted with `ON CONFLICT DO NOTHING` in the same
//!   transaction as the event and its deliveries; a loser then reads the winner's event id (a new
//!   statement sees the winner's commit under READ COMMITTED, after the insert waited for it).
//! - **Group commit.** Concurrent ingests are queued to a few writer tasks that fold whatever is
//!   waiting into one transaction of four set-wise statements (arrays `UNNEST`ed server-side), so
//!   one commit and a few round trips serve the whole batch. Keys are claimed in sorted order, so
//!   two nodes' batches cannot deadlock. If one ingest in a batch is bad, the batch is retried one
//!   ingest per transaction so only that one fails.
//! - **A dead database is seen quickly.** Pool wait/create/recycle and TCP connect time out after a
//!   few seconds and every operation has an overall deadline; connection-level failures map to
//!   [`StoreError::Unavailable`] (the API answers 503). Every write is one transaction, so a failure
//!   never leaves half an event behind.
//! - **Schemas.** `connect` honours a `search_path` given in the URL's `options`
//!   (`?options=-csearch_path%3Dname`); [`PostgresStoreBuilder::schema`] sets it for every pooled
//!   connection. Either way the schema is created if missing and migrations run inside it, which
//!   is how tests isolate themselves.

mod connect;
mod events;
mod ingest;
mod keys;
mod mail;
mod plugins;
mod portal;
mod queue;
mod retention;
mod sessions;
mod stats;
mod webhooks;

pub use connect::PostgresStoreBuilder;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::mpsc;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{
    AttemptRecord, Page, PruneCutoffs, PruneReport, Store, StoreError, StoreResult, WebhookQuery,
};
use super::{DeliveryStats, StatsQuery};
use crate::model::{
    ApiKey, Attempt, AttemptQuery, ConsoleSession, Delivery, DeliveryStatus, Event, IngestOutcome,
    NewEvent, PluginRecord, Scope, Webhook, WebhookHealth,
};
use crate::model::{MailDigest, MailOutcome, OutboxMail, PortalLink, PortalRedeem};
use ingest::IngestJob;

/// The PostgreSQL implementation of [`Store`].
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    ingest: mpsc::Sender<IngestJob>,
    op_timeout: Duration,
}

const DELIVERY_COLS: &str = "id, event_id, webhook_id, url, status, attempts, next_attempt_at, lease_until, request, last_error, last_status_code, created_at, updated_at, stream";

/// Parses the first column of each row as a JSON document.
fn docs<T: serde::de::DeserializeOwned>(rows: &[Row]) -> StoreResult<Vec<T>> {
    rows.iter()
        .map(|r| Ok(serde_json::from_str(r.try_get::<_, &str>(0)?)?))
        .collect()
}

impl PostgresStore {
    /// Connects with the defaults (see [`PostgresStoreBuilder`]) and applies migrations.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::builder(url).connect().await
    }

    /// Connects with every connection's `search_path` set to `schema` (created if missing).
    pub async fn connect_with_schema(url: &str, schema: &str) -> StoreResult<Self> {
        Self::builder(url).schema(schema).connect().await
    }

    /// A builder for pool size, timeouts and schema.
    pub fn builder(url: &str) -> PostgresStoreBuilder {
        PostgresStoreBuilder::new(url)
    }

    /// The connection pool (for tools such as `store copy` that move rows in bulk).
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Applies any migrations not yet applied (connecting already did); returns their versions.
    pub async fn migrate(&self) -> StoreResult<Vec<i64>> {
        self.timed(async {
            let mut client = self.inner.pool.get().await?;
            connect::migrate(&mut client).await
        })
        .await
    }

    /// Runs `fut` under the operation deadline; running out of time means "unavailable".
    async fn timed<T>(&self, fut: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        tokio::time::timeout(self.inner.op_timeout, fut)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable(format!(
                    "postgres: no answer within {:?}",
                    self.inner.op_timeout
                )))
            })
    }

    /// Runs `f` with a pooled connection, under the operation deadline.
    async fn with_client<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: AsyncFnOnce(&deadpool_postgres::Client) -> StoreResult<T>,
    {
        self.timed(async {
            let client = self.inner.pool.get().await?;
            f(&client).await
        })
        .await
    }

    /// Runs `f` in a transaction, committed when it returns `Ok` (rolled back otherwise).
    async fn in_tx<T, F>(&self, f: F) -> StoreResult<T>
    where
        F: AsyncFnOnce(&deadpool_postgres::Transaction<'_>) -> StoreResult<T>,
    {
        self.timed(async {
            let mut client = self.inner.pool.get().await?;
            let tx = client.transaction().await?;
            let out = f(&tx).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        self.with_client(async |c| Ok(c.query(&c.prepare_cached(sql).await?, params).await?))
            .await
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        self.with_client(async |c| Ok(c.query_opt(&c.prepare_cached(sql).await?, params).await?))
            .await
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        self.with_client(async |c| Ok(c.execute(&c.prepare_cached(sql).await?, params).await?))
            .await
    }

    async fn count(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let rows = self.query(sql, params).await?;
        Ok(rows
            .first()
            .map(|r| r.try_get::<_, i64>(0))
            .transpose()?
            .unwrap_or(0) as u64)
    }

    async fn doc_by<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<T>> {
        Ok(docs(
            &self
                .query_opt(sql, params)
                .await?
                .into_iter()
                .collect::<Vec<_>>(),
        )?
        .pop())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        self.with_client(async |c| Ok(c.simple_query("SELECT 1").await.map(|_| ())?))
            .await
    }

    async fn write_probe(&self) -> StoreResult<()> {
        self.execute(
            "UPDATE schema_migrations SET applied_at = applied_at WHERE version = (SELECT MAX(version) FROM schema_migrations)",
            &[],
        )
        .await
        .map(drop)
    }

    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()> {
        keys::insert_api_key(self, key).await
    }

    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        keys::api_key_by_hash(self, token_hash).await
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        keys::list_api_keys(self).await
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> StoreResult<Option<ApiKey>> {
        keys::revoke_api_key(self, id, now).await
    }

    async fn touch_api_key(&self, id: &str, at: i64) -> StoreResult<()> {
        keys::touch_api_key(self, id, at).await
    }

    async fn insert_console_session(&self, session: ConsoleSession) -> StoreResult<()> {
        sessions::insert(self, session).await
    }
    async fn console_session(&self, id_hash: &str) -> StoreResult<Option<ConsoleSession>> {
        sessions::get(self, id_hash).await
    }
    async fn touch_console_session(&self, id_hash: &str, at: i64) -> StoreResult<()> {
        sessions::touch(self, id_hash, at).await
    }
    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()> {
        sessions::delete(self, id_hash).await
    }

    async fn insert_webhook(&self, w: &Webhook) -> StoreResult<()> {
        webhooks::insert_webhook(self, w).await
    }

    async fn update_webhook(&self, w: &Webhook) -> StoreResult<()> {
        webhooks::update_webhook(self, w).await
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        webhooks::delete_webhook(self, id).await
    }

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        webhooks::get_webhook(self, id).await
    }

    async fn list_webhooks(&self, q: &WebhookQuery) -> StoreResult<Page<Webhook>> {
        webhooks::list_webhooks(self, q).await
    }

    async fn all_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        webhooks::all_webhooks(self).await
    }

    async fn count_webhooks_in_scope(&self, scope: &Scope) -> StoreResult<u64> {
        webhooks::count_webhooks_in_scope(self, scope).await
    }

    async fn webhook_health(&self, id: &str) -> StoreResult<WebhookHealth> {
        webhooks::webhook_health(self, id).await
    }

    async fn set_webhook_enabled(
        &self,
        id: &str,
        enabled: bool,
        reason: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        webhooks::set_webhook_enabled(self, id, enabled, reason, now).await
    }

    async fn ingest(&self, new: NewEvent) -> StoreResult<IngestOutcome> {
        events::ingest(self, new).await
    }

    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>> {
        events::get_event(self, id).await
    }

    async fn get_events(&self, ids: &[String]) -> StoreResult<Vec<Event>> {
        events::get_events(self, ids).await
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        queue::get_delivery(self, id).await
    }

    async fn deliveries_for_event(&self, event_id: &str) -> StoreResult<Vec<Delivery>> {
        queue::deliveries_for_event(self, event_id).await
    }

    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        queue::claim_due(self, now, lease_until, limit).await
    }

    async fn next_due_at(&self) -> StoreResult<Option<i64>> {
        queue::next_due_at(self).await
    }

    async fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
    ) -> StoreResult<Vec<(String, WebhookHealth)>> {
        queue::record_attempts(self, records).await
    }

    async fn disable_webhook(
        &self,
        id: &str,
        reason: &str,
        now: i64,
        notice: Option<&OutboxMail>,
    ) -> StoreResult<bool> {
        webhooks::disable_webhook(self, id, reason, now, notice).await
    }

    async fn requeue_delivery(&self, id: &str, now: i64) -> StoreResult<()> {
        queue::requeue_delivery(self, id, now).await
    }

    async fn requeue_failed_since(
        &self,
        webhook_id: &str,
        since: i64,
        now: i64,
    ) -> StoreResult<u64> {
        queue::requeue_failed_since(self, webhook_id, since, now).await
    }

    async fn fail_pending_for_webhook(
        &self,
        webhook_id: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<u64> {
        queue::fail_pending_for_webhook(self, webhook_id, reason, now).await
    }

    async fn list_attempts(&self, q: &AttemptQuery) -> StoreResult<Page<Attempt>> {
        queue::list_attempts(self, q).await
    }

    async fn delivery_counts(&self) -> StoreResult<Vec<(DeliveryStatus, u64)>> {
        queue::delivery_counts(self).await
    }

    async fn prune_batch(&self, cutoffs: PruneCutoffs, batch: usize) -> StoreResult<PruneReport> {
        retention::prune_batch(self, cutoffs, batch).await
    }

    /// PostgreSQL's autovacuum makes the space of deleted rows reusable by itself.
    async fn reclaim_space(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn disk_usage(&self) -> StoreResult<Option<u64>> {
        Ok(None)
    }

    async fn put_plugin(&self, rec: &PluginRecord, component: &[u8]) -> StoreResult<()> {
        plugins::put_plugin(self, rec, component).await
    }

    async fn list_plugins(&self) -> StoreResult<Vec<PluginRecord>> {
        plugins::list_plugins(self).await
    }

    async fn get_plugin(&self, name: &str, version: &str) -> StoreResult<Option<PluginRecord>> {
        plugins::get_plugin(self, name, version).await
    }

    async fn plugin_bytes(&self, sha256: &str) -> StoreResult<Option<Vec<u8>>> {
        plugins::plugin_bytes(self, sha256).await
    }

    async fn delete_plugin(&self, name: &str, version: &str) -> StoreResult<()> {
        plugins::delete_plugin(self, name, version).await
    }

    async fn insert_portal_link(&self, link: &PortalLink) -> StoreResult<()> {
        portal::insert_portal_link(self, link).await
    }
    async fn redeem_portal_link(&self, token_hash: &str, now: i64) -> StoreResult<PortalRedeem> {
        portal::redeem_portal_link(self, token_hash, now).await
    }
    async fn delivery_stats(&self, query: &StatsQuery) -> StoreResult<DeliveryStats> {
        stats::delivery_stats(self, query).await
    }

    async fn enqueue_mail(&self, mail: &OutboxMail) -> StoreResult<()> {
        mail::enqueue_mail(self, mail).await
    }

    async fn due_mail_digests(&self, now: i64, limit: usize) -> StoreResult<Vec<MailDigest>> {
        mail::due_mail_digests(self, now, limit).await
    }

    async fn close_mail_digest(&self, digest: &MailDigest, mail: &OutboxMail) -> StoreResult<bool> {
        mail::close_mail_digest(self, digest, mail).await
    }

    async fn claim_mail(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>> {
        mail::claim_mail(self, now, lease_until, limit).await
    }

    async fn finish_mail(&self, id: &str, outcome: &MailOutcome, now: i64) -> StoreResult<()> {
        mail::finish_mail(self, id, outcome, now).await
    }
}
