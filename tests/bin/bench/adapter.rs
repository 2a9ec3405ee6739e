//! How the benchmark talks to the system under test. An adapter creates the subscription that
//! sends every benchmark event to the benchmark's receiver, posts one event, and says which
//! answers mean "accepted". Another webhook system (Svix, Hookdeck, ...) is one more impl of
//! [`Adapter`] and one more arm in [`by_name`].

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

pub trait Adapter: Send + Sync {
    /// Creates a subscription delivering every benchmark event to `receiver` (a URL); with
    /// `template`, shaped by the system's templating. Returns its id.
    fn subscribe<'a>(&'a self, receiver: &'a str, template: bool) -> BoxFut<'a, String>;
    /// Removes what [`Adapter::subscribe`] made.
    fn unsubscribe<'a>(&'a self, id: &'a str) -> BoxFut<'a, ()>;
    /// How many ingest URLs there are; events go round-robin over them.
    fn nodes(&self) -> usize;
    /// The request posting one event body (JSON) to ingest URL number `node`.
    fn post_event(&self, node: usize, body: Vec<u8>) -> reqwest::RequestBuilder;
    /// Whether an answer to [`Adapter::post_event`] means the event was durably accepted.
    fn accepted(&self, status: StatusCode) -> bool;
    /// The benchmark's fields in what the receiver got: `(bench_seq, sent_at_ns)`. The default
    /// finds them at the top level of a JSON body or under `data` / `payload` (envelopes).
    fn receipt(&self, body: &[u8]) -> Option<(u64, u64)> {
        let v: Value = serde_json::from_slice(body).ok()?;
        [&v, &v["data"], &v["payload"]]
            .into_iter()
            .find_map(|o| Some((o["bench_seq"].as_u64()?, o["sent_at_ns"].as_u64()?)))
    }
}

pub fn by_name(name: &str, urls: &[String], token: &str) -> anyhow::Result<Box<dyn Adapter>> {
    match name {
        "gateway" => Ok(Box::new(Gateway::new(urls, token)?)),
        other => anyhow::bail!("unknown --adapter {other} (known: gateway)"),
    }
}

/// The Squadcast `incident_triggered` sample with a unique id, the benchmark's sequence number
/// and the send time in nanoseconds since the Unix epoch.
pub fn event_body(sample: &Value, seq: u64, sent_at_ns: u64) -> Vec<u8> {
    let mut v = sample.clone();
    v["id"] = json!(format!("bench-{seq:016x}"));
    v["bench_seq"] = json!(seq);
    v["sent_at_ns"] = json!(sent_at_ns);
    serde_json::to_vec(&v).unwrap_or_default()
}

pub fn sample() -> Value {
    serde_json::from_str(include_str!(
        "../../fixtures/squadcast/incident_triggered.json"
    ))
    .unwrap_or_else(|_| json!({"event_type": "incident_triggered"}))
}

/// This project's gateway: `POST /api/v1/webhooks/` with the API key, events to `/api/v1/events`.
pub struct Gateway {
    client: reqwest::Client,
    bases: Vec<String>,
    events: Vec<String>,
    token: String,
}

impl Gateway {
    fn new(urls: &[String], token: &str) -> anyhow::Result<Gateway> {
        anyhow::ensure!(!urls.is_empty(), "--url is required");
        let bases: Vec<String> = urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        Ok(Gateway {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .build()?,
            events: bases.iter().map(|b| format!("{b}/api/v1/events")).collect(),
            bases,
            token: token.to_string(),
        })
    }
}

impl Adapter for Gateway {
    fn subscribe<'a>(&'a self, receiver: &'a str, template: bool) -> BoxFut<'a, String> {
        Box::pin(async move {
            let mut w =
                json!({"name": "bench", "url": receiver, "trigger_events": ["incident.triggered"]});
            if template {
                // The `template` plugin (minijinja, a WebAssembly call per delivery) renders a
                // body that still carries the benchmark's fields.
                w["plugins"] = json!([{"name": "template", "config": {"body":
                    "{\"bench_seq\": {{ bench_seq }}, \"sent_at_ns\": {{ sent_at_ns }}, \"text\": {{ message | tojson }}, \"service\": {{ service.name | tojson }}}"}}]);
            }
            let r = self
                .client
                .post(format!("{}/api/v1/webhooks/", self.bases[0]))
                .header("Authorization", &self.token)
                .json(&w)
                .send()
                .await
                .context("creating the webhook")?;
            let status = r.status();
            let body: Value = r.json().await.unwrap_or_default();
            anyhow::ensure!(status == 201, "creating the webhook: {status} {body}");
            body["id"]
                .as_str()
                .map(str::to_string)
                .context("no id in the created webhook")
        })
    }

    fn unsubscribe<'a>(&'a self, id: &'a str) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let r = self
                .client
                .delete(format!("{}/api/v1/webhooks/{id}/", self.bases[0]))
                .header("Authorization", &self.token)
                .send()
                .await?;
            anyhow::ensure!(
                r.status().is_success(),
                "deleting the webhook: {}",
                r.status()
            );
            Ok(())
        })
    }

    fn nodes(&self) -> usize {
        self.events.len()
    }

    fn post_event(&self, node: usize, body: Vec<u8>) -> reqwest::RequestBuilder {
        self.client
            .post(&self.events[node % self.events.len()])
            .header("Authorization", &self.token)
            .header("Content-Type", "application/json")
            .body(body)
    }

    fn accepted(&self, status: StatusCode) -> bool {
        status == StatusCode::ACCEPTED
    }
}
