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
mod ingest;

pub use connect::PostgresStoreBuilder;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{AttemptRecord, HealthChange, Page, Store, StoreError, StoreResult, WebhookQuery};
use crate::model::{
    ApiKey, Attempt, AttemptQuery, Delivery, DeliveryStatus, Event, IngestOutcome, NewEvent,
    PluginRecord, Role, Scope, Webhook, WebhookHealth,
};
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

const DELIVERY_COLS: &str = "id, event_id, webhook_id, url, status, attempts, next_attempt_at, lease_until, request, last_error, last_status_code, created_at, updated_at";

fn delivery_from_row(r: &Row) -> StoreResult<Delivery> {
    let status: String = r.try_get("status")?;
    let request: Option<String> = r.try_get("request")?;
    Ok(Delivery {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        webhook_id: r.try_get("webhook_id")?,
        url: r.try_get("url")?,
        status: DeliveryStatus::parse(&status).unwrap_or(DeliveryStatus::Pending),
        attempts: r.try_get::<_, i64>("attempts")? as u32,
        next_attempt_at: r.try_get("next_attempt_at")?,
        lease_until: r.try_get("lease_until")?,
        request: request.and_then(|s| serde_json::from_str(&s).ok()),
        last_error: r.try_get("last_error")?,
        last_status_code: r
            .try_get::<_, Option<i64>>("last_status_code")?
            .map(|c| c as u16),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn key_from_row(r: &Row) -> StoreResult<ApiKey> {
    let role: String = r.try_get("role")?;
    Ok(ApiKey {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: Role::parse(&role).unwrap_or(Role::Manager),
        team_id: r.try_get("team_id")?,
        token_hash: r.try_get("token_hash")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Parses the first column of each row as a JSON document.
fn docs<T: serde::de::DeserializeOwned>(rows: &[Row]) -> StoreResult<Vec<T>> {
    rows.iter()
        .map(|r| Ok(serde_json::from_str(r.try_get::<_, &str>(0)?)?))
        .collect()
}

fn scope_key(scope: &Scope) -> (&'static str, String) {
    match scope {
        Scope::Global => ("global", String::new()),
        Scope::Team { team_id } => ("team", team_id.clone()),
        Scope::Service { service_id, .. } => ("service", service_id.clone()),
    }
}

async fn health_of(t: &impl GenericClient, id: &str) -> StoreResult<Option<WebhookHealth>> {
    let row = t
        .query_opt(
            &t.prepare_cached(
                "SELECT consecutive_failures, failing_since FROM webhooks WHERE id = $1",
            )
            .await?,
            &[&id],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(WebhookHealth {
            consecutive_failures: r.try_get::<_, i64>(0)? as u32,
            failing_since: r.try_get(1)?,
        }),
        None => None,
    })
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

    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()> {
        self.execute(
            "INSERT INTO api_keys (id, name, role, team_id, token_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (token_hash) DO NOTHING",
            &[&key.id, &key.name, &key.role.as_str(), &key.team_id, &key.token_hash, &key.created_at],
        )
        .await
        .map(|_| ())
    }

    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.query_opt(
            "SELECT * FROM api_keys WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?
        .as_ref()
        .map(key_from_row)
        .transpose()
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.query("SELECT * FROM api_keys ORDER BY created_at", &[])
            .await?
            .iter()
            .map(key_from_row)
            .collect()
    }

    async fn insert_webhook(&self, w: &Webhook) -> StoreResult<()> {
        let doc = serde_json::to_string(w)?;
        let (kind, key) = scope_key(&w.scope);
        self.execute(
            "INSERT INTO webhooks (id, scope_kind, scope_key, team_id, enabled, doc, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&w.id, &kind, &key, &w.scope.team(), &(w.is_webhook_enabled as i64), &doc, &w.created_at, &w.updated_at],
        )
        .await
        .map(|_| ())
    }

    async fn update_webhook(&self, w: &Webhook) -> StoreResult<()> {
        let doc = serde_json::to_string(w)?;
        let (kind, key) = scope_key(&w.scope);
        let n = self
            .execute(
                "UPDATE webhooks SET scope_kind = $2, scope_key = $3, team_id = $4, enabled = $5, doc = $6, updated_at = $7 WHERE id = $1",
                &[&w.id, &kind, &key, &w.scope.team(), &(w.is_webhook_enabled as i64), &doc, &w.updated_at],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        self.in_tx(async |t| {
            if t.execute("DELETE FROM webhooks WHERE id = $1", &[&id]).await? == 0 {
                return Err(StoreError::NotFound);
            }
            // Nothing more will be sent for it.
            t.execute(
                "UPDATE deliveries SET status = 'failed', last_error = 'webhook deleted' WHERE webhook_id = $1 AND status IN ('pending', 'in_flight')",
                &[&id],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        self.doc_by("SELECT doc FROM webhooks WHERE id = $1", &[&id])
            .await
    }

    async fn list_webhooks(&self, q: &WebhookQuery) -> StoreResult<Page<Webhook>> {
        let limit = q.limit.max(1) as i64;
        let offset = q.offset as i64;
        let (rows, total) = match &q.team_id {
            Some(team) => (
                self.query("SELECT doc FROM webhooks WHERE team_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3", &[team, &limit, &offset])
                    .await?,
                self.count("SELECT COUNT(*) FROM webhooks WHERE team_id = $1", &[team]).await?,
            ),
            None => (
                self.query("SELECT doc FROM webhooks ORDER BY created_at, id LIMIT $1 OFFSET $2", &[&limit, &offset]).await?,
                self.count("SELECT COUNT(*) FROM webhooks", &[]).await?,
            ),
        };
        Ok(Page {
            items: docs(&rows)?,
            total,
        })
    }

    async fn all_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        docs(
            &self
                .query("SELECT doc FROM webhooks ORDER BY created_at, id", &[])
                .await?,
        )
    }

    async fn count_webhooks_in_scope(&self, scope: &Scope) -> StoreResult<u64> {
        let (kind, key) = scope_key(scope);
        self.count(
            "SELECT COUNT(*) FROM webhooks WHERE scope_kind = $1 AND scope_key = $2",
            &[&kind, &key],
        )
        .await
    }

    async fn webhook_health(&self, id: &str) -> StoreResult<WebhookHealth> {
        self.with_client(async |c| health_of(c, id).await?.ok_or(StoreError::NotFound))
            .await
    }

    async fn set_webhook_enabled(
        &self,
        id: &str,
        enabled: bool,
        reason: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        self.in_tx(async |t| {
            let row = t.query_opt("SELECT doc FROM webhooks WHERE id = $1 FOR UPDATE", &[&id]).await?.ok_or(StoreError::NotFound)?;
            let mut w: Webhook = serde_json::from_str(row.try_get::<_, &str>(0)?)?;
            w.is_webhook_enabled = enabled;
            w.disabled_reason = if enabled { None } else { reason.map(str::to_string) };
            w.updated_at = now;
            let doc = serde_json::to_string(&w)?;
            if enabled {
                t.execute(
                    "UPDATE webhooks SET enabled = 1, doc = $2, updated_at = $3, consecutive_failures = 0, failing_since = NULL WHERE id = $1",
                    &[&id, &doc, &now],
                )
                .await?;
            } else {
                t.execute("UPDATE webhooks SET enabled = 0, doc = $2, updated_at = $3 WHERE id = $1", &[&id, &doc, &now]).await?;
            }
            Ok(())
        })
        .await
    }

    async fn ingest(&self, new: NewEvent) -> StoreResult<IngestOutcome> {
        let doc = serde_json::to_string(&new.event)?;
        let (reply, rx) = oneshot::channel();
        self.timed(async {
            self.inner
                .ingest
                .send(IngestJob { new, doc, reply })
                .await
                .map_err(|_| StoreError::Unavailable("postgres ingest writers stopped".into()))?;
            rx.await
                .map_err(|_| StoreError::Unavailable("postgres ingest writers stopped".into()))?
        })
        .await
    }

    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>> {
        self.doc_by("SELECT doc FROM events WHERE id = $1", &[&id])
            .await
    }

    async fn get_events(&self, ids: &[String]) -> StoreResult<Vec<Event>> {
        docs(
            &self
                .query("SELECT doc FROM events WHERE id = ANY($1)", &[&ids])
                .await?,
        )
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        self.query_opt(
            &format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(delivery_from_row)
        .transpose()
    }

    async fn deliveries_for_event(&self, event_id: &str) -> StoreResult<Vec<Delivery>> {
        self.query(
            &format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE event_id = $1 ORDER BY id"),
            &[&event_id],
        )
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
    }

    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>> {
        // A claimed delivery's next_attempt_at is its lease end, so one condition finds both
        // pending deliveries that are due and in-flight ones whose worker vanished. SKIP LOCKED
        // lets other nodes claim other rows meanwhile; a row another node claimed and committed
        // since our snapshot is re-checked against the condition and dropped.
        let limit = limit as i64;
        let rows = self
            .query(
                &format!(
                    "WITH due AS (SELECT id FROM deliveries WHERE status IN ('pending', 'in_flight') AND next_attempt_at <= $1 \
                     ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     UPDATE deliveries d SET status = 'in_flight', lease_until = $2, next_attempt_at = $2, updated_at = $1 \
                     FROM due WHERE d.id = due.id RETURNING {}",
                    DELIVERY_COLS.split(", ").map(|c| format!("d.{c}")).collect::<Vec<_>>().join(", ")
                ),
                &[&now, &lease_until, &limit],
            )
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn next_due_at(&self) -> StoreResult<Option<i64>> {
        let rows = self.query("SELECT MIN(next_attempt_at) FROM deliveries WHERE status IN ('pending', 'in_flight')", &[]).await?;
        Ok(rows
            .first()
            .map(|r| r.try_get::<_, Option<i64>>(0))
            .transpose()?
            .flatten())
    }

    async fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
    ) -> StoreResult<Vec<(String, WebhookHealth)>> {
        self.in_tx(async |t| {
            // Lock the webhooks whose health changes in one order up front: concurrent batches
            // (other workers, other nodes) then queue instead of deadlocking.
            let mut ids: Vec<&str> =
                records.iter().filter(|r| r.health != HealthChange::None).map(|r| r.attempt.webhook_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            if !ids.is_empty() {
                t.execute("SELECT 1 FROM (SELECT id FROM webhooks WHERE id = ANY($1) ORDER BY id FOR UPDATE) l", &[&ids]).await?;
            }
            // Two statements for the whole batch (arrays unnested), not two per attempt.
            let (mut ids, mut dids, mut wids, mut eids, mut nos, mut starts, mut outcomes, mut adocs) =
                (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            // One row per delivery (a batch may hold two attempts of one delivery): the last
            // attempt sets the state, the first request given is kept, attempts add up.
            let (mut udids, mut statuses, mut nexts, mut requests, mut errors, mut codes, mut updated, mut counts) =
                (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
            let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
            for rec in &records {
                let a = &rec.attempt;
                ids.push(a.id.as_str());
                dids.push(rec.delivery_id.as_str());
                wids.push(a.webhook_id.as_str());
                eids.push(a.event_id.as_str());
                nos.push(a.attempt_no as i64);
                starts.push(a.started_at);
                outcomes.push(a.outcome.as_str());
                adocs.push(serde_json::to_string(a)?);
                let request = rec.request.as_ref().map(serde_json::to_string).transpose()?;
                let i = *index.entry(rec.delivery_id.as_str()).or_insert_with(|| {
                    udids.push(rec.delivery_id.as_str());
                    statuses.push("");
                    nexts.push(0);
                    requests.push(None);
                    errors.push(None);
                    codes.push(None);
                    updated.push(0);
                    counts.push(0i64);
                    udids.len() - 1
                });
                statuses[i] = rec.status.as_str();
                nexts[i] = rec.next_attempt_at;
                if requests[i].is_none() {
                    requests[i] = request;
                }
                errors[i] = a.error.clone();
                codes[i] = a.status_code.map(i64::from);
                updated[i] = a.started_at + a.duration_ms as i64;
                counts[i] += 1;
            }
            t.execute(
                &t.prepare_cached(
                    "INSERT INTO attempts (id, delivery_id, webhook_id, event_id, attempt_no, started_at, outcome, doc) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[])",
                )
                .await?,
                &[&ids, &dids, &wids, &eids, &nos, &starts, &outcomes, &adocs],
            )
            .await?;
            t.execute(
                &t.prepare_cached(
                    "UPDATE deliveries d SET status = v.status, attempts = d.attempts + v.n, next_attempt_at = v.next, lease_until = NULL, \
                     request = COALESCE(d.request, v.request), last_error = v.error, last_status_code = v.code, updated_at = v.updated \
                     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[]) \
                     AS v(id, status, next, request, error, code, updated, n) WHERE d.id = v.id",
                )
                .await?,
                &[&udids, &statuses, &nexts, &requests, &errors, &codes, &updated, &counts],
            )
            .await?;
            let mut healths = Vec::new();
            for rec in &records {
                let a = &rec.attempt;
                let now = a.started_at;
                match rec.health {
                    HealthChange::None => continue,
                    HealthChange::Success => {
                        // Healthy webhooks (the common case) are not rewritten, and nothing is
                        // read back: a success never disables.
                        t.execute(
                            "UPDATE webhooks SET consecutive_failures = 0, failing_since = NULL \
                             WHERE id = $1 AND (consecutive_failures <> 0 OR failing_since IS NOT NULL)",
                            &[&a.webhook_id],
                        )
                        .await?;
                        continue;
                    }
                    HealthChange::AttemptFailed => {
                        t.execute("UPDATE webhooks SET failing_since = COALESCE(failing_since, $2) WHERE id = $1", &[&a.webhook_id, &now])
                            .await?
                    }
                    HealthChange::DeliveryFailed => {
                        t.execute(
                            "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1, failing_since = COALESCE(failing_since, $2) WHERE id = $1",
                            &[&a.webhook_id, &now],
                        )
                        .await?
                    }
                };
                if let Some(h) = health_of(t, &a.webhook_id).await? {
                    healths.push((a.webhook_id.clone(), h));
                }
            }
            Ok(healths)
        })
        .await
    }

    async fn requeue_delivery(&self, id: &str, now: i64) -> StoreResult<()> {
        let n = self
            .execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, lease_until = NULL, updated_at = $2 WHERE id = $1",
                &[&id, &now],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn requeue_failed_since(
        &self,
        webhook_id: &str,
        since: i64,
        now: i64,
    ) -> StoreResult<u64> {
        self.execute(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $3, lease_until = NULL, updated_at = $3 \
             WHERE webhook_id = $1 AND status = 'failed' AND created_at >= $2",
            &[&webhook_id, &since, &now],
        )
        .await
    }

    async fn fail_pending_for_webhook(
        &self,
        webhook_id: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<u64> {
        self.execute(
            "UPDATE deliveries SET status = 'failed', last_error = $2, updated_at = $3 WHERE webhook_id = $1 AND status = 'pending'",
            &[&webhook_id, &reason, &now],
        )
        .await
    }

    async fn list_attempts(&self, q: &AttemptQuery) -> StoreResult<Page<Attempt>> {
        let mut where_ = vec!["1 = 1".to_string()];
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut push = |cond: &str, v: Box<dyn ToSql + Sync + Send>| {
            args.push(v);
            where_.push(format!("{cond} ${}", args.len()));
        };
        if let Some(w) = &q.webhook_id {
            push("webhook_id =", Box::new(w.clone()));
        }
        if let Some(d) = &q.delivery_id {
            push("delivery_id =", Box::new(d.clone()));
        }
        if let Some(o) = q.outcome {
            push("outcome =", Box::new(o.as_str()));
        }
        if let Some(s) = q.since {
            push("started_at >=", Box::new(s));
        }
        if let Some(u) = q.until {
            push("started_at <=", Box::new(u));
        }
        let cond = where_.join(" AND ");
        let n = args.len();
        args.push(Box::new(q.limit.max(1) as i64));
        args.push(Box::new(q.offset as i64));
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let total = self
            .count(
                &format!("SELECT COUNT(*) FROM attempts WHERE {cond}"),
                &params[..n],
            )
            .await?;
        let rows = self
            .query(
                &format!("SELECT doc FROM attempts WHERE {cond} ORDER BY started_at DESC, id DESC LIMIT ${} OFFSET ${}", n + 1, n + 2),
                &params,
            )
            .await?;
        Ok(Page {
            items: docs(&rows)?,
            total,
        })
    }

    async fn delivery_counts(&self) -> StoreResult<Vec<(DeliveryStatus, u64)>> {
        let rows = self
            .query(
                "SELECT status, COUNT(*) FROM deliveries GROUP BY status",
                &[],
            )
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            if let Some(s) = DeliveryStatus::parse(r.try_get(0)?) {
                out.push((s, r.try_get::<_, i64>(1)? as u64));
            }
        }
        Ok(out)
    }

    async fn put_plugin(&self, rec: &PluginRecord, component: &[u8]) -> StoreResult<()> {
        let doc = serde_json::to_string(rec)?;
        self.in_tx(async |t| {
            t.execute("INSERT INTO plugin_blobs (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING", &[&rec.sha256, &component])
                .await?;
            t.execute(
                "INSERT INTO plugins (name, version, doc, sha256, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name, version) DO UPDATE SET doc = excluded.doc, sha256 = excluded.sha256",
                &[&rec.name, &rec.version, &doc, &rec.sha256, &rec.created_at],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn list_plugins(&self) -> StoreResult<Vec<PluginRecord>> {
        docs(
            &self
                .query("SELECT doc FROM plugins ORDER BY name, created_at", &[])
                .await?,
        )
    }

    async fn get_plugin(&self, name: &str, version: &str) -> StoreResult<Option<PluginRecord>> {
        self.doc_by(
            "SELECT doc FROM plugins WHERE name = $1 AND version = $2",
            &[&name, &version],
        )
        .await
    }

    async fn plugin_bytes(&self, sha256: &str) -> StoreResult<Option<Vec<u8>>> {
        self.query_opt(
            "SELECT bytes FROM plugin_blobs WHERE sha256 = $1",
            &[&sha256],
        )
        .await?
        .map(|r| Ok(r.try_get(0)?))
        .transpose()
    }

    async fn delete_plugin(&self, name: &str, version: &str) -> StoreResult<()> {
        self.in_tx(async |t| {
            let row = t
                .query_opt("DELETE FROM plugins WHERE name = $1 AND version = $2 RETURNING sha256", &[&name, &version])
                .await?
                .ok_or(StoreError::NotFound)?;
            let sha: String = row.try_get(0)?;
            t.execute("DELETE FROM plugin_blobs WHERE sha256 = $1 AND NOT EXISTS (SELECT 1 FROM plugins WHERE sha256 = $1)", &[&sha])
                .await?;
            Ok(())
        })
        .await
    }
}
