//! The first-party connectors end to end: the Squadcast samples delivered through each one to a
//! real receiver standing in for the vendor (its url set to the receiver), and a secret the
//! host places into a body: present at the receiver, absent from the stored delivery, the
//! attempt log and the plugin's input.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::delivery::wait_status;
use super::plugins::{guest, upload};
use crate::support::{Received, Receiver, TestGateway, fixture, test_config};

const WAIT: Duration = Duration::from_secs(60);
const INCIDENT: &str = "619cba1e749fd801ea1cd439";
const ROUTING_KEY: &str = "R0UT1NG-e2e-5c1b7f";
const GENIE_KEY: &str = "g3n1e-e2e-0a9d3e";
const AUTOMATION_TOKEN: &str = "autom-e2e-77f1c2";

/// Each connector's webhook: (connector, path of its url on the receiver, extra webhook fields).
fn connectors(rx: &Receiver) -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("teams", "/teams", json!({})),
        ("discord", "/discord", json!({})),
        ("google-chat", "/google-chat", json!({})),
        ("mattermost", "/mattermost", json!({})),
        (
            "pagerduty",
            "/pagerduty",
            json!({"secrets": {"routing_key": ROUTING_KEY}}),
        ),
        (
            "opsgenie",
            "/opsgenie",
            json!({"secrets": {"genie_key": GENIE_KEY}}),
        ),
        (
            "jira",
            "/jira",
            json!({"secrets": {"automation_token": AUTOMATION_TOKEN},
                "auth": {"type": "basic", "username": "bot@example.com", "password": "jira-api-token-e2e"},
                "config": {"project": "OPS", "automation_url": rx.url("/jira-automation")}}),
        ),
        (
            "zendesk",
            "/zendesk",
            json!({"auth": {"type": "basic", "username": "bot@example.com/token", "password": "zd-token-e2e"},
                "config": {"update_by_external_id": true}}),
        ),
        (
            "zendesk",
            "/zendesk-default",
            json!({"auth": {"type": "basic", "username": "bot@example.com/token", "password": "zd-token-e2e"}}),
        ),
    ]
}

async fn create(gw: &TestGateway, rx: &Receiver, name: &str, path: &str, extra: &Value) -> String {
    let mut body = json!({
        "name": format!("{} connector", path.trim_start_matches('/')),
        "url": rx.url(path),
        "trigger_events": ["incident.triggered", "incident.resolved"],
        "plugins": [{"name": name, "config": extra.get("config").cloned().unwrap_or(Value::Null)}],
    });
    for key in ["secrets", "auth"] {
        if let Some(v) = extra.get(key) {
            body[key] = v.clone();
        }
    }
    let w = gw.create_webhook(body).await;
    w["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: {w}"))
        .to_string()
}

fn by_path<'a>(got: &'a [Received], path: &str) -> Vec<&'a Received> {
    got.iter().filter(|r| r.path == path).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_connector_delivers_the_squadcast_samples_in_its_vendors_shape() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let mut zendesk_default = String::new();
    for (name, path, extra) in connectors(&rx) {
        let id = create(&gw, &rx, name, path, &extra).await;
        if path == "/zendesk-default" {
            zendesk_default = id;
        }
    }
    // Triggered first, every connector's request in; then resolved (Zendesk's default skips it).
    gw.post_event(&fixture("squadcast/incident_triggered.json"))
        .await;
    rx.wait_for(9, WAIT).await;
    let resolved = gw
        .post_event(&fixture("squadcast/incident_resolved.json"))
        .await;
    let got = rx.wait_for(17, WAIT).await;
    let one = |path: &str, n: usize| -> Vec<&Received> {
        let rs = by_path(&got, path);
        assert_eq!(
            rs.len(),
            n,
            "{path}: {:?}",
            got.iter().map(|r| &r.path).collect::<Vec<_>>()
        );
        rs
    };

    let teams = one("/teams", 2);
    for (r, style) in teams.iter().zip(["attention", "good"]) {
        let b = r.json();
        assert_eq!(
            (r.method.as_str(), b["type"].as_str()),
            ("POST", Some("message"))
        );
        let a = &b["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        assert_eq!(a["content"]["body"][0]["style"], style);
    }

    let discord = one("/discord", 2);
    let colours: Vec<Value> = discord
        .iter()
        .map(|r| r.json()["embeds"][0]["color"].clone())
        .collect();
    assert_eq!(colours, [json!(0xD32F2F), json!(0x2E7D32)]);
    assert_eq!(
        discord[0].json()["embeds"][0]["fields"][1]["value"],
        "Team 2 Service 1"
    );

    for r in one("/google-chat", 2) {
        let q = r.query.as_deref().unwrap_or("");
        assert!(q.contains(&format!("threadKey=incident-{INCIDENT}")), "{q}");
        assert_eq!(
            r.json()["cardsV2"][0]["cardId"],
            format!("incident-{INCIDENT}")
        );
    }

    let mm = one("/mattermost", 2);
    assert_eq!(mm[1].json()["attachments"][0]["color"], "#2E7D32");

    // PagerDuty: trigger then resolve of one alert, the routing key put in by the gateway.
    let pd = one("/pagerduty", 2);
    let (trigger, resolve) = (pd[0].json(), pd[1].json());
    assert_eq!(
        (
            trigger["event_action"].as_str(),
            resolve["event_action"].as_str()
        ),
        (Some("trigger"), Some("resolve"))
    );
    assert_eq!(
        trigger["dedup_key"], resolve["dedup_key"],
        "one incident is one PagerDuty alert"
    );
    assert_eq!(trigger["dedup_key"], INCIDENT);
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(resolve["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["payload"]["severity"], "critical");

    let created = one("/opsgenie/v2/alerts", 1)[0];
    assert_eq!(
        created.header("authorization"),
        Some(format!("GenieKey {GENIE_KEY}").as_str())
    );
    assert_eq!(created.json()["alias"], INCIDENT);
    let closed = one(&format!("/opsgenie/v2/alerts/{INCIDENT}/close"), 1)[0];
    assert_eq!(closed.query.as_deref(), Some("identifierType=alias"));
    assert_eq!(
        closed.header("authorization"),
        Some(format!("GenieKey {GENIE_KEY}").as_str())
    );

    let issue = one("/jira/rest/api/3/issue", 1)[0];
    assert!(issue.header("authorization").unwrap().starts_with("Basic "));
    assert_eq!(
        issue.json()["fields"]["labels"][0],
        format!("incident-{INCIDENT}")
    );
    let automation = one("/jira-automation", 1)[0];
    assert_eq!(
        automation.header("x-automation-webhook-token"),
        Some(AUTOMATION_TOKEN)
    );
    assert_eq!(automation.json()["status"], "resolved");

    let ticket = one("/zendesk/api/v2/tickets.json", 1)[0];
    assert_eq!(ticket.json()["ticket"]["external_id"], INCIDENT);
    let update = one("/zendesk/api/v2/tickets/update_many.json", 1)[0];
    assert_eq!(
        (update.method.as_str(), update.query.as_deref()),
        ("PUT", Some(format!("external_ids={INCIDENT}").as_str()))
    );
    assert_eq!(update.json()["ticket"]["status"], "solved");
    // By default Zendesk gets only the documented ticket creation; the resolved event is skipped
    // with the reason in the attempt.
    let created = one("/zendesk-default/api/v2/tickets.json", 1)[0];
    assert_eq!(created.json()["ticket"]["external_id"], INCIDENT);
    assert!(
        got.iter()
            .all(|r| !r.path.starts_with("/zendesk-default/api/v2/tickets/")),
        "no follow-up request by default"
    );
    let (_, e) = gw
        .admin(Method::GET, &format!("/api/v1/events/{resolved}"), None)
        .await;
    let skipped = e["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["webhook_id"] == zendesk_default.as_str())
        .unwrap_or_else(|| panic!("no delivery for the default zendesk webhook: {e}"));
    let d = wait_status(&gw, skipped["id"].as_str().unwrap(), "succeeded").await;
    let why = d["attempt_log"][0]["error"].as_str().unwrap_or_default();
    assert!(
        why.starts_with(
            "skipped by plugin: zendesk: `incident.resolved` not sent: Zendesk documents no request that updates a ticket by external_id"
        ) && why.contains("`update_by_external_id: true`"),
        "{d}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_the_host_places_reaches_the_receiver_only() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let secrets = json!({"routing_key": ROUTING_KEY});
    let pd = gw
        .create_webhook(
            json!({"name": "pd", "url": rx.url("/pd"), "trigger_events": ["incident.triggered"],
            "plugins": [{"name": "pagerduty"}], "secrets": secrets}),
        )
        .await;
    let pd_id = pd["id"].as_str().unwrap().to_string();
    assert_eq!(
        pd["secrets"],
        json!({"routing_key": "****************"}),
        "never shown"
    );
    // The same chain, then a guest that sends its whole input: what a plugin can see.
    let (status, up) = upload(&gw, "echo", "1.0.0", guest("hostile")).await;
    assert_eq!(status, 201, "{up}");
    gw.create_webhook(json!({"name": "seen", "url": rx.url("/seen"), "trigger_events": ["incident.triggered"],
        "plugins": [{"name": "pagerduty"}, {"name": "echo", "config": {"mode": "input"}}], "secrets": secrets}))
        .await;
    // A connector whose secret the webhook lacks is refused when saved, naming it.
    let (status, problem) = gw
        .admin(
            Method::POST,
            "/api/v1/webhooks",
            Some(
                &json!({"name": "no key", "url": rx.url("/x"), "trigger_events": ["*"],
                "plugins": [{"name": "pagerduty"}], "secrets": {"other": "x-value-1"}}),
            ),
        )
        .await;
    assert_eq!(
        (status.as_u16(), problem["field"].as_str()),
        (400, Some("secrets")),
        "{problem}"
    );
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("\"routing_key\"") && detail.contains("named secrets: other"),
        "{problem}"
    );
    // A transformer asking at delivery for a secret the webhook lacks: a permanent failure
    // naming it, with nothing sent.
    let lacking = gw
        .create_webhook(json!({"name": "lacking", "url": rx.url("/lacking"), "trigger_events": ["incident.triggered"],
            "plugins": [{"name": "template", "config": {"body": "{\"routing_key\": {\"$secret\": \"routing_key\"}}"}}],
            "secrets": {"other": "x-value-1"}}))
        .await;

    let event = gw
        .post_event(&fixture("squadcast/incident_triggered.json"))
        .await;
    let got = rx.wait_for(2, WAIT).await;
    let sent = by_path(&got, "/pd")[0];
    assert_eq!(
        sent.json()["routing_key"],
        ROUTING_KEY,
        "present at the receiver"
    );
    // The signature covers the body as sent, with the key in it.
    let (_, signing) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{pd_id}/secret"),
            None,
        )
        .await;
    let verifier = standardwebhooks::Webhook::new(signing["secret"].as_str().unwrap()).unwrap();
    verifier
        .verify(&sent.body, &sent.headers)
        .expect("signature over the filled body");

    let seen = by_path(&got, "/seen")[0];
    let input = String::from_utf8_lossy(&seen.body);
    assert!(
        input.contains(r#"{\"$secret\":\"routing_key\"}"#),
        "the chain passes the placeholder: {input}"
    );
    assert!(
        !input.contains(ROUTING_KEY),
        "a plugin's input never holds the secret: {input}"
    );

    // The attempt log and the stored delivery keep the placeholder.
    let (_, e) = gw
        .admin(Method::GET, &format!("/api/v1/events/{event}"), None)
        .await;
    let mut ids = BTreeMap::new();
    for d in e["deliveries"].as_array().unwrap() {
        ids.insert(
            d["webhook_id"].as_str().unwrap().to_string(),
            d["id"].as_str().unwrap().to_string(),
        );
    }
    let d = wait_status(&gw, &ids[&pd_id], "succeeded").await;
    let logged = d["attempt_log"][0]["request_body"].as_str().unwrap();
    assert!(
        logged.contains(r#""routing_key":{"$secret":"routing_key"}"#),
        "{logged}"
    );
    let (_, attempts) = gw
        .admin(
            Method::GET,
            &format!("/api/v1/webhooks/{pd_id}/attempts"),
            None,
        )
        .await;
    assert!(attempts.to_string().contains("$secret"), "{attempts}");
    assert!(!attempts.to_string().contains(ROUTING_KEY), "{attempts}");
    assert!(!d.to_string().contains(ROUTING_KEY), "{d}");

    let failed = wait_status(&gw, &ids[lacking["id"].as_str().unwrap()], "failed").await;
    let why = failed["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("\"routing_key\"") && why.contains("its named secrets: other"),
        "{failed}"
    );
    assert!(!why.contains("x-value-1"), "{why}");
    assert!(by_path(&rx.received(), "/lacking").is_empty());

    // Read the stored delivery back through the store itself.
    let store = gateway::server::open_store(&test_config(gw.dir.path()))
        .await
        .unwrap();
    let stored = store.deliveries_for_event(&event).await.unwrap();
    let pd_stored = stored.iter().find(|d| d.webhook_id == pd_id).unwrap();
    let body = pd_stored.request.as_ref().unwrap().body.as_deref().unwrap();
    assert!(
        body.contains(r#""routing_key":{"$secret":"routing_key"}"#),
        "{body}"
    );
    for d in &stored {
        assert!(
            !format!("{d:?}").contains(ROUTING_KEY),
            "stored delivery holds the secret: {d:?}"
        );
    }
    drop(store);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_secrets_are_checked_when_saved_and_kept_when_sent_back_masked() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let base = json!({"name": "s", "url": rx.url("/s"), "trigger_events": ["*"]});
    for (secrets, field) in [
        (json!({"bad name": "v"}), "secrets.bad name"),
        (json!({"token": "v"}), "secrets.token"),
        (json!({"k": ""}), "secrets.k"),
        (json!({"k": 3}), "secrets.k"),
        (json!({"k": "****************"}), "secrets.k"),
        (json!(["k"]), "secrets"),
    ] {
        let mut body = base.clone();
        body["secrets"] = secrets;
        let (s, problem) = gw
            .admin(Method::POST, "/api/v1/webhooks", Some(&body))
            .await;
        assert_eq!(
            (s.as_u16(), problem["field"].as_str()),
            (400, Some(field)),
            "{problem}"
        );
    }
    let mut body = base.clone();
    body["secrets"] = json!({"a": "first-value-1", "b": "second-value-2"});
    let w = gw.create_webhook(body).await;
    let id = w["id"].as_str().unwrap();
    assert_eq!(
        w["secrets"],
        json!({"a": "****************", "b": "****************"})
    );
    // Sent back masked: kept; left out: removed.
    let (s, v) = gw
        .admin(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&json!({"secrets": {"a": "****************"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["secrets"], json!({"a": "****************"}));
    let store = gateway::server::open_store(&test_config(gw.dir.path()))
        .await
        .unwrap();
    let stored = store.get_webhook(id).await.unwrap().unwrap();
    assert_eq!(
        stored.secrets.get("a").map(String::as_str),
        Some("first-value-1")
    );
    assert_eq!(stored.secrets.len(), 1);
    drop(store);
    gw.stop().await;
}
