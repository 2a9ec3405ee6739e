//! Secrets at rest and in answers: every secret kind a webhook can hold is stored sealed (the raw
//! SQLite file and WAL, and every PostgreSQL table, hold none of them), every answer masks them,
//! the data dir, database and key file are private, a wrong or missing master key stops start-up
//! with a clear message, `secrets rotate` keeps every webhook delivering, databases written before
//! sealing are sealed on first start, and `store copy` moves ciphertext only.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gateway::config::Config;
use gateway::model::{Delivery, Event, NewEvent, Webhook};
use gateway::store::Store;
use gateway::store::sqlite::SqliteStore;
use gateway::store::suite::PgTestDb;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN, GatewayProcess, Receiver, TEST_SECRETS_KEY, TestGateway, call};

const WAIT: Duration = Duration::from_secs(15);

/// The whsec_ secret the signing webhook is created with (rotated away later, so it is kept as a
/// retired secret too).
const WHSEC: &str = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTAxMjM0NTY3";

/// Every secret the test stores, each distinctive enough to grep for.
const SECRETS: &[&str] = &[
    "urlpw-7731x",
    "oncallpw-5521x",
    "authzhdr-6621x",
    "customhdr-9931x",
    "bearertok-4411x",
    "basicpw-3381x",
    "apikeyval-8812x",
    "plugintok-2291x",
    WHSEC,
];

/// Webhooks holding every secret kind, all sending to `rx`.
fn webhook_bodies(rx: &Receiver) -> Vec<Value> {
    let with_userinfo = rx
        .url("/a")
        .replacen("http://", "http://user1:urlpw-7731x@", 1);
    vec![
        json!({"name": "oncall", "url": with_userinfo, "trigger_events": ["*"],
            "username": "bob", "password": "oncallpw-5521x",
            "headers": "{\"X-Custom\": \"customhdr-9931x\", \"X-Team\": \"ops\"}",
            "secret_headers": ["X-Custom"],
            "signing": {"type": "standard_webhooks", "secret": WHSEC}}),
        json!({"name": "authz", "url": rx.url("/b"), "trigger_events": ["*"],
            "authorization_header": "Token authzhdr-6621x"}),
        json!({"name": "bearer", "url": rx.url("/c"), "trigger_events": ["*"],
            "auth": {"type": "bearer", "token": "bearertok-4411x"}}),
        json!({"name": "basic", "url": rx.url("/d"), "trigger_events": ["*"],
            "auth": {"type": "basic", "username": "carol", "password": "basicpw-3381x"}}),
        json!({"name": "apikey", "url": rx.url("/e"), "trigger_events": ["*"],
            "auth": {"type": "api_key", "name": "X-Api-Key", "value": "apikeyval-8812x", "in": "header"}}),
        json!({"name": "plugin", "url": rx.url("/f"), "trigger_events": ["*"],
            "plugins": [{"name": "placeholders", "config": {"body": "{\"x\": 1}", "api_token": "plugintok-2291x"}}]}),
    ]
}

/// Creates the webhooks, rotates the first one's signing secret (the old one is kept as retired),
/// posts an event and waits until every webhook was attempted. Returns the ids and the new
/// signing secret.
async fn store_every_kind(gw: &TestGateway, rx: &Receiver) -> (Vec<String>, String, String) {
    let mut ids = Vec::new();
    for b in webhook_bodies(rx) {
        ids.push(
            gw.create_webhook(b).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let (s, rotated) = gw
        .admin(
            Method::POST,
            &format!("/api/v1/webhooks/{}/secret/rotate", ids[0]),
            Some(&json!({"grace_period_secs": 3600})),
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    let event = gw
        .post_event(&json!({"event_type": "incident.triggered", "title": "disk full"}))
        .await;
    rx.wait_for(ids.len(), WAIT).await;
    wait_attempts(gw, &ids).await;
    (ids, new_secret, event)
}

/// Waits until every webhook has an attempt logged.
async fn wait_attempts(gw: &TestGateway, ids: &[String]) {
    let deadline = Instant::now() + WAIT;
    for id in ids {
        loop {
            let (_, v) = gw
                .admin(
                    Method::GET,
                    &format!("/api/v1/webhooks/{id}/attempts"),
                    None,
                )
                .await;
            if v["results"].as_array().is_some_and(|a| !a.is_empty()) {
                break;
            }
            assert!(Instant::now() < deadline, "no attempt for {id}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every answer that shows a webhook, event, delivery or attempt: none may hold a secret.
async fn assert_answers_masked(gw: &TestGateway, ids: &[String], event: &str, secrets: &[&str]) {
    let mut paths = vec![
        "/api/v1/webhooks/".to_string(),
        format!("/api/v1/events/{event}"),
    ];
    for id in ids {
        paths.push(format!("/api/v1/webhooks/{id}"));
        paths.push(format!("/api/v1/webhooks/{id}/attempts"));
        paths.push(format!("/api/v1/webhooks/{id}/responses"));
    }
    let (_, ev) = gw.admin(Method::GET, &paths[1], None).await;
    for d in ev["deliveries"].as_array().expect("deliveries") {
        paths.push(format!("/api/v1/deliveries/{}", d["id"].as_str().unwrap()));
    }
    let mut answers = Vec::new();
    for p in &paths {
        let (s, v) = gw.admin(Method::GET, p, None).await;
        assert!(s.is_success(), "{p}: {s} {v}");
        answers.push((p.clone(), v.to_string()));
    }
    let (s, v) = gw
        .admin(
            Method::POST,
            &format!("/api/v1/webhooks/{}/test", ids[0]),
            None,
        )
        .await;
    assert!(s.is_success(), "test send: {v}");
    answers.push(("test send".into(), v.to_string()));
    for (p, text) in &answers {
        for secret in secrets {
            assert!(!text.contains(secret), "{p} shows {secret}: {text}");
        }
    }
    // The userinfo's password is masked, not dropped: the user stays visible.
    let (_, w) = gw
        .admin(Method::GET, &format!("/api/v1/webhooks/{}", ids[0]), None)
        .await;
    assert!(
        w["url"]
            .as_str()
            .unwrap()
            .contains("user1:****************@"),
        "{w}"
    );
    let (_, p) = gw
        .admin(Method::GET, &format!("/api/v1/webhooks/{}", ids[5]), None)
        .await;
    assert_eq!(
        p["plugins"][0]["config"]["api_token"], "****************",
        "{p}"
    );
    assert_eq!(p["plugins"][0]["config"]["body"], "{\"x\": 1}", "{p}");
}

/// The bytes of the SQLite database and its WAL.
fn sqlite_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in ["gateway.db", "gateway.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(f)) {
            all.extend(b);
        }
    }
    assert!(all.len() > 4096, "the database was read");
    all
}

fn assert_absent(haystack: &[u8], secrets: &[&str], what: &str) {
    for s in secrets {
        assert!(
            !haystack.windows(s.len()).any(|w| w == s.as_bytes()),
            "{what} holds {s} in clear"
        );
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_holds_no_secret_and_no_answer_shows_one() {
    let rx = Receiver::start().await;
    // No secrets_key: the gateway makes <data_dir>/secrets.key. The data dir outlives the gateway.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let d = dir.clone();
    let gw = TestGateway::start_with(move |c| c.data_dir = d, None).await;
    let (ids, new_secret, event) = store_every_kind(&gw, &rx).await;
    // The receivers got the secrets (they are clear in memory and on the wire).
    let got = rx.received();
    let by_path = |p: &str| {
        got.iter()
            .find(|r| r.path == p)
            .unwrap_or_else(|| panic!("{p}"))
    };
    assert_eq!(
        by_path("/c").header("authorization"),
        Some("Bearer bearertok-4411x")
    );
    assert_eq!(by_path("/e").header("x-api-key"), Some("apikeyval-8812x"));
    assert_eq!(
        by_path("/b").header("authorization"),
        Some("Token authzhdr-6621x")
    );
    assert_eq!(by_path("/a").header("x-custom"), Some("customhdr-9931x"));
    let mut secrets = SECRETS.to_vec();
    secrets.push(&new_secret);
    assert_answers_masked(&gw, &ids, &event, &secrets).await;
    gw.stop().await;
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700, "data dir");
        assert_eq!(mode(&dir.join("gateway.db")), 0o600, "database");
        assert_eq!(mode(&dir.join("secrets.key")), 0o600, "key file");
        if dir.join("gateway.db-wal").exists() {
            assert_eq!(mode(&dir.join("gateway.db-wal")), 0o600, "WAL");
        }
    }
    assert_absent(&sqlite_bytes(&dir), &secrets, "the SQLite database");
}

/// `webhook-gateway serve` run to its end: (exit success, stderr).
fn serve_until_exit(data_dir: &Path, key: &str) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-under-test"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("GATEWAY_SECRETS_KEY", key)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.success(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the gateway started (it was expected to refuse)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cli(data_dir: &Path, key: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway-under-test"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("GATEWAY_SECRETS_KEY", key)
        .output()
        .unwrap()
}

async fn post_event(
    client: &reqwest::Client,
    node: &GatewayProcess,
) -> (reqwest::StatusCode, Value) {
    let body = json!({"event_type": "incident.triggered"});
    call(
        client,
        Method::POST,
        &node.url("/api/v1/events"),
        Some(ADMIN),
        Some(&body),
    )
    .await
}

fn key_env(key: &str) -> Vec<(&str, &str)> {
    vec![("GATEWAY_SECRETS_KEY", key)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_key_refuses_to_start_and_rotation_keeps_every_webhook_delivering() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    // First start: key file mode (secrets_key empty).
    let node = tokio::task::block_in_place(|| GatewayProcess::spawn(dir.path(), &key_env("")));
    let body = json!({"name": "rot", "url": rx.url("/r"), "trigger_events": ["*"],
        "auth": {"type": "bearer", "token": "bearertok-4411x"},
        "signing": {"type": "standard_webhooks", "secret": WHSEC}});
    let (s, v) = call(
        &client,
        Method::POST,
        &node.url("/api/v1/webhooks/"),
        Some(ADMIN),
        Some(&body),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    drop(node);
    let key_file = dir.path().join("secrets.key");
    let first_key = std::fs::read_to_string(&key_file).unwrap();

    // A wrong key: refused, naming the mismatch.
    let (ok, err) = tokio::task::block_in_place(|| serve_until_exit(dir.path(), TEST_SECRETS_KEY));
    assert!(!ok && err.contains("master key mismatch"), "{err}");
    // A malformed key: refused, naming the key.
    let (ok, err) = tokio::task::block_in_place(|| serve_until_exit(dir.path(), "c2hvcnQ="));
    assert!(!ok && err.contains("secrets_key"), "{err}");
    // A missing key file while the database holds sealed values: refused, no new key made.
    std::fs::rename(&key_file, dir.path().join("saved.key")).unwrap();
    let (ok, err) = tokio::task::block_in_place(|| serve_until_exit(dir.path(), ""));
    assert!(!ok && err.contains("is missing"), "{err}");
    assert!(!key_file.exists());
    std::fs::rename(dir.path().join("saved.key"), &key_file).unwrap();

    // Rotate with the real binary.
    let new_key =
        String::from_utf8(cli(dir.path(), "", &["secrets", "generate-key"]).stdout).unwrap();
    let new_key = new_key.trim().to_string();
    assert_ne!(new_key, first_key.trim());
    let out = cli(
        dir.path(),
        "",
        &["secrets", "rotate", "--new-key", &new_key],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), new_key);
    #[cfg(unix)]
    assert_eq!(mode(&key_file), 0o600);
    // The old key no longer opens the database.
    let (ok, err) = tokio::task::block_in_place(|| serve_until_exit(dir.path(), first_key.trim()));
    assert!(!ok && err.contains("master key mismatch"), "{err}");

    // Restarted with the new key (from the key file), the webhook delivers with its secrets.
    let node = tokio::task::block_in_place(|| GatewayProcess::spawn(dir.path(), &key_env("")));
    let (s, v) = post_event(&client, &node).await;
    assert_eq!(s, 202, "{v}");
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(r.header("authorization"), Some("Bearer bearertok-4411x"));
    standardwebhooks::Webhook::new(WHSEC)
        .unwrap()
        .verify(&r.body, &r.headers)
        .expect("signature verifies with the stored whsec_ secret");
    // Rotating again through the environment key works too, and is idempotent when re-run.
    drop(node);
    let third =
        String::from_utf8(cli(dir.path(), "", &["secrets", "generate-key"]).stdout).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    for _ in 0..2 {
        let out = cli(
            dir.path(),
            &new_key,
            &["secrets", "rotate", "--new-key", third.trim()],
        );
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        // The second run: the current key no longer matches, but the new one does: nothing to redo.
        assert!(out.status.success(), "{err}");
    }
    let node =
        tokio::task::block_in_place(|| GatewayProcess::spawn(dir.path(), &key_env(third.trim())));
    post_event(&client, &node).await;
    let r = &rx.wait_for(2, WAIT).await[1];
    assert_eq!(r.header("authorization"), Some("Bearer bearertok-4411x"));
    drop(node);
}

/// The shared server's URL with `search_path` set to `schema`.
fn schema_url(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

/// Every row of every table of `schema`, as text.
async fn dump_schema(url: &str, schema: &str) -> String {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .unwrap();
    assert!(tables.len() >= 9, "the schema's tables were found");
    let mut out = String::new();
    for t in tables {
        let name: String = t.get(0);
        for row in client
            .query(
                &format!("SELECT t::text FROM \"{schema}\".\"{name}\" t"),
                &[],
            )
            .await
            .unwrap()
        {
            out.push_str(&row.get::<_, String>(0));
            out.push('\n');
        }
    }
    drop(client);
    let _ = task.await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tables_hold_no_secret() {
    let Some(db) = PgTestDb::create("secrets_pg").await else {
        return;
    };
    let url = schema_url(&db.url, &db.schema);
    let res = tokio::spawn({
        let (base, schema) = (db.url.clone(), db.schema.clone());
        async move {
            let rx = Receiver::start().await;
            let gw = TestGateway::start_with(move |c| c.database_url = url, None).await;
            let (ids, new_secret, event) = store_every_kind(&gw, &rx).await;
            let mut secrets = SECRETS.to_vec();
            secrets.push(&new_secret);
            assert_answers_masked(&gw, &ids, &event, &secrets).await;
            gw.stop().await;
            let dump = dump_schema(&base, &schema).await;
            assert!(dump.contains("enc:v1:"), "sealed values are there");
            assert_absent(dump.as_bytes(), &secrets, "the PostgreSQL tables");
        }
    })
    .await;
    db.drop_schema().await;
    if let Err(e) = res {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A webhook and a pending delivery written in clear, as a gateway before sealing wrote them.
async fn legacy_sqlite(path: &Path) -> Webhook {
    let raw = SqliteStore::open(path).unwrap();
    let w = Webhook {
        id: "wh_legacy".into(),
        name: "legacy".into(),
        urls: vec!["https://u:urlpw-7731x@example.com/h".into()],
        trigger_events: vec!["*".into()],
        auth: gateway::model::Auth::Bearer {
            token: "bearertok-4411x".into(),
        },
        ..Webhook::default()
    };
    raw.insert_webhook(&w).await.unwrap();
    let event = Event::from_body(
        "evt_legacy".into(),
        json!({"event_type": "incident.triggered"}),
        1,
    )
    .unwrap();
    let d = Delivery::new("evt_legacy", &w.id, &w.urls[0], 1);
    raw.ingest(NewEvent {
        event,
        deliveries: vec![d],
        idempotency_key: None,
    })
    .await
    .unwrap();
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_written_in_clear_is_sealed_on_first_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let w = legacy_sqlite(&dir.join("gateway.db")).await;
    let legacy = ["urlpw-7731x", "bearertok-4411x"];
    let before = sqlite_bytes(&dir);
    assert!(
        before.windows(11).any(|x| x == b"urlpw-7731x"),
        "the legacy file is clear"
    );
    let mut config = Config::defaults();
    config.data_dir = dir.clone();
    config.secrets_key = TEST_SECRETS_KEY.into();
    {
        let store = gateway::server::open_store(&config).await.unwrap();
        assert_eq!(
            store.get_webhook(&w.id).await.unwrap().unwrap(),
            w,
            "read back clear"
        );
        let ds = store.deliveries_for_event("evt_legacy").await.unwrap();
        assert_eq!(ds[0].url, w.urls[0]);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_absent(&sqlite_bytes(&dir), &legacy, "the sealed legacy database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_moves_ciphertext_and_postgres_opens_it_with_the_same_key() {
    let Some(db) = PgTestDb::create("secrets_copy").await else {
        return;
    };
    let res = tokio::spawn({
        let (base, schema, target) = (db.url.clone(), db.schema.clone(), db.store.clone());
        async move {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("data");
            std::fs::create_dir_all(&dir).unwrap();
            let w = legacy_sqlite(&dir.join("gateway.db")).await;
            let mut config = Config::defaults();
            config.data_dir = dir.clone();
            config.secrets_key = TEST_SECRETS_KEY.into();
            drop(gateway::server::open_store(&config).await.unwrap());
            let report = gateway::store::copy::sqlite_to_postgres(
                &dir.join("gateway.db"),
                &target,
                gateway::store::copy::CopyOptions::last_days(7),
            )
            .await
            .unwrap();
            assert_eq!(report.inserted("webhooks"), 1);
            let dump = dump_schema(&base, &schema).await;
            assert!(dump.contains("enc:v1:"));
            assert_absent(
                dump.as_bytes(),
                &["urlpw-7731x", "bearertok-4411x"],
                "the copied tables",
            );
            let mut pg = config.clone();
            pg.database_url = schema_url(&base, &schema);
            let store = gateway::server::open_store(&pg).await.unwrap();
            assert_eq!(store.get_webhook(&w.id).await.unwrap().unwrap(), w);
            drop(store);
            // Another key is refused by the copied key check.
            pg.secrets_key = gateway::secrets::MasterKey::generate().to_base64();
            let err = gateway::server::open_store(&pg).await.err().unwrap();
            assert!(
                format!("{err:#}").contains("master key mismatch"),
                "{err:#}"
            );
        }
    })
    .await;
    db.drop_schema().await;
    if let Err(e) = res {
        std::panic::resume_unwind(e.into_panic());
    }
}
