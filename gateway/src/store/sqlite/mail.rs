//! Failure digests and the mail outbox.

use rusqlite::{Connection, Row, params};

use super::SqliteStore;
use crate::model::{Attempt, FailureNote, MailDigest, MailKind, MailOutcome, OutboxMail};
use crate::store::{StoreError, StoreResult};

/// The upsert a finally failed delivery makes in its webhook's digest (shared with PostgreSQL:
/// there with `?` written `$`). The first failure opens the window; later ones count and
/// replace the last error and status.
pub(crate) const NOTE_FAILURE_SQL: &str = "INSERT INTO mail_digests (webhook_id, recipient, window_start, due_at, failures, last_error, last_status, last_failed_at) \
     VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?3) \
     ON CONFLICT (webhook_id) DO UPDATE SET recipient = excluded.recipient, failures = mail_digests.failures + 1, \
     last_error = excluded.last_error, last_status = excluded.last_status, last_failed_at = excluded.last_failed_at";

/// Columns of an outbox row, in the order [`outbox_from_row`] reads them.
pub(crate) const OUTBOX_COLS: &str =
    "id, webhook_id, kind, recipient, subject, body, attempts, next_attempt_at, created_at";

/// Columns of a digest row, in the order [`digest_from_row`] reads them.
pub(crate) const DIGEST_COLS: &str = "webhook_id, recipient, window_start, due_at, failures, last_error, last_status, last_failed_at";

/// Counts `a`'s failure in its webhook's digest (inside `record_attempts`' transaction).
pub(super) fn note_failure(t: &Connection, a: &Attempt, note: &FailureNote) -> StoreResult<()> {
    let at = a.started_at + a.duration_ms as i64;
    t.prepare_cached(NOTE_FAILURE_SQL)?.execute(params![
        a.webhook_id,
        note.recipient,
        at,
        at + note.window_ms,
        note.error,
        note.status.map(i64::from),
    ])?;
    Ok(())
}

fn kind_of(s: &str) -> StoreResult<MailKind> {
    MailKind::parse(s).ok_or_else(|| StoreError::Internal(format!("unknown mail kind {s:?}")))
}

fn outbox_from_row(r: &Row<'_>) -> rusqlite::Result<(OutboxMail, String)> {
    Ok((
        OutboxMail {
            id: r.get(0)?,
            webhook_id: r.get(1)?,
            kind: MailKind::Disabled,
            recipient: r.get(3)?,
            subject: r.get(4)?,
            body: r.get(5)?,
            attempts: r.get::<_, i64>(6)? as u32,
            next_attempt_at: r.get(7)?,
            created_at: r.get(8)?,
        },
        r.get(2)?,
    ))
}

fn digest_from_row(r: &Row<'_>) -> rusqlite::Result<MailDigest> {
    Ok(MailDigest {
        webhook_id: r.get(0)?,
        recipient: r.get(1)?,
        window_start: r.get(2)?,
        due_at: r.get(3)?,
        failures: r.get::<_, i64>(4)? as u64,
        last_error: r.get(5)?,
        last_status: r.get::<_, Option<i64>>(6)?.map(|s| s as u16),
        last_failed_at: r.get(7)?,
    })
}

pub(super) fn insert_mail(t: &Connection, m: &OutboxMail) -> StoreResult<usize> {
    Ok(t.prepare_cached(
        "INSERT INTO mail_outbox (id, webhook_id, kind, recipient, subject, body, status, attempts, next_attempt_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![
        m.id,
        m.webhook_id,
        m.kind.as_str(),
        m.recipient,
        m.subject,
        m.body,
        m.attempts as i64,
        m.next_attempt_at,
        m.created_at
    ])?)
}

pub(super) async fn enqueue_mail(store: &SqliteStore, mail: &OutboxMail) -> StoreResult<()> {
    let m = mail.clone();
    store.write(move |t| insert_mail(t, &m).map(drop)).await
}

pub(super) async fn due_mail_digests(
    store: &SqliteStore,
    now: i64,
    limit: usize,
) -> StoreResult<Vec<MailDigest>> {
    store
        .read(move |c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {DIGEST_COLS} FROM mail_digests WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2"
            ))?;
            let rows = s
                .query_map(params![now, limit as i64], digest_from_row)?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
}

pub(super) async fn close_mail_digest(
    store: &SqliteStore,
    digest: &MailDigest,
    mail: &OutboxMail,
) -> StoreResult<bool> {
    let (d, m) = (digest.clone(), mail.clone());
    store
        .write(move |t| {
            let closed = t
                .prepare_cached(
                    "DELETE FROM mail_digests WHERE webhook_id = ?1 AND window_start = ?2 AND failures = ?3",
                )?
                .execute(params![d.webhook_id, d.window_start, d.failures as i64])?;
            if closed == 0 {
                return Ok(false);
            }
            insert_mail(t, &m)?;
            Ok(true)
        })
        .await
}

pub(super) async fn claim_mail(
    store: &SqliteStore,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> StoreResult<Vec<OutboxMail>> {
    // One writer: selecting and leasing in one write transaction cannot race another claim.
    let rows: Vec<(OutboxMail, String)> = store
        .write(move |t| {
            let rows: Vec<(OutboxMail, String)> = t
                .prepare_cached(&format!(
                    "UPDATE mail_outbox SET next_attempt_at = ?2 WHERE id IN \
                     (SELECT id FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at LIMIT ?3) \
                     RETURNING {OUTBOX_COLS}"
                ))?
                .query_map(params![now, lease_until, limit as i64], outbox_from_row)?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await?;
    let mut out = rows
        .into_iter()
        .map(|(mut m, kind)| {
            m.kind = kind_of(&kind)?;
            Ok(m)
        })
        .collect::<StoreResult<Vec<_>>>()?;
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(out)
}

pub(super) async fn finish_mail(
    store: &SqliteStore,
    id: &str,
    outcome: &MailOutcome,
    now: i64,
) -> StoreResult<()> {
    let (id, outcome) = (id.to_string(), outcome.clone());
    store
        .write(move |t| {
            let mut s = t.prepare_cached(
                "UPDATE mail_outbox SET status = ?2, sent_at = ?3, next_attempt_at = ?4, last_error = ?5, \
                 attempts = attempts + ?6 WHERE id = ?1 AND status = 'pending'",
            )?;
            match &outcome {
                MailOutcome::Sent => s.execute(params![id, "sent", now, now, None::<String>, 0])?,
                MailOutcome::Retry { at, error } => {
                    s.execute(params![id, "pending", None::<i64>, at, error, 1])?
                }
                MailOutcome::Rejected { error } => {
                    s.execute(params![id, "rejected", None::<i64>, now, error, 1])?
                }
            };
            Ok(())
        })
        .await
}
