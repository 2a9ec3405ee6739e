//! Schema migrations for every backend, kept in one place. The SQL is portable between SQLite and
//! PostgreSQL except for the binary type, written `{blob}`, reading a webhook document's name,
//! `{doc_name}`, and the ordered deliveries' sequence, `{seq_sequence}` (PostgreSQL only), all
//! rendered per dialect.

/// The SQL dialect a migration is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Ordered migrations: (version, description, SQL).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial schema",
        r#"
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    team_id TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    scope_kind TEXT NOT NULL,
    scope_key TEXT NOT NULL,
    team_id TEXT,
    enabled BIGINT NOT NULL,
    doc TEXT NOT NULL,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    failing_since BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_team ON webhooks (team_id, created_at);
CREATE INDEX webhooks_scope ON webhooks (scope_kind, scope_key);
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    doc TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    url TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    request TEXT,
    last_error TEXT,
    last_status_code BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'in_flight');
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, status, created_at);
CREATE TABLE attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempt_no BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX attempts_webhook ON attempts (webhook_id, started_at);
CREATE INDEX attempts_delivery ON attempts (delivery_id, attempt_no);
CREATE TABLE plugins (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    doc TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE plugin_blobs (
    sha256 TEXT PRIMARY KEY,
    bytes {blob} NOT NULL
);
"#,
    ),
    (
        2,
        "api key lifecycle: expiry, last use, revocation, bootstrap flag",
        r#"
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
ALTER TABLE api_keys ADD COLUMN revoked_at BIGINT;
ALTER TABLE api_keys ADD COLUMN bootstrap BIGINT NOT NULL DEFAULT 0;
UPDATE api_keys SET bootstrap = 1 WHERE name = 'bootstrap admin (GATEWAY_ADMIN_TOKEN)';
"#,
    ),
    (
        3,
        "webhook names: a name column (backfilled from the document) for OnCall's unique names and ?name=",
        r#"
ALTER TABLE webhooks ADD COLUMN name TEXT;
UPDATE webhooks SET name = {doc_name};
CREATE INDEX webhooks_name ON webhooks (name);
"#,
    ),
    (
        4,
        "settings (the secrets key check)",
        r#"
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
"#,
    ),
    (
        5,
        "failure mails: per-webhook failure digests and a durable mail outbox",
        r#"
CREATE TABLE mail_digests (
    webhook_id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    last_error TEXT,
    last_status BIGINT,
    last_failed_at BIGINT NOT NULL
);
CREATE INDEX mail_digests_due ON mail_digests (due_at);
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    sent_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE status = 'pending';
"#,
    ),
    (
        6,
        "ordered delivery: a stream (the url's position in its webhook) and a sequence per delivery and the head-of-stream index; unordered claims keep their own index",
        r#"
ALTER TABLE deliveries ADD COLUMN stream BIGINT;
ALTER TABLE deliveries ADD COLUMN seq BIGINT;
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'in_flight') AND stream IS NULL;
CREATE INDEX deliveries_stream ON deliveries (webhook_id, stream, seq) WHERE status IN ('pending', 'in_flight') AND stream IS NOT NULL;
{seq_sequence}
"#,
    ),
    (
        7,
        "retention: indexes the pruner walks (old events, old attempts, an event's idempotency keys)",
        r#"
CREATE INDEX events_received ON events (received_at);
CREATE INDEX attempts_started ON attempts (started_at);
CREATE INDEX idempotency_keys_event ON idempotency_keys (event_id);
"#,
    ),
    (
        8,
        "team portal links (single use, hashed tokens)",
        r#"
CREATE TABLE portal_links (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    team_id TEXT NOT NULL,
    webhook_id TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX portal_links_expiry ON portal_links (expires_at);
"#,
    ),
    (
        9,
        "console sessions (cookie stored hashed, CSRF token, idle and absolute expiry)",
        r#"
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    role TEXT NOT NULL,
    team_id TEXT,
    only_webhook TEXT,
    portal BIGINT NOT NULL DEFAULT 0,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
"#,
    ),
];

/// The SQL of one migration for a dialect.
pub fn render(sql: &str, dialect: Dialect) -> String {
    let blob = match dialect {
        Dialect::Sqlite => "BLOB",
        Dialect::Postgres => "BYTEA",
    };
    let doc_name = match dialect {
        Dialect::Sqlite => "json_extract(doc, '$.name')",
        Dialect::Postgres => "(doc::json ->> 'name')",
    };
    // SQLite numbers an ordered delivery from its stream's highest owed seq inside the single
    // writer's transaction; PostgreSQL nodes draw from one sequence.
    let seq_sequence = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => "CREATE SEQUENCE deliveries_seq;",
    };
    sql.replace("{blob}", blob)
        .replace("{doc_name}", doc_name)
        .replace("{seq_sequence}", seq_sequence)
}

/// The bookkeeping table every backend keeps.
pub const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)";
