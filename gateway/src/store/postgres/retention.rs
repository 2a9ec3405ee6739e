//! Pruning old rows, one short transaction per batch. Several nodes may prune the same database at
//! once: candidate rows are locked `FOR UPDATE SKIP LOCKED`, so each batch takes rows no other
//! pruner holds, and every delete re-checks its condition, so a delivery made due again meanwhile
//! (a resend) keeps itself and its event.

use super::PostgresStore;
use crate::store::sqlite::retention::{FINISHED_MAIL, MAIL_FINISHED_AT};
use crate::store::{PruneCutoffs, PruneReport, StoreResult};

pub(super) async fn prune_batch(
    store: &PostgresStore,
    cutoffs: PruneCutoffs,
    batch: usize,
) -> StoreResult<PruneReport> {
    let batch = batch.max(1) as i64;
    store
        .in_tx(async |tx| {
            let mut report = PruneReport::default();
            if let Some(before) = cutoffs.events_before {
                let ids: Vec<String> = tx
                    .query(
                        "SELECT e.id FROM events e WHERE e.received_at < $1 AND NOT EXISTS \
                         (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.status IN ('pending', 'in_flight')) \
                         ORDER BY e.received_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                        &[&before, &batch],
                    )
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                if !ids.is_empty() {
                    // Under READ COMMITTED a delivery another transaction changed meanwhile is
                    // re-checked here: one made pending again (a resend) is not deleted.
                    let gone: Vec<String> = tx
                        .query(
                            "DELETE FROM deliveries WHERE event_id = ANY($1) AND status NOT IN ('pending', 'in_flight') RETURNING id",
                            &[&ids],
                        )
                        .await?
                        .iter()
                        .map(|r| r.try_get(0))
                        .collect::<Result<_, _>>()?;
                    report.deliveries = gone.len() as u64;
                    report.attempts = tx
                        .execute("DELETE FROM attempts WHERE delivery_id = ANY($1)", &[&gone])
                        .await?;
                    let events: Vec<String> = tx
                        .query(
                            "DELETE FROM events e WHERE e.id = ANY($1) AND NOT EXISTS \
                             (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) RETURNING id",
                            &[&ids],
                        )
                        .await?
                        .iter()
                        .map(|r| r.try_get(0))
                        .collect::<Result<_, _>>()?;
                    report.events = events.len() as u64;
                    report.idempotency_keys = tx
                        .execute(
                            "DELETE FROM idempotency_keys WHERE event_id = ANY($1)",
                            &[&events],
                        )
                        .await?;
                }
            }
            if let Some(before) = cutoffs.attempts_before {
                report.attempts += tx
                    .execute(
                        "DELETE FROM attempts WHERE id IN (SELECT a.id FROM attempts a WHERE a.started_at < $1 \
                         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id AND d.status IN ('pending', 'in_flight')) \
                         ORDER BY a.started_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
                        &[&before, &batch],
                    )
                    .await?;
                report.mails += tx
                    .execute(
                        &format!(
                            "DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox WHERE status IN {FINISHED_MAIL} \
                             AND {MAIL_FINISHED_AT} < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
                        ),
                        &[&before, &batch],
                    )
                    .await?;
            }
            Ok(report)
        })
        .await
}
