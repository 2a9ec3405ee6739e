//! Runs every function of the shared store suite (`gateway::store::suite`) against both backends:
//! SQLite in a fresh file, PostgreSQL in a fresh schema (dropped afterwards). PostgreSQL tests
//! print "skipped: PostgreSQL not reachable" and pass when no server answers, unless
//! `GATEWAY_TEST_REQUIRE_POSTGRES=1`, which makes them fail instead.

use std::sync::Arc;

use gateway::store::Store;
use gateway::store::sqlite::SqliteStore;
use gateway::store::suite;

async fn on_sqlite<Fut: Future<Output = ()>>(f: impl FnOnce(Arc<dyn Store>) -> Fut) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.db");
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
        .await
        .unwrap()
        .unwrap();
    f(Arc::new(store)).await;
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    on_sqlite(suite::$name).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    suite::with_pg(stringify!($name), |store, _schema| suite::$name(store)).await;
                }
            )*
        }
    };
}

gateway::store_suite_fns!(both_backends);

/// The URL form of isolation: `options=-csearch_path=...` alone selects (and creates) the schema.
#[tokio::test]
async fn postgres_search_path_in_url_isolates() {
    let base = suite::pg_test_url();
    let schema = format!("gwt_url_{}_{:08x}", std::process::id(), rand_u32());
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let store = match gateway::store::postgres::PostgresStore::connect(&url).await {
        Ok(s) => s,
        Err(e) if !suite::pg_required() => {
            return eprintln!("skipped: PostgreSQL not reachable ({e})");
        }
        Err(e) => panic!("PostgreSQL required: {e}"),
    };
    let res = async {
        store
            .insert_webhook(&suite::webhook(gateway::model::Scope::Global, 1))
            .await
            .unwrap();
        let client = store.pool().get().await.unwrap();
        let row = client
            .query_one(
                "SELECT current_schema(), (SELECT COUNT(*) FROM webhooks)",
                &[],
            )
            .await
            .unwrap();
        let (current, n): (String, i64) = (row.get(0), row.get(1));
        (current, n)
    }
    .await;
    suite::drop_schema(&base, &schema).await.unwrap();
    assert_eq!(res, (schema, 1));
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}
