//! Failure digests and the mail outbox. Claims take rows with `FOR UPDATE SKIP LOCKED`, so
//! several nodes share one outbox and each mail is claimed by one of them.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::PostgresStore;
use crate::model::{Attempt, FailureNote, MailDigest, MailKind, MailOutcome, OutboxMail};
use crate::store::sqlite::mail::{DIGEST_COLS, NOTE_FAILURE_SQL, OUTBOX_COLS};
use crate::store::{StoreError, StoreResult};

/// Counts `a`'s failure in its webhook's digest (inside `record_attempts`' transaction).
pub(super) async fn note_failure(
    t: &deadpool_postgres::Transaction<'_>,
    a: &Attempt,
    note: &FailureNote,
) -> StoreResult<()> {
    let at = a.started_at + a.duration_ms as i64;
    let due = at + note.window_ms;
    let status = note.status.map(i64::from);
    t.execute(
        &NOTE_FAILURE_SQL.replace('?', "$"),
        &[
            &a.webhook_id,
            &note.recipient,
            &at,
            &due,
            &note.error,
            &status,
        ],
    )
    .await?;
    Ok(())
}

fn outbox_from_row(r: &Row) -> StoreResult<OutboxMail> {
    let kind: String = r.try_get(2)?;
    Ok(OutboxMail {
        id: r.try_get(0)?,
        webhook_id: r.try_get(1)?,
        kind: MailKind::parse(&kind)
            .ok_or_else(|| StoreError::Internal(format!("unknown mail kind {kind:?}")))?,
        recipient: r.try_get(3)?,
        subject: r.try_get(4)?,
        body: r.try_get(5)?,
        attempts: r.try_get::<_, i64>(6)? as u32,
        next_attempt_at: r.try_get(7)?,
        created_at: r.try_get(8)?,
    })
}

fn digest_from_row(r: &Row) -> StoreResult<MailDigest> {
    Ok(MailDigest {
        webhook_id: r.try_get(0)?,
        recipient: r.try_get(1)?,
        window_start: r.try_get(2)?,
        due_at: r.try_get(3)?,
        failures: r.try_get::<_, i64>(4)? as u64,
        last_error: r.try_get(5)?,
        last_status: r.try_get::<_, Option<i64>>(6)?.map(|s| s as u16),
        last_failed_at: r.try_get(7)?,
    })
}

pub(super) async fn insert_mail(c: &impl GenericClient, m: &OutboxMail) -> StoreResult<u64> {
    let attempts = m.attempts as i64;
    Ok(c.execute(
        "INSERT INTO mail_outbox (id, webhook_id, kind, recipient, subject, body, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        &[&m.id, &m.webhook_id, &m.kind.as_str(), &m.recipient, &m.subject, &m.body, &attempts, &m.next_attempt_at, &m.created_at],
    )
    .await?)
}

pub(super) async fn enqueue_mail(store: &PostgresStore, mail: &OutboxMail) -> StoreResult<()> {
    store
        .with_client(async |c| insert_mail(c, mail).await.map(drop))
        .await
}

pub(super) async fn due_mail_digests(
    store: &PostgresStore,
    now: i64,
    limit: usize,
) -> StoreResult<Vec<MailDigest>> {
    let limit = limit as i64;
    store
        .query(
            &format!(
                "SELECT {DIGEST_COLS} FROM mail_digests WHERE due_at <= $1 ORDER BY due_at LIMIT $2"
            ),
            &[&now, &limit],
        )
        .await?
        .iter()
        .map(digest_from_row)
        .collect()
}

pub(super) async fn close_mail_digest(
    store: &PostgresStore,
    d: &MailDigest,
    mail: &OutboxMail,
) -> StoreResult<bool> {
    let failures = d.failures as i64;
    store
        .in_tx(async |t| {
            let closed = t
                .execute(
                    "DELETE FROM mail_digests WHERE webhook_id = $1 AND window_start = $2 AND failures = $3",
                    &[&d.webhook_id, &d.window_start, &failures],
                )
                .await?;
            if closed == 0 {
                return Ok(false);
            }
            insert_mail(t, mail).await?;
            Ok(true)
        })
        .await
}

pub(super) async fn claim_mail(
    store: &PostgresStore,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> StoreResult<Vec<OutboxMail>> {
    let limit = limit as i64;
    let cols = OUTBOX_COLS
        .split(", ")
        .map(|c| format!("m.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = store
        .query(
            &format!(
                "WITH due AS (SELECT id FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 UPDATE mail_outbox m SET next_attempt_at = $2 FROM due WHERE m.id = due.id RETURNING {cols}"
            ),
            &[&now, &lease_until, &limit],
        )
        .await?
        .iter()
        .map(outbox_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(out)
}

pub(super) async fn finish_mail(
    store: &PostgresStore,
    id: &str,
    outcome: &MailOutcome,
    now: i64,
) -> StoreResult<()> {
    let (status, sent_at, next, error, failed): (&str, Option<i64>, i64, Option<&str>, i64) =
        match outcome {
            MailOutcome::Sent => ("sent", Some(now), now, None, 0),
            MailOutcome::Retry { at, error } => ("pending", None, *at, Some(error), 1),
            MailOutcome::Rejected { error } => ("rejected", None, now, Some(error), 1),
        };
    store
        .execute(
            "UPDATE mail_outbox SET status = $2, sent_at = $3, next_attempt_at = $4, last_error = $5, \
             attempts = attempts + $6 WHERE id = $1 AND status = 'pending'",
            &[&id, &status, &sent_at, &next, &error, &failed],
        )
        .await?;
    Ok(())
}
