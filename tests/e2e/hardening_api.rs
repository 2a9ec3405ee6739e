//! The small holes of the hardening pass: `/metrics` behind a token or on its own address, empty
//! JSON test sends send the sample, and every refusal (the framework's own included) is an
//! RFC 9457 problem body.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::support::{ADMIN, Receiver, TestGateway, fixture};

const WAIT: Duration = Duration::from_secs(15);

async fn problem(r: reqwest::Response) -> (u16, Value, reqwest::header::HeaderMap) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "status {status}"
    );
    let v: Value = r.json().await.expect("problem body is JSON");
    assert_eq!(v["status"], status, "{v}");
    assert!(v["title"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert!(v["detail"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert!(
        v["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://")),
        "{v}"
    );
    (status, v, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_a_problem_body() {
    let gw = TestGateway::start_with(|c| c.delivery.enabled = false, None).await;
    let w = gw
        .create_webhook(
            json!({"name": "p", "url": "https://example.com/h", "trigger_events": ["*"]}),
        )
        .await;
    let wid = w["id"].as_str().unwrap();
    let c = &gw.client;
    // 404 on an unknown route.
    let (s, v, _) = problem(c.get(gw.url("/no/such/route")).send().await.unwrap()).await;
    assert_eq!(s, 404);
    assert!(
        v["detail"].as_str().unwrap().contains("/no/such/route"),
        "{v}"
    );
    // 405 keeps Allow.
    let (s, v, h) = problem(
        c.delete(gw.url("/api/v1/events"))
            .header("Authorization", ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 405);
    assert!(
        h.get("allow")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("POST")),
        "{h:?}"
    );
    assert!(v["detail"].as_str().unwrap().contains("DELETE"), "{v}");
    // Malformed JSON: 400 naming the problem.
    let (s, v, _) = problem(
        c.post(gw.url("/api/v1/webhooks/"))
            .header("Authorization", ADMIN)
            .header("Content-Type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(v["detail"].as_str().unwrap().contains("JSON"), "{v}");
    // Missing or wrong content type: 415.
    for ct in [None, Some("text/plain")] {
        let mut r = c
            .post(gw.url("/api/v1/webhooks/"))
            .header("Authorization", ADMIN)
            .body("{\"name\": \"x\"}");
        if let Some(ct) = ct {
            r = r.header("Content-Type", ct);
        }
        let (s, v, _) = problem(r.send().await.unwrap()).await;
        assert_eq!(s, 415, "{ct:?}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("application/json"),
            "{v}"
        );
    }
    let (s, _, _) = problem(
        c.post(gw.url("/api/v1/keys"))
            .header("Authorization", ADMIN)
            .header("Content-Type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 415);
    // A JSON body of the wrong shape names the field.
    let (s, v, _) = problem(
        c.post(gw.url(&format!("/api/v1/webhooks/{wid}/recover")))
            .header("Authorization", ADMIN)
            .json(&json!({"since": 5}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["field"], "since", "{v}");
    // A bad query parameter names it.
    let (s, v, _) = problem(
        c.get(gw.url("/api/v1/webhooks/?page_size=abc"))
            .header("Authorization", ADMIN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["field"], "page_size", "{v}");
    // A body past the axum default limit on a JSON route: 413.
    let (s, _, _) = problem(
        c.post(gw.url("/api/v1/webhooks/"))
            .header("Authorization", ADMIN)
            .header("Content-Type", "application/json")
            .body(format!("{{\"name\": \"{}\"}}", "x".repeat(3 << 20)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 413);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_behind_a_token_or_on_their_own_address() {
    let gw = TestGateway::start_with(|c| c.metrics_token = "scrape-secret".into(), None).await;
    let c = &gw.client;
    let (s, v, h) = problem(c.get(gw.url("/metrics")).send().await.unwrap()).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(h.get("www-authenticate").unwrap(), "Bearer");
    let (s, _, _) = problem(
        c.get(gw.url("/metrics"))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 401);
    let r = c
        .get(gw.url("/metrics"))
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("# EOF"));
    gw.stop().await;

    // A separate address: /metrics there, 404 on the API listener.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let maddr = free.local_addr().unwrap();
    drop(free);
    let gw = TestGateway::start_with(|c| c.metrics_listen = maddr.to_string(), None).await;
    let (s, _, _) = problem(gw.client.get(gw.url("/metrics")).send().await.unwrap()).await;
    assert_eq!(s, 404);
    let r = reqwest::get(format!("http://{maddr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, _, _) = problem(
        reqwest::get(format!("http://{maddr}/api/v1/events"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404, "the metrics address serves only /metrics");
    gw.stop().await;
    // Both listeners stopped.
    assert!(TcpStream::connect(maddr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_json_test_send_sends_the_sample() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start().await;
    let w = gw
        .create_webhook(json!({"name": "t", "url": rx.url("/t"), "trigger_events": ["*"]}))
        .await;
    let path = gw.url(&format!(
        "/api/v1/webhooks/{}/test",
        w["id"].as_str().unwrap()
    ));
    let sample = fixture("squadcast/incident_triggered.json");
    for ct in [None, Some("application/json")] {
        let mut r = gw.client.post(&path).header("Authorization", ADMIN);
        if let Some(ct) = ct {
            r = r.header("Content-Type", ct);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 200, "{ct:?}: {}", r.text().await.unwrap());
        let a: Value = r.json().await.unwrap();
        assert_eq!(a["outcome"], "success", "{a}");
    }
    let got = rx.wait_for(2, WAIT).await;
    for g in &got {
        assert_eq!(g.json(), sample);
    }
    // A non-empty body that is not JSON is still refused.
    let r = gw
        .client
        .post(&path)
        .header("Authorization", ADMIN)
        .header("Content-Type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    let (s, _, _) = problem(r).await;
    assert_eq!(s, 400);
    gw.stop().await;
}
