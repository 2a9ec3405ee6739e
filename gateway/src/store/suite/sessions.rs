//! Console sessions: stored by cookie hash, touched forward only, deleted at sign-out, and
//! expired rows dropped when a new session starts.

use std::sync::Arc;

use crate::model::{ConsoleSession, Role};
use crate::store::Store;

fn session(id_hash: &str, created_at: i64, expires_at: i64) -> ConsoleSession {
    ConsoleSession {
        id_hash: id_hash.into(),
        key_id: "key_1".into(),
        role: Role::Manager,
        team_id: Some("T1".into()),
        only_webhook: Some("wh_1".into()),
        portal: true,
        csrf: "csrf-token".into(),
        created_at,
        expires_at,
        last_seen_at: created_at,
    }
}

/// A session round-trips; touches only move forward; delete ends it; a new session drops
/// sessions whose absolute expiry has passed and keeps the others.
pub async fn console_sessions(store: Arc<dyn Store>) {
    let a = session("hash-a", 1_000, 50_000);
    store.insert_console_session(a.clone()).await.unwrap();
    assert_eq!(
        store.console_session("hash-a").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.console_session("hash-x").await.unwrap(), None);

    store.touch_console_session("hash-a", 9_000).await.unwrap();
    store.touch_console_session("hash-a", 5_000).await.unwrap();
    let seen = store.console_session("hash-a").await.unwrap().unwrap();
    assert_eq!(seen.last_seen_at, 9_000, "a touch never moves back");

    let b = session("hash-b", 2_000, 200_000);
    store.insert_console_session(b.clone()).await.unwrap();
    // Starting at 60_000: a (expired at 50_000) goes, b stays.
    let c = ConsoleSession {
        portal: false,
        only_webhook: None,
        role: Role::Admin,
        team_id: None,
        ..session("hash-c", 60_000, 100_000)
    };
    store.insert_console_session(c.clone()).await.unwrap();
    assert_eq!(store.console_session("hash-a").await.unwrap(), None);
    assert_eq!(store.console_session("hash-b").await.unwrap(), Some(b));
    assert_eq!(store.console_session("hash-c").await.unwrap(), Some(c));

    store.delete_console_session("hash-c").await.unwrap();
    assert_eq!(store.console_session("hash-c").await.unwrap(), None);
    // Deleting what is gone is not an error (a second sign-out).
    store.delete_console_session("hash-c").await.unwrap();
}
