//! A hostile transformer for the host's tests. Config `{"mode": ...}` picks the misbehaviour:
//! `loop` (never returns), `memory` (grows memory without bound), `panic`, `recursion` (overflows
//! the stack), `huge-output` (a 64 MiB-ish body, built in steps under the memory cap),
//! `big-output` (a 2 MiB body, over the default 1 MiB output cap), `bad-header` (an invalid
//! header name), `garbage` (a body that is not UTF-8), `bad-url`, `log-flood` (thousands of long log lines), `error` (a plugin error),
//! `skip`, `input` (sends its whole input as the body: event, config and context, with the
//! previous step's request, so tests can show what a plugin sees), and anything else echoes a
//! valid request.

use gateway_sdk::serde_json::Value;
use gateway_sdk::{Context, Error, Event, Outcome, Request, Result, Transformer, log};

pub struct Hostile;

impl Transformer for Hostile {
    fn transform(event: &Event, ctx: &Context, config: &Value) -> Result<Outcome> {
        let mode = config.get("mode").and_then(Value::as_str).unwrap_or("ok");
        let ok = Request::post(&ctx.url).body(event.value().to_string());
        match mode {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile guest panicked on purpose"),
            "recursion" => Ok(Outcome::Send(ok.body(recurse(u64::MAX).to_string()))),
            "big-output" => Ok(Outcome::Send(ok.body("x".repeat(2 << 20)))),
            "huge-output" => Ok(Outcome::Send(ok.body("x".repeat(64 << 20)))),
            "bad-header" => Ok(Outcome::Send(ok.header("bad header\r\nname", "v"))),
            "garbage" => Ok(Outcome::Send(ok.body(garbage()))),
            "bad-url" => Ok(Outcome::Send(Request::post("not a url"))),
            "log-flood" => {
                for i in 0..5_000 {
                    log::info(&format!("line {i} {}", "y".repeat(4_000)));
                }
                Ok(Outcome::Send(ok))
            }
            "error" => Err(Error::invalid_config("hostile guest refuses")),
            "skip" => Ok(Outcome::skip("hostile guest skips")),
            "input" => {
                let previous = ctx.previous.as_ref().map(|p| {
                    gateway_sdk::serde_json::json!({"method": p.method, "url": p.url, "query": p.query,
                        "headers": p.headers, "body": p.body})
                });
                let input = gateway_sdk::serde_json::json!({
                    "event": event.value(), "config": config,
                    "context": {"webhook_id": ctx.webhook_id, "webhook_name": ctx.webhook_name,
                        "event_type": ctx.event_type, "delivery_id": ctx.delivery_id, "url": ctx.url,
                        "method": ctx.method, "attempt": ctx.attempt, "previous": previous},
                });
                Ok(Outcome::Send(ok.body(input.to_string())))
            }
            _ => {
                log::info("hostile guest behaving");
                Ok(Outcome::Send(ok))
            }
        }
    }
}

/// A `String` holding bytes that are not UTF-8. Undefined behaviour in Rust terms, on purpose:
/// this is what a buggy guest in any language can hand the host, which must refuse it.
#[allow(unsafe_code)]
fn garbage() -> String {
    // SAFETY: not safe; the string is only passed to the host, which validates it while lifting.
    unsafe { String::from_utf8_unchecked(vec![b'{', 0xff, 0xfe, 0xc3, b'}']) }
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let pad = std::hint::black_box([n; 16]);
    recurse(std::hint::black_box(n - 1)).wrapping_add(pad[3])
}

gateway_sdk::transformer!(Hostile);
