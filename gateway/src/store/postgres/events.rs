//! Events: handing an ingest to the group-commit writers (see `ingest`) and reading events back.

use tokio::sync::oneshot;

use super::ingest::IngestJob;
use super::{PostgresStore, docs};
use crate::model::{Event, IngestOutcome, NewEvent};
use crate::store::{StoreError, StoreResult};

pub(super) async fn ingest(store: &PostgresStore, new: NewEvent) -> StoreResult<IngestOutcome> {
    let doc = serde_json::to_string(&new.event)?;
    let (reply, rx) = oneshot::channel();
    store
        .timed(async {
            store
                .inner
                .ingest
                .send(IngestJob { new, doc, reply })
                .await
                .map_err(|_| StoreError::Unavailable("postgres ingest writers stopped".into()))?;
            rx.await
                .map_err(|_| StoreError::Unavailable("postgres ingest writers stopped".into()))?
        })
        .await
}

pub(super) async fn get_event(store: &PostgresStore, id: &str) -> StoreResult<Option<Event>> {
    store
        .doc_by("SELECT doc FROM events WHERE id = $1", &[&id])
        .await
}

pub(super) async fn get_events(store: &PostgresStore, ids: &[String]) -> StoreResult<Vec<Event>> {
    docs(
        &store
            .query("SELECT doc FROM events WHERE id = ANY($1)", &[&ids])
            .await?,
    )
}
