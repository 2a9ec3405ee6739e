//! Optional OpenTelemetry trace export (OTLP over HTTP with JSON bodies), off by default.
//!
//! When `otlp.endpoint` is set, each event becomes one trace, a tree: `event.accepted` is its
//! root (with `event.matched` and the store write under it), and `delivery.transform` and each
//! `delivery.attempt` are children of `event.accepted`, in whichever node and task runs them.
//! No trace context is stored with the event: the trace id is derived from the event id, and the
//! root's span id from the trace id, so any stage can name its parent. `event.accepted` is given
//! exactly those ids when it starts (by the provider's id generator, [`EventIds`]).
//!
//! Spans use the target [`TARGET`]; the log's own layer ignores it, so turning traces on does not
//! change the log. When export is off, no span is created at all ([`enabled`] is checked first).

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider};
use sha2::{Digest, Sha256};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::OtlpConfig;

/// The `tracing` target of the gateway's trace spans.
pub const TARGET: &str = "webhook_gateway::trace";

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are exported (checked before building any span on the hot path).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The `tracing` layer exporting the gateway's spans, when `otlp.endpoint` is set. Must be
/// called inside the tokio runtime (the exporter sends on it).
pub fn layer<S>(config: &OtlpConfig) -> anyhow::Result<Option<impl tracing_subscriber::Layer<S>>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if config.endpoint.is_empty() {
        return Ok(None);
    }
    let endpoint = format!("{}/v1/traces", config.endpoint.trim_end_matches('/'));
    let timeout = Duration::from_secs(config.timeout_secs.max(1));
    let client = OnRuntime {
        client: reqwest::Client::builder().timeout(timeout).build()?,
        runtime: tokio::runtime::Handle::current(),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(endpoint)
        .with_timeout(timeout)
        .with_http_client(client)
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_id_generator(EventIds::default())
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("webhook-gateway");
    let _ = PROVIDER.set(provider);
    ENABLED.store(true, Ordering::Relaxed);
    let only_ours =
        tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::INFO);
    Ok(Some(tracing_subscriber::Layer::with_filter(
        tracing_opentelemetry::layer().with_tracer(tracer),
        only_ours,
    )))
}

/// Sends the spans still buffered (at shutdown).
pub fn flush() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
    }
}

/// The name of every trace's root span.
const ROOT: &str = "event.accepted";

/// The trace of `event_id`: its id and the span id of its root.
fn event_trace(event_id: &str) -> (TraceId, SpanId) {
    let digest = Sha256::digest(event_id.as_bytes());
    let trace_id = TraceId::from_bytes(digest[..16].try_into().expect("16 bytes"));
    (trace_id, root_span_id(trace_id))
}

/// The span id of the root (`event.accepted`) of `trace`: derived from the trace id alone, so a
/// span that knows its trace (the transform, inside an attempt) can name the root too.
fn root_span_id(trace: TraceId) -> SpanId {
    let digest = Sha256::digest(trace.to_bytes());
    SpanId::from_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// A child of the root of `trace` (the root may have been exported by another node).
fn under_root(span: &tracing::Span, trace: TraceId) {
    let root = SpanContext::new(
        trace,
        root_span_id(trace),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(root));
}

thread_local! {
    /// The ids the span started next on this thread takes: set only while [`in_event_trace`]
    /// starts an `event.accepted` span.
    static NEXT_IDS: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// The provider's id generator: random ids, except for the root span [`in_event_trace`] starts.
#[derive(Debug, Default)]
struct EventIds(RandomIdGenerator);

impl IdGenerator for EventIds {
    fn new_trace_id(&self) -> TraceId {
        match NEXT_IDS.with(Cell::get) {
            Some((trace, _)) => trace,
            None => self.0.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> SpanId {
        match NEXT_IDS.with(Cell::get) {
            Some((_, span)) => span,
            None => self.0.new_span_id(),
        }
    }
}

/// Clears [`NEXT_IDS`] when dropped (also when starting the span panicked).
struct ClearNextIds;

impl Drop for ClearNextIds {
    fn drop(&mut self) {
        NEXT_IDS.with(|n| n.set(None));
    }
}

/// Puts `span` in the trace of `event_id`: an `event.accepted` span becomes the trace's root
/// (started now, with the ids derived from the event id, and no parent even when it is created
/// inside another span); any other span becomes a child of that root.
pub fn in_event_trace(span: &tracing::Span, event_id: &str) {
    if !enabled() || span.is_none() {
        return;
    }
    let (trace, root) = event_trace(event_id);
    if span.metadata().is_some_and(|m| m.name() == ROOT) {
        let _ = span.set_parent(opentelemetry::Context::new());
        NEXT_IDS.with(|n| n.set(Some((trace, root))));
        let _clear = ClearNextIds;
        // Starting the span (which `context` does) draws its ids from the generator now, on
        // this thread.
        let _ = span.context();
    } else {
        under_root(span, trace);
    }
}

/// The exporter's HTTP client: the gateway's reqwest, run on the gateway's runtime (the batch
/// exporter calls it from its own thread, which has no reactor).
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let mut req = client
                .request(parts.method, parts.uri.to_string())
                .body(body);
            for (k, v) in &parts.headers {
                req = req.header(k, v);
            }
            let resp = req.send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = sent.await??;
        Ok(Response::builder().status(status).body(body)?)
    }
}

/// The span of one attempt of `d` (a disabled span when export is off).
pub fn attempt_span(d: &crate::model::Delivery) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(target: TARGET, "delivery.attempt",
        delivery.id = %d.id, webhook.id = %d.webhook_id, attempt = d.attempts + 1,
        http.status = tracing::field::Empty, outcome = tracing::field::Empty,
        error = tracing::field::Empty);
    in_event_trace(&span, &d.event_id);
    span
}

/// Puts an attempt's outcome on its span.
pub fn record_attempt(span: &tracing::Span, a: &crate::model::Attempt) {
    if span.is_none() {
        return;
    }
    span.record("http.status", a.status_code.map(i64::from).unwrap_or(0));
    span.record("outcome", a.outcome.as_str());
    if let Some(e) = &a.error {
        span.record("error", e.as_str());
    }
}

/// The span of a delivery's transform. It runs inside the first attempt, but is a child of the
/// event's root beside the attempts (the trace of the attempt span current when it is created).
pub fn transform_span() -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(target: TARGET, "delivery.transform");
    let trace = tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id();
    if trace != TraceId::INVALID {
        under_root(&span, trace);
    }
    span
}
