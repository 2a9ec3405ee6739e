//! The plugin steps of a delivery: the webhook's transformer chain (run once per delivery; its
//! output is stored so every retry sends the same bytes) and its authenticator (run on every
//! attempt with a fresh `now`).
//!
//! Grafana OnCall webhooks need no explicit plugin: a webhook with `forward_all: false` and a
//! `data` template runs the built-in `template` plugin with `{"body": data}` (plus `url` and
//! `headers` when those are templates too).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::retry::AttemptResult;
use crate::matching::PayloadView;
use crate::model::{
    Delivery, Event, PluginLogLine, PluginRecord, PluginRef, PreparedRequest, Webhook,
};
use crate::plugin::{
    AuthInput, ChainStep, PluginContext, PluginError, PluginHost, PluginKind, TransformOutput,
    Transformed,
};
use crate::store::Store;

pub use super::plugin_refs::{BUILTIN_SECRET_NAMES, secrets_needed, secrets_of, validate_refs};

/// How a transform ended.
#[derive(Debug)]
pub enum TransformResult {
    Send(PreparedRequest),
    Skip(String),
}

/// What an authenticator added that the attempt log needs to know.
#[derive(Debug, Default)]
pub struct Authenticated {
    /// Names of added headers and query parameters whose values hold secrets (masked in the log).
    pub secret_names: Vec<String>,
    /// Cache keys of the OAuth 2.0 tokens used (dropped if the receiver answers 401).
    pub token_keys: Vec<String>,
    pub logs: Vec<PluginLogLine>,
}

/// A plugin as the attempt log names it: `name@version`, or `name` for "the newest installed".
fn label(r: &PluginRef) -> String {
    match &r.version {
        Some(v) => format!("{}@{v}", r.name),
        None => r.name.clone(),
    }
}

/// "The newest installed" version: the highest semantic version (a pre-release below its
/// release); versions stored before uploads had to be semver sort below every semver one, by
/// upload time.
pub fn newest(records: impl Iterator<Item = PluginRecord>) -> Option<PluginRecord> {
    records.max_by(|a, b| {
        let (va, vb) = (
            semver::Version::parse(&a.version).ok(),
            semver::Version::parse(&b.version).ok(),
        );
        va.cmp(&vb).then(a.created_at.cmp(&b.created_at))
    })
}

/// The host's capped log lines as attempt-log lines.
fn log_lines(lines: &[String], role: &str, plugins: &[String]) -> Vec<PluginLogLine> {
    lines
        .iter()
        .map(|l| PluginLogLine::parse(l, role, plugins))
        .collect()
}

/// Runs plugins for deliveries, loading them from the store on first use.
#[derive(Clone)]
pub struct PluginStage {
    host: PluginHost,
    store: Arc<dyn Store>,
    /// OAuth 2.0 tokens for authenticators (set by the delivery engine).
    tokens: Option<Arc<super::oauth2::TokenCache>>,
    /// Single flight for loading: the first use of a plugin compiles it (up to a second of CPU);
    /// concurrent deliveries wait for that one compile instead of each starting their own.
    loading: Arc<tokio::sync::Mutex<()>>,
    /// Which installed plugin a reference names, remembered for [`RESOLVED_TTL`] so a delivery
    /// does not read the plugin table (all of it, for "the newest version") every time.
    resolved: Arc<parking_lot::Mutex<Resolved>>,
}

/// (name, version asked for) to the installed record and when it was read.
type Resolved = HashMap<(String, Option<String>), (Instant, PluginRecord)>;

/// How long a resolved plugin reference is reused. This node forgets at once when a plugin is
/// uploaded or deleted through it; another node sharing the database sees a new "newest"
/// version within this bound.
pub const RESOLVED_TTL: Duration = Duration::from_secs(2);

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// A plugin error as an attempt result: back-pressure (the gateway's own) is transient and not
/// the receiver's fault, the rest permanent.
///
/// The text says "plugin" once: `plugin error: hostile (timeout): timed out after 100 ms`.
fn plugin_failure(name: &str, e: PluginError) -> AttemptResult {
    if e.is_transient() {
        return AttemptResult::Local {
            message: format!("plugin {name}: {e}"),
        };
    }
    let what = match &e {
        PluginError::Guest(g) => g.to_string(),
        other => {
            let text = other.to_string();
            text.strip_prefix("plugin ").unwrap_or(&text).to_string()
        }
    };
    let code = e.code();
    AttemptResult::Plugin {
        message: format!(
            "{name} ({}): {what}",
            code.strip_prefix("plugin_").unwrap_or(code)
        ),
    }
}

impl PluginStage {
    pub fn new(host: PluginHost, store: Arc<dyn Store>) -> Self {
        PluginStage {
            host,
            store,
            tokens: None,
            loading: Arc::default(),
            resolved: Arc::default(),
        }
    }

    /// Forgets every resolved reference (a plugin was uploaded or deleted here).
    pub fn forget_resolved(&self) {
        self.resolved.lock().clear();
    }

    /// [`PluginStage::resolve`] through the short-lived cache; "not installed" is not cached,
    /// so an upload is seen by the next delivery.
    async fn resolve_cached(
        &self,
        r: &PluginRef,
    ) -> Result<Option<PluginRecord>, crate::store::StoreError> {
        let key = (r.name.clone(), r.version.clone());
        if let Some((at, rec)) = self.resolved.lock().get(&key)
            && at.elapsed() < RESOLVED_TTL
        {
            return Ok(Some(rec.clone()));
        }
        let found = Self::resolve(self.store.as_ref(), r).await?;
        if let Some(rec) = &found {
            let mut cache = self.resolved.lock();
            // Bounded: references come from webhooks, but never let it grow without end.
            if cache.len() >= 4096 {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), rec.clone()));
        }
        Ok(found)
    }

    /// The same stage, fetching OAuth 2.0 tokens for authenticators through `tokens`.
    pub fn with_tokens(mut self, tokens: Arc<super::oauth2::TokenCache>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// Drops cached OAuth 2.0 tokens (the receiver answered 401).
    pub fn forget_tokens(&self, keys: &[String]) {
        if let Some(t) = &self.tokens {
            t.forget(keys);
        }
    }

    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// The transformer steps a webhook runs, in order (empty: no plugin).
    pub fn steps(webhook: &Webhook) -> Vec<PluginRef> {
        if !webhook.plugins.is_empty() {
            return webhook.plugins.clone();
        }
        match (&webhook.data, webhook.forward_all) {
            (Some(data), false) => {
                let mut config = json!({ "body": data });
                if let Some(url) = webhook.urls.first().filter(|u| is_template(u)) {
                    config["url"] = json!(url);
                }
                if let Some(h) = webhook.headers.as_ref().filter(|h| is_template(h)) {
                    config["headers"] = json!(h);
                }
                vec![PluginRef {
                    name: "template".into(),
                    version: None,
                    config,
                }]
            }
            _ => Vec::new(),
        }
    }

    /// Finds the installed plugin a reference names (the newest version when none is given).
    pub async fn resolve(
        store: &dyn Store,
        r: &PluginRef,
    ) -> Result<Option<PluginRecord>, crate::store::StoreError> {
        match &r.version {
            Some(v) => store.get_plugin(&r.name, v).await,
            None => {
                let all = store.list_plugins().await?;
                Ok(newest(all.into_iter().filter(|p| p.name == r.name)))
            }
        }
    }

    async fn load(&self, r: &PluginRef, want: PluginKind) -> Result<String, AttemptResult> {
        let record = self
            .resolve_cached(r)
            .await
            .map_err(|e| AttemptResult::Local {
                message: format!("loading plugin {}: {e}", r.name),
            })?
            .ok_or_else(|| AttemptResult::Plugin {
                message: format!("{} is not installed", r.name),
            })?;
        let kind = match self.host.loaded_kind(&record.sha256) {
            Some(kind) => kind,
            None => self.load_slow(r, &record.sha256).await?,
        };
        if kind != want {
            return Err(AttemptResult::Plugin {
                message: format!("{} is a {}, not a {}", r.name, kind.as_str(), want.as_str()),
            });
        }
        Ok(record.sha256)
    }

    async fn load_slow(&self, r: &PluginRef, sha256: &str) -> Result<PluginKind, AttemptResult> {
        let _one_at_a_time = self.loading.lock().await;
        let store = self.store.clone();
        let sha = sha256.to_string();
        self.host
            .load(sha256, || async move {
                store
                    .plugin_bytes(&sha)
                    .await
                    .map_err(|e| PluginError::Internal(e.to_string()))?
                    .ok_or_else(|| {
                        PluginError::Invalid("component bytes missing from the store".into())
                    })
            })
            .await
            .map_err(|e| plugin_failure(&r.name, e))
    }

    /// Loads (compiling on first use) the plugin `r` names and checks its kind; returns its
    /// sha256 or why it cannot run. The plugins page's "try" runs exactly what deliveries run.
    pub async fn loaded(&self, r: &PluginRef, want: PluginKind) -> Result<String, String> {
        self.load(r, want).await.map_err(|e| match e {
            AttemptResult::Plugin { message } | AttemptResult::Local { message } => message,
            other => format!("{other:?}"),
        })
    }

    /// Loads (compiling on first use) every plugin a webhook names, in the background, so its
    /// first delivery does not wait for a compile. Errors surface later, on delivery.
    pub fn preload(&self, webhook: &Webhook) {
        let mut refs: Vec<(PluginRef, PluginKind)> = Self::steps(webhook)
            .into_iter()
            .map(|r| (r, PluginKind::Transformer))
            .collect();
        refs.extend(
            webhook
                .authenticator
                .clone()
                .map(|r| (r, PluginKind::Authenticator)),
        );
        if refs.is_empty() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            for (r, kind) in refs {
                let _ = me.load(&r, kind).await;
            }
        });
    }

    /// Runs the webhook's transformer chain over the shaped request `base`; also returns the
    /// chain's log lines (for the attempt log).
    pub async fn transform(
        &self,
        webhook: &Webhook,
        event: &Event,
        delivery: &Delivery,
        base: PreparedRequest,
        now_ms: i64,
    ) -> (Result<TransformResult, AttemptResult>, Vec<PluginLogLine>) {
        let out = match self
            .run_chain(webhook, event, delivery, base.clone(), now_ms)
            .await
        {
            Ok(Some(out)) => out,
            Ok(None) => return (Ok(TransformResult::Send(base)), Vec::new()),
            Err(result) => return (Err(result), Vec::new()),
        };
        for line in &out.logs {
            tracing::debug!(webhook = %webhook.id, delivery = %delivery.id, plugin_log = %line);
        }
        let names: Vec<String> = Self::steps(webhook).iter().map(label).collect();
        let logs = log_lines(&out.logs, "transformer", &names);
        let result = match out.outcome {
            Transformed::Request(r) => TransformResult::Send(r),
            Transformed::Skip(reason) => TransformResult::Skip(reason),
        };
        (Ok(result), logs)
    }

    /// The chain's full output (logs, time, memory); `None` when the webhook has no plugin.
    pub async fn run_chain(
        &self,
        webhook: &Webhook,
        event: &Event,
        delivery: &Delivery,
        base: PreparedRequest,
        now_ms: i64,
    ) -> Result<Option<TransformOutput>, AttemptResult> {
        let refs = Self::steps(webhook);
        if refs.is_empty() {
            return Ok(None);
        }
        let mut steps = Vec::with_capacity(refs.len());
        for r in &refs {
            let sha256 = self.load(r, PluginKind::Transformer).await?;
            steps.push(ChainStep {
                sha256,
                config_json: r.config.to_string(),
            });
        }
        let payload = PayloadView::for_event(event, webhook)
            .body(event)
            .to_string();
        let context = PluginContext {
            webhook_id: webhook.id.clone(),
            webhook_name: webhook.name.clone(),
            event_type: event.event_type.clone(),
            delivery_id: delivery.id.clone(),
            url: delivery.url.clone(),
            method: webhook.http_method.clone(),
            now_ms,
            attempt: delivery.attempts + 1,
            previous: Some(base),
        };
        let names: Vec<&str> = refs.iter().map(|r| r.name.as_str()).collect();
        self.host
            .transform_chain(&steps, &payload, context)
            .await
            .map(Some)
            .map_err(|e| plugin_failure(&names.join(" > "), e))
    }

    /// `plugin replay`: re-runs a stored delivery's transform with its exact input and reports the
    /// input (secrets masked), the request produced, time, memory and the plugins' log lines.
    pub async fn replay(
        &self,
        webhook: &Webhook,
        event: &Event,
        delivery: &Delivery,
        caps: &super::shaping::SizeCaps,
    ) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "delivery {} of event {} ({}) to {}",
            delivery.id,
            event.id,
            event.event_type,
            crate::secrets::mask::mask_url(&delivery.url, webhook)
        );
        let _ = writeln!(
            out,
            "webhook {} ({}), attempts so far {}",
            webhook.id, webhook.name, delivery.attempts
        );
        for (i, r) in Self::steps(webhook).iter().enumerate() {
            let _ = writeln!(
                out,
                "step {}: {}@{} config {}",
                i + 1,
                r.name,
                r.version.as_deref().unwrap_or("newest"),
                crate::secrets::mask::mask_config(&r.config)
            );
        }
        let payload = PayloadView::for_event(event, webhook)
            .body(event)
            .into_owned();
        let _ = writeln!(out, "input event: {payload}");
        let base = match super::attempt::prepare(webhook, event, &delivery.url, caps) {
            Ok(b) => b,
            Err(f) => {
                let _ = writeln!(out, "error: {f}");
                return out;
            }
        };
        match self
            .run_chain(
                webhook,
                event,
                delivery,
                base.clone(),
                chrono::Utc::now().timestamp_millis(),
            )
            .await
        {
            Ok(None) => {
                let _ = writeln!(out, "no plugin: the request is the shaped payload");
                write_request(&mut out, webhook, &base);
            }
            Ok(Some(o)) => {
                match &o.outcome {
                    Transformed::Request(r) => write_request(&mut out, webhook, r),
                    Transformed::Skip(reason) => {
                        let _ = writeln!(out, "skipped: {reason}");
                    }
                }
                let _ = writeln!(
                    out,
                    "time: {:?}, memory peak: {} KiB",
                    o.elapsed,
                    o.memory_peak_bytes / 1024
                );
                for l in &o.logs {
                    let _ = writeln!(out, "log: {l}");
                }
            }
            Err(e) => {
                let _ = writeln!(out, "error: {e}");
            }
        }
        if let Some(stored) = &delivery.request {
            let _ = writeln!(out, "stored request (sent on every attempt):");
            write_request(&mut out, webhook, stored);
        }
        out
    }

    /// Runs the authenticator, adding its headers and query parameters to `req`. Returns the
    /// names whose values hold secrets (to mask in the attempt log) and its log lines.
    pub async fn authenticate(
        &self,
        webhook: &Webhook,
        delivery: &Delivery,
        req: &mut PreparedRequest,
        now_ms: i64,
    ) -> Result<Authenticated, AttemptResult> {
        let Some(r) = &webhook.authenticator else {
            return Ok(Authenticated::default());
        };
        let sha256 = self.load(r, PluginKind::Authenticator).await?;
        let input = AuthInput {
            request: req.clone(),
            delivery_id: delivery.id.clone(),
            attempt: delivery.attempts + 1,
            now_ms,
            secrets: secrets_of(webhook),
            config_json: if r.config.is_null() {
                "null".into()
            } else {
                r.config.to_string()
            },
        };
        let tokens = self
            .tokens
            .clone()
            .map(|t| crate::plugin::Tokens(t as Arc<dyn crate::plugin::TokenSource>));
        let out = self
            .host
            .authenticate_with_tokens(&sha256, input, tokens)
            .await
            .map_err(|e| plugin_failure(&r.name, e))?;
        req.headers.extend(out.add_headers);
        req.query.extend(out.add_query);
        Ok(Authenticated {
            logs: log_lines(&out.logs, "authenticator", &[label(r)]),
            secret_names: out.secret_names,
            token_keys: out.token_keys,
        })
    }
}

fn write_request(out: &mut String, webhook: &Webhook, r: &PreparedRequest) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "{} {}",
        r.method,
        crate::secrets::mask::mask_url(&r.url, webhook)
    );
    for (k, v) in &r.query {
        let _ = writeln!(out, "  query {k}={v}");
    }
    for (k, v) in crate::secrets::mask::mask_headers(&r.headers, webhook) {
        let _ = writeln!(out, "  {k}: {v}");
    }
    if let Some(b) = &r.body {
        let _ = writeln!(out, "\n{b}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(version: &str, created_at: i64) -> PluginRecord {
        PluginRecord {
            name: "p".into(),
            version: version.into(),
            kind: "transformer".into(),
            sha256: String::new(),
            size: 0,
            description: None,
            builtin: false,
            created_at,
        }
    }

    #[test]
    fn newest_is_semver_order_not_upload_order() {
        let pick = |rs: Vec<PluginRecord>| newest(rs.into_iter()).map(|r| r.version);
        // 1.10.0 was uploaded first but is newer than 1.9.0; a pre-release is below its release.
        let rs = vec![
            rec("1.10.0", 1),
            rec("1.9.0", 2),
            rec("2.0.0-rc.1", 3),
            rec("1.2.0", 4),
        ];
        assert_eq!(pick(rs).as_deref(), Some("2.0.0-rc.1"));
        let rs = vec![rec("2.0.0", 1), rec("2.0.0-rc.1", 2)];
        assert_eq!(pick(rs).as_deref(), Some("2.0.0"));
        // Versions from before semver was required sort below every semver one.
        let rs = vec![rec("0.0.1", 1), rec("latest", 9)];
        assert_eq!(pick(rs).as_deref(), Some("0.0.1"));
        assert_eq!(pick(vec![]), None);
    }

    #[test]
    fn a_plugin_failure_says_plugin_once() {
        let text = plugin_failure("hostile", PluginError::Timeout { limit_ms: 100 }).to_string();
        assert_eq!(
            text,
            "plugin error: hostile (timeout): timed out after 100 ms"
        );
        let guest =
            PluginError::Guest(crate::plugin::GuestError::InvalidConfig("no `mode`".into()));
        let text = plugin_failure("hostile", guest).to_string();
        assert_eq!(
            text,
            "plugin error: hostile (error): invalid config: no `mode`"
        );
        assert_eq!(text.matches("plugin").count(), 1, "{text}");
    }
}
