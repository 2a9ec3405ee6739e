//! Matching one event against 10,000 webhooks (a realistic mix: most on other types, teams or
//! services; some with filters, integration filters or trigger templates; a few disabled).
//!
//! `cargo bench -p webhook-gateway --bench matching` (release). Prints p50 / p99 / max per event,
//! plus build, rebuild and dry-run (`explain`) costs. Results: `docs/benchmarks-matching.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use gateway::matching::Matcher;
use gateway::model::{Event, Webhook};
use serde_json::{Value, json};

const WEBHOOKS: usize = 10_000;
const TEAMS: u64 = 200;
const SERVICES: u64 = 1_000;
const ITERATIONS: usize = 20_000;

const FIXTURE: &str = include_str!("../../tests/fixtures/squadcast/incident_triggered.json");

/// xorshift64*: deterministic, so every run measures the same mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const TYPES: &[&str] = &[
    "incident.triggered",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.reassigned",
    "incident.escalated",
    "incident.resolved",
    "incident.reopened",
    "incident.silenced",
    "incident.unsilenced",
    "deploy.finished",
    "maintenance.started",
    "postmortem.published",
];

fn webhook(i: usize, rng: &mut Rng) -> Webhook {
    let scope = match rng.below(100) {
        0..5 => json!({"kind": "global"}),
        5..60 => json!({"kind": "team", "team_id": format!("team-{}", rng.below(TEAMS))}),
        _ => {
            json!({"kind": "service", "team_id": null, "service_id": format!("svc-{}", rng.below(SERVICES))})
        }
    };
    let triggers: Vec<&str> = match rng.below(100) {
        0..2 => vec!["*"],
        2..8 => vec!["status change"],
        8..30 => vec![rng.pick(TYPES), rng.pick(TYPES)],
        _ => vec![rng.pick(TYPES)],
    };
    let filter = match rng.below(100) {
        0..10 => json!({"services": [format!("svc-{}", rng.below(SERVICES)), "team-2-service-1"]}),
        10..18 => {
            json!({"status": {"$in": ["triggered", "acknowledged"]}, "event_count": {"$gte": 1}})
        }
        18..24 => json!({"message": {"$regex": "(?i)database|disk full"}}),
        24..30 => json!({"match": "any", "rules": [
            {"field": "alert_source", "op": "in", "value": ["squadcastui", "prometheus"]},
            {"match": "all", "rules": [
                {"field": "assigned_to.type", "op": "is", "value": "user"},
                {"field": "service.slug", "op": "matches", "value": "^team-"}
            ]}
        ]}),
        30..33 => json!({"$or": [{"tags.env": "prod"}, {"owner.type": {"$ne": "team"}}]}),
        _ => Value::Null,
    };
    let integration_filter = if rng.below(100) < 5 {
        json!(["CRV8A5MXC751A", "6077f7225fdc7075e371685f"])
    } else {
        Value::Null
    };
    let trigger_template = if rng.below(1000) < 5 {
        json!("{{ status == 'triggered' and service.slug.startswith('team-') }}")
    } else {
        Value::Null
    };
    serde_json::from_value(json!({
        "id": format!("wh_{i}"), "name": format!("webhook {i}"), "is_webhook_enabled": rng.below(100) >= 5,
        "scope": scope, "urls": [format!("https://hooks.example.com/{i}")], "http_method": "POST",
        "trigger_events": triggers, "forward_all": true, "signing": {"type": "none"}, "timeout_secs": 15,
        "filter": filter, "integration_filter": integration_filter, "trigger_template": trigger_template,
        "created_at": 0, "updated_at": 0,
    }))
    .expect("a valid webhook")
}

fn events() -> Vec<Event> {
    let base: Value = serde_json::from_str(FIXTURE).expect("fixture");
    [
        ("incident_triggered", 7, 42),
        ("incident_acknowledged", 13, 7),
        ("incident_resolved", 199, 999),
        ("deploy.finished", 0, 1),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (ty, team, svc))| {
        let mut body = base.clone();
        body["event_type"] = json!(ty);
        body["owner"] = json!({"id": format!("team-{team}"), "type": "team"});
        body["service_id"] = json!(format!("svc-{svc}"));
        body["service"]["id"] = json!(format!("svc-{svc}"));
        Event::from_body(format!("evt_{i}"), body, 0).expect("event")
    })
    .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    println!(
        "{name:<34} p50 {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}  ({} runs)",
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
        samples.len()
    );
}

fn main() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let hooks: Vec<Webhook> = (0..WEBHOOKS).map(|i| webhook(i, &mut rng)).collect();

    let t = Instant::now();
    let matcher = Matcher::new(hooks.clone());
    let build = t.elapsed();
    assert!(matcher.invalid().is_empty(), "{:?}", matcher.invalid());
    let mut changed = hooks.clone();
    changed[17].name.push_str(" (renamed)");
    let t = Instant::now();
    let rebuilt = black_box(matcher.rebuild(changed));
    let rebuild = t.elapsed();
    println!(
        "matcher over {WEBHOOKS} webhooks: build {build:.2?}, rebuild with one change {rebuild:.2?}"
    );
    drop(rebuilt);

    let events = events();
    for e in &events {
        let fired = matcher.matches(e).len();
        let explained = matcher.explain(e).iter().filter(|d| d.fired()).count();
        assert_eq!(fired, explained, "explain and matches disagree");
        println!(
            "  {:<24} team {:<9} fires {fired} webhooks",
            e.event_type,
            e.scope.team_id.as_deref().unwrap_or("-")
        );
    }

    for _ in 0..2_000 {
        for e in &events {
            black_box(matcher.matches(black_box(e)));
        }
    }
    let mut all = Vec::with_capacity(ITERATIONS * events.len());
    for e in &events {
        let mut samples = Vec::with_capacity(ITERATIONS);
        for _ in 0..ITERATIONS {
            let t = Instant::now();
            black_box(matcher.matches(black_box(e)));
            samples.push(t.elapsed());
        }
        all.extend_from_slice(&samples);
        report(&format!("matches({})", e.event_type), samples);
    }
    report("matches(all events)", all);

    let mut samples = Vec::with_capacity(200);
    for _ in 0..200 {
        let t = Instant::now();
        black_box(matcher.explain(black_box(&events[0])));
        samples.push(t.elapsed());
    }
    report("explain (dry run, all 10k decisions)", samples);
}
