//! Storage behind one trait. [`sqlite::SqliteStore`] is the embedded default; a PostgreSQL
//! implementation is its sibling and passes the same suite (`store::suite`).
//!
//! Every method is async; SQLite work runs on its own threads so no async worker blocks on it.

pub mod copy;
pub mod migrations;
pub mod observed;
pub mod postgres;
pub mod sealed;
pub mod sqlite;
#[doc(hidden)]
pub mod suite;

use async_trait::async_trait;

use crate::model::{
    ApiKey, Attempt, AttemptQuery, ConsoleSession, Delivery, DeliveryStatus, Event, FailureNote,
    IngestOutcome, MailDigest, MailOutcome, NewEvent, OutboxMail, PluginRecord, PreparedRequest,
    Webhook, WebhookHealth,
};
use crate::model::{PortalLink, PortalRedeem};

/// Errors from a store. `Unavailable` means "try again later" (the API answers 503).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A page of webhooks plus the total count.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// What an attempt changed, written in one transaction with the attempt log.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: Attempt,
    pub delivery_id: String,
    pub status: DeliveryStatus,
    pub next_attempt_at: i64,
    /// Stored on the first attempt (the transform's output).
    pub request: Option<PreparedRequest>,
    /// How the webhook's health changes.
    pub health: HealthChange,
    /// The lease the delivery was claimed with (`Delivery::lease_until` as `claim_due` returned
    /// it). When set, the record applies only while the delivery still holds exactly this lease
    /// (compare-and-set): a node that lost its claim (paused past its lease, another node took
    /// over) does not record over the new owner. `None` records unconditionally (test sends).
    pub claimed_lease: Option<i64>,
    /// A delivery that failed for good, of a webhook with a failure email while mail is on: it
    /// counts in the webhook's failure digest, written with the attempt (so once).
    pub failure_note: Option<FailureNote>,
}

/// The effect of an attempt on its webhook's health counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    /// No change (e.g. a test send).
    None,
    /// A delivery succeeded: failures reset.
    Success,
    /// An attempt failed, more follow: starts the failing-since clock.
    AttemptFailed,
    /// A delivery finally failed: counts one consecutive failure.
    DeliveryFailed,
}

/// Filters for webhooks listing.
#[derive(Debug, Clone, Default)]
pub struct WebhookQuery {
    /// Only webhooks owned by this team (team and service scopes).
    pub team_id: Option<String>,
    /// Only the webhook with exactly this name (OnCall's `?name=`).
    pub name: Option<String>,
    pub offset: u64,
    pub limit: u64,
}

/// The [`StoreError::Conflict`] message of an insert or rename to a name another webhook has:
/// webhook names are unique (Grafana OnCall's `unique_together = (name, organization)`).
pub const WEBHOOK_NAME_TAKEN: &str = "a webhook with this name already exists";

/// What a prune batch may remove: rows older than these times (unix ms, exclusive); `None` keeps
/// that kind of row forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneCutoffs {
    /// Events received before this go, with their finished deliveries, those deliveries'
    /// attempts and the events' idempotency keys, unless a delivery is still owed.
    pub events_before: Option<i64>,
    /// Attempts started before this go, unless their delivery is still owed; so do failure
    /// mails that finished (sent, or refused for good) before it. Mails still to send never go.
    pub attempts_before: Option<i64>,
}

/// Rows a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
    pub idempotency_keys: u64,
    /// Sent or refused failure mails (`mail_outbox`).
    pub mails: u64,
}

impl PruneReport {
    /// Adds another batch's counts.
    pub fn add(&mut self, other: PruneReport) {
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.attempts += other.attempts;
        self.idempotency_keys += other.idempotency_keys;
        self.mails += other.mails;
    }
}

/// What the delivery statistics cover: attempts started in `[since, until)`, in buckets of
/// `bucket_ms` counted from `since`, of the webhooks of `team_id` (all webhooks when `None`).
#[derive(Debug, Clone)]
pub struct StatsQuery {
    pub team_id: Option<String>,
    pub since: i64,
    pub until: i64,
    pub bucket_ms: i64,
    /// At most this many (most recent) attempt durations are returned for the percentiles.
    pub max_samples: u64,
}

/// Delivery statistics as stored (the API computes percentiles from `durations`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// (bucket index from `since`, attempt outcome, attempts).
    pub counts: Vec<(i64, String, u64)>,
    /// (bucket index, duration in ms) of the most recent attempts, at most `max_samples`.
    pub durations: Vec<(i64, i64)>,
    /// Deliveries waiting now (pending or in flight), by status.
    pub queue: Vec<(DeliveryStatus, u64)>,
    pub webhooks: u64,
    pub disabled_webhooks: u64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap liveness probe for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// A tiny real write (a no-op update that still reaches the log), for `/readyz` to check
    /// that the store accepts writes again after write failures (a full disk).
    async fn write_probe(&self) -> StoreResult<()> {
        self.ping().await
    }

    // --- API keys
    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<()>;
    async fn api_key_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;
    /// Marks a key revoked at `now` (kept for the audit; a second revocation keeps the first
    /// time). Returns the key as stored afterwards, `None` when no key has this id.
    async fn revoke_api_key(&self, id: &str, now: i64) -> StoreResult<Option<ApiKey>>;
    /// Records that a key was used at `at` (only moves `last_used_at` forward).
    async fn touch_api_key(&self, id: &str, at: i64) -> StoreResult<()>;

    // --- console sessions (`console::session`)
    /// Stores a new session; rows whose absolute expiry is past `session.created_at` go first.
    async fn insert_console_session(&self, session: ConsoleSession) -> StoreResult<()>;
    async fn console_session(&self, id_hash: &str) -> StoreResult<Option<ConsoleSession>>;
    /// Records activity at `at` (only moves `last_seen_at` forward).
    async fn touch_console_session(&self, id_hash: &str, at: i64) -> StoreResult<()>;
    /// Sign-out (and the end of an expired or orphaned session).
    async fn delete_console_session(&self, id_hash: &str) -> StoreResult<()>;

    // --- webhooks
    async fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    /// Replaces the stored document (same id).
    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    async fn delete_webhook(&self, id: &str) -> StoreResult<()>;
    async fn get_webhook(&self, id: &str) -> StoreResult<Option<Webhook>>;
    async fn list_webhooks(&self, query: &WebhookQuery) -> StoreResult<Page<Webhook>>;
    /// Every webhook (for the in-memory matcher).
    async fn all_webhooks(&self) -> StoreResult<Vec<Webhook>>;
    /// How many webhooks share this scope (for the per-scope cap).
    async fn count_webhooks_in_scope(&self, scope: &crate::model::Scope) -> StoreResult<u64>;
    async fn webhook_health(&self, id: &str) -> StoreResult<WebhookHealth>;

    // --- events and deliveries
    /// Stores the event and its deliveries atomically; durable when it returns `Ok`.
    async fn ingest(&self, new: NewEvent) -> StoreResult<IngestOutcome>;
    async fn get_event(&self, id: &str) -> StoreResult<Option<Event>>;
    /// The events among `ids` that exist (any order): one query for a claimed batch.
    async fn get_events(&self, ids: &[String]) -> StoreResult<Vec<Event>>;
    async fn get_delivery(&self, id: &str) -> StoreResult<Option<Delivery>>;
    async fn deliveries_for_event(&self, event_id: &str) -> StoreResult<Vec<Delivery>>;
    /// Claims up to `limit` deliveries due at `now` (pending and due, or in flight with an expired
    /// lease), marking them in flight until `lease_until`.
    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Delivery>>;
    /// Earliest `next_attempt_at` of a pending delivery (lets idle workers sleep precisely).
    async fn next_due_at(&self) -> StoreResult<Option<i64>>;
    /// Records attempts and their delivery/webhook updates, one transaction for the batch. Returns
    /// the webhook's health after each record that counted a failure (`AttemptFailed`,
    /// `DeliveryFailed`): what auto-disable needs.
    ///
    /// Idempotent: a record whose attempt id is already stored (an earlier call committed but its
    /// answer was lost) is skipped whole, so retrying a batch after an unknown outcome succeeds
    /// and records once. A record whose `claimed_lease` no longer matches the delivery (its claim
    /// was lost to another node) is skipped whole too.
    async fn record_attempts(
        &self,
        records: Vec<AttemptRecord>,
    ) -> StoreResult<Vec<(String, WebhookHealth)>>;
    /// Sets a webhook's enabled flag (and the reason when the gateway disables it); resets health
    /// when enabling.
    async fn set_webhook_enabled(
        &self,
        id: &str,
        enabled: bool,
        reason: Option<&str>,
        now: i64,
    ) -> StoreResult<()>;
    /// Disables a webhook the gateway gave up on (`reason` is kept on it) and, in the same
    /// transaction, queues `notice` (the disable mail) in the outbox, but only when this call is
    /// the one that turned the webhook from enabled to disabled: returns whether it was. A
    /// webhook already disabled (another node got there first) is left alone and nothing is
    /// queued, so one transition makes one notice, and a notice is never lost after the webhook
    /// was disabled. `NotFound` when no webhook has this id.
    async fn disable_webhook(
        &self,
        id: &str,
        reason: &str,
        now: i64,
        notice: Option<&OutboxMail>,
    ) -> StoreResult<bool>;
    /// Makes a delivery due again now (resend), whatever its state.
    async fn requeue_delivery(&self, id: &str, now: i64) -> StoreResult<()>;
    /// Makes every failed delivery of a webhook created since `since` due again; returns how many.
    async fn requeue_failed_since(
        &self,
        webhook_id: &str,
        since: i64,
        now: i64,
    ) -> StoreResult<u64>;
    /// Fails every pending delivery of a webhook (on disable); returns how many.
    async fn fail_pending_for_webhook(
        &self,
        webhook_id: &str,
        reason: &str,
        now: i64,
    ) -> StoreResult<u64>;
    async fn list_attempts(&self, query: &AttemptQuery) -> StoreResult<Page<Attempt>>;
    /// Deliveries by status (for `/metrics`).
    async fn delivery_counts(&self) -> StoreResult<Vec<(DeliveryStatus, u64)>>;

    // --- retention (see `crate::retention`)
    /// One short transaction of pruning: up to `batch` events older than
    /// `cutoffs.events_before` whose deliveries are all finished (succeeded or failed), with
    /// those deliveries, their attempts and the events' idempotency keys; then up to `batch`
    /// attempts older than `cutoffs.attempts_before` of finished (or gone) deliveries, and up to
    /// `batch` outbox mails finished (sent or refused) before it. A delivery still owed (pending,
    /// in flight) is never removed, nor its event, nor its attempts; nor is a mail still to send.
    ///
    /// Callers repeat it until a batch removes fewer than `batch` events, attempts and mails.
    /// Idempotent:
    /// a repeated or concurrent batch (another node pruning the same database) removes nothing
    /// twice and never fails for it.
    async fn prune_batch(&self, cutoffs: PruneCutoffs, batch: usize) -> StoreResult<PruneReport>;
    /// After pruning: gives the freed space back to the file system where the backend keeps it
    /// (SQLite: incremental vacuum, then a WAL truncate). PostgreSQL's autovacuum reuses the
    /// space by itself, so there it does nothing.
    async fn reclaim_space(&self) -> StoreResult<()>;
    /// Bytes the store occupies on this machine's disk (SQLite: the database file and its WAL);
    /// `None` when the database lives elsewhere (PostgreSQL).
    async fn disk_usage(&self) -> StoreResult<Option<u64>>;

    // --- plugins
    async fn put_plugin(&self, record: &PluginRecord, component: &[u8]) -> StoreResult<()>;
    async fn list_plugins(&self) -> StoreResult<Vec<PluginRecord>>;
    async fn get_plugin(&self, name: &str, version: &str) -> StoreResult<Option<PluginRecord>>;
    async fn plugin_bytes(&self, sha256: &str) -> StoreResult<Option<Vec<u8>>>;
    async fn delete_plugin(&self, name: &str, version: &str) -> StoreResult<()>;

    // --- team portal links
    async fn insert_portal_link(&self, link: &PortalLink) -> StoreResult<()>;
    /// Opens the link with this token hash at `now`: it is marked used in the same statement that
    /// finds it unused and unexpired, so of two concurrent opens exactly one succeeds.
    async fn redeem_portal_link(&self, token_hash: &str, now: i64) -> StoreResult<PortalRedeem>;

    // --- statistics
    async fn delivery_stats(&self, query: &StatsQuery) -> StoreResult<DeliveryStats>;

    // --- failure mails (`notify`)
    /// Puts a rendered mail in the outbox, pending and due at its `next_attempt_at`. Idempotent:
    /// an id already stored is left as it is.
    async fn enqueue_mail(&self, mail: &OutboxMail) -> StoreResult<()>;
    /// Up to `limit` open failure digests whose window closed by `now`, oldest first.
    async fn due_mail_digests(&self, now: i64, limit: usize) -> StoreResult<Vec<MailDigest>>;
    /// Closes `digest` and enqueues `mail` for it in one transaction, only while the stored
    /// digest is still exactly the one read (same window and count): returns false otherwise
    /// (another node closed it, or a failure came in since; read it again).
    async fn close_mail_digest(&self, digest: &MailDigest, mail: &OutboxMail) -> StoreResult<bool>;
    /// Claims up to `limit` pending mails due at `now` until `lease_until` (their
    /// `next_attempt_at` becomes the lease end, so a crashed sender's mails come back), oldest
    /// first. Safe with several nodes: a mail is claimed by one.
    async fn claim_mail(
        &self,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> StoreResult<Vec<OutboxMail>>;
    /// Records how sending a claimed mail ended.
    async fn finish_mail(&self, id: &str, outcome: &MailOutcome, now: i64) -> StoreResult<()>;
}
