//! Key revocation across two real gateway processes on one PostgreSQL schema: refused at once on
//! the node that revoked it, within `auth.key_cache_secs` on the other (measured); the same for
//! `webhook-gateway keys revoke` run beside them; and per-tenant idempotency when one team's key
//! is posted to both nodes at once. Skipped with the reason printed when PostgreSQL is
//! unreachable, unless `GATEWAY_TEST_REQUIRE_POSTGRES=1`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use gateway::store::suite::{pg_test_url, with_pg};
use reqwest::Method;
use serde_json::json;

use crate::support::{ADMIN, GatewayProcess, call};

/// The cache bound the nodes run with (`GATEWAY_AUTH__KEY_CACHE_SECS`).
const CACHE_SECS: u64 = 2;

fn schema_url(schema: &str) -> String {
    let base = pg_test_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

fn spawn_node(dir: &tempfile::TempDir, envs: &[(&str, &str)]) -> GatewayProcess {
    tokio::task::block_in_place(|| GatewayProcess::spawn(dir.path(), envs))
}

async fn status(client: &reqwest::Client, node: &GatewayProcess, token: &str) -> u16 {
    call(
        client,
        Method::GET,
        &node.url("/api/v1/webhooks/"),
        Some(token),
        None,
    )
    .await
    .0
    .as_u16()
}

/// Polls until `node` refuses `token`; returns how long it took.
async fn until_refused(client: &reqwest::Client, node: &GatewayProcess, token: &str) -> Duration {
    let t0 = Instant::now();
    loop {
        if status(client, node, token).await == 401 {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(CACHE_SECS * 5),
            "the revoked key was still accepted after {:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn manager(client: &reqwest::Client, node: &GatewayProcess, team: &str) -> (String, String) {
    let (s, k) = call(
        client,
        Method::POST,
        &node.url("/api/v1/keys"),
        Some(ADMIN),
        Some(&json!({"name": team, "role": "manager", "team_id": team})),
    )
    .await;
    assert_eq!(s, 201, "{k}");
    (
        k["id"].as_str().unwrap().into(),
        k["token"].as_str().unwrap().into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_at_once_here_and_within_the_cache_bound_on_the_other_node() {
    with_pg("tenancy_revoke", |_store, schema| async move {
        let url = schema_url(&schema);
        let secs = CACHE_SECS.to_string();
        let envs = [
            ("GATEWAY_DATABASE_URL", url.as_str()),
            ("GATEWAY_DELIVERY__ENABLED", "false"),
            ("GATEWAY_AUTH__KEY_CACHE_SECS", secs.as_str()),
        ];
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let (a, b) = (spawn_node(&dirs[0], &envs), spawn_node(&dirs[1], &envs));
        let client = reqwest::Client::new();
        let bound = Duration::from_secs(CACHE_SECS) + Duration::from_millis(500);

        // Through the API of node a.
        let (id, token) = manager(&client, &a, "T1").await;
        // Both nodes know (and cache) the key.
        assert_eq!(
            (
                status(&client, &a, &token).await,
                status(&client, &b, &token).await
            ),
            (200, 200)
        );
        let (s, v) = call(
            &client,
            Method::DELETE,
            &a.url(&format!("/api/v1/keys/{id}")),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(s, 204, "{v}");
        let revoked_at = Instant::now();
        assert_eq!(
            status(&client, &a, &token).await,
            401,
            "refused at once where revoked"
        );
        until_refused(&client, &b, &token).await;
        let took = revoked_at.elapsed();
        assert!(
            took <= bound,
            "node b refused it after {took:?}, bound {bound:?}"
        );
        eprintln!("API revocation reached the other node in {took:?} (bound {CACHE_SECS} s)");

        // Through the CLI, beside both running nodes.
        let (id2, token2) = manager(&client, &b, "T2").await;
        assert_eq!(
            (
                status(&client, &a, &token2).await,
                status(&client, &b, &token2).await
            ),
            (200, 200)
        );
        let out = tokio::task::block_in_place(|| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gateway-under-test"));
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("GATEWAY_") {
                    cmd.env_remove(k);
                }
            }
            cmd.args([
                "--data-dir",
                dirs[0].path().to_str().unwrap(),
                "keys",
                "revoke",
                &id2,
            ])
            .env("GATEWAY_DATABASE_URL", &url)
            // The nodes' master key: the CLI opens the same (sealed) store.
            .env("GATEWAY_SECRETS_KEY", crate::support::TEST_SECRETS_KEY)
            .output()
            .unwrap()
        });
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let revoked_at = Instant::now();
        let (ta, tb) = tokio::join!(
            until_refused(&client, &a, &token2),
            until_refused(&client, &b, &token2)
        );
        let took = revoked_at.elapsed();
        assert!(
            took <= bound,
            "CLI revocation took {ta:?} / {tb:?}, bound {bound:?}"
        );
        eprintln!("CLI revocation reached both nodes in {ta:?} / {tb:?}");
        // The list keeps both, revoked, without tokens.
        let (_, list) = call(
            &client,
            Method::GET,
            &a.url("/api/v1/keys"),
            Some(ADMIN),
            None,
        )
        .await;
        let revoked: HashSet<&str> = list["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["revoked"] == true)
            .map(|k| k["id"].as_str().unwrap())
            .collect();
        assert_eq!(revoked, HashSet::from([id.as_str(), id2.as_str()]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_teams_key_on_two_nodes_makes_one_event_and_another_teams_same_key_its_own() {
    with_pg("tenancy_idem", |store, schema| async move {
        let url = schema_url(&schema);
        let envs = [
            ("GATEWAY_DATABASE_URL", url.as_str()),
            ("GATEWAY_DELIVERY__ENABLED", "false"),
        ];
        let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let a = spawn_node(&dirs[0], &envs);
        let client = reqwest::Client::new();
        let (_, ta) = manager(&client, &a, "A").await;
        let (_, tb) = manager(&client, &a, "B").await;
        // A global webhook so every event has one delivery row to count.
        let (s, w) = call(
            &client,
            Method::POST,
            &a.url("/api/v1/webhooks/"),
            Some(ADMIN),
            Some(&json!({"name": "g", "url": "http://127.0.0.1:9/h", "trigger_events": ["*"]})),
        )
        .await;
        assert_eq!(s, 201, "{w}");
        // Started after the webhook exists, so both nodes match it.
        let b = spawn_node(&dirs[1], &envs);
        let post = |node: &GatewayProcess, token: &str, team: &str, key: &str| {
            let req = client
                .post(node.url("/api/v1/events"))
                .header("Authorization", token)
                .header("Idempotency-Key", key)
                .json(&json!({"event_type": "incident.triggered", "team_id": team}));
            async move {
                let r = req.send().await.unwrap();
                let replayed = r.headers().get("idempotent-replayed").is_some();
                assert_eq!(r.status(), 202);
                let v: serde_json::Value = r.json().await.unwrap();
                (v["id"].as_str().unwrap().to_string(), replayed)
            }
        };
        let rounds = 10;
        for k in 0..rounds {
            let key = format!("k-{k}");
            let ((ia, ra), (ib, rb), (other, ro)) = tokio::join!(
                post(&a, &ta, "A", &key),
                post(&b, &ta, "A", &key),
                post(&b, &tb, "B", &key),
            );
            assert_eq!(ia, ib, "team A's key on two nodes made two events");
            assert_eq!(
                u8::from(ra) + u8::from(rb),
                1,
                "exactly one answer is the replay"
            );
            assert_ne!(other, ia, "team B's same key must be its own event");
            assert!(!ro);
        }
        let total: u64 = store
            .delivery_counts()
            .await
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(total, 2 * rounds, "one event per team and key");
    })
    .await;
}
