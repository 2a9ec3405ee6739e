//! The calls themselves: transform, chain, authenticate, and turning their results into gateway
//! types (see the module doc of `plugin` for how a call is isolated and bounded).

use std::time::{Duration, Instant};

use super::bindings::wit;
use super::host_state::HostState;
use super::{
    AuthInput, AuthOutput, ChainStep, GuestError, Instance, PluginContext, PluginError, PluginHost,
    PluginKind, PluginLimits, Tokens, TransformInput, TransformOutput, Transformed, output,
};
use crate::model::PreparedRequest;

impl PluginHost {
    /// Gives a call an unlimited fuel supply when fuel is counted (the CPU deadline still bounds it).
    fn arm_fuel(&self, store: &mut wasmtime::Store<HostState>) {
        if self.inner.count_fuel {
            let _ = store.set_fuel(u64::MAX);
        }
    }

    /// Fuel the call used, when fuel is counted.
    fn fuel_used(&self, store: &wasmtime::Store<HostState>) -> Option<u64> {
        if !self.inner.count_fuel {
            return None;
        }
        store.get_fuel().ok().map(|left| u64::MAX - left)
    }

    /// Runs a transformer once. See the module doc for how the call is isolated and bounded.
    pub async fn transform(
        &self,
        sha256: &str,
        input: TransformInput,
    ) -> Result<TransformOutput, PluginError> {
        let loaded = self.get(sha256, PluginKind::Transformer)?;
        // The epoch ticker runs while this call may run guest code (instantiation included).
        let _running = self.inner.ticker.running();
        let limits = &self.inner.limits;
        check_input_size(
            input.event_json.len() + input.config_json.len() + context_size(&input.context),
            limits,
        )?;
        let config_json = null_if_blank(input.config_json);
        let context = to_wit_context(input.context);
        let started = Instant::now();
        let mut fresh = self
            .fresh(sha256, &loaded, config_json.clone(), Vec::new())
            .await?;
        let Instance::Transformer(instance) = &fresh.instance else {
            unreachable!("a transformer's instance")
        };
        self.arm_fuel(&mut fresh.store);
        let result = instance
            .call_transform(&mut fresh.store, &input.event_json, &context, &config_json)
            .await;
        let elapsed = started.elapsed();
        let fuel = self.fuel_used(&fresh.store);
        let state = fresh.store.data_mut();
        let outcome = match result {
            Err(e) => Err(classify(e, state, limits)),
            Ok(Err(guest)) => Err(PluginError::Guest(guest_error(guest))),
            Ok(Ok(wit::TransformOutcome::Skip(reason))) => Ok(Transformed::Skip(reason)),
            Ok(Ok(wit::TransformOutcome::Send(r))) => {
                let request = from_wit_request(r);
                output::check_request(&request, limits.max_output_bytes)
                    .map(|()| Transformed::Request(request))
            }
        };
        let output = outcome.map(|outcome| TransformOutput {
            outcome,
            logs: state.logs.finish(),
            elapsed,
            memory_peak_bytes: state.limiter.peak_bytes,
            fuel,
        });
        self.recycle(sha256, fresh);
        output
    }

    /// Runs transformers in order. Each sees the event, its own config, and the previous step's
    /// request as `context.previous`; the last request wins. A skip ends the chain. Logs are
    /// concatenated (prefixed with the step number), times added, the memory peak is the largest.
    pub async fn transform_chain(
        &self,
        steps: &[ChainStep],
        event_json: &str,
        context: PluginContext,
    ) -> Result<TransformOutput, PluginError> {
        let mut total = TransformOutput {
            outcome: Transformed::Skip("no plugins in the chain".into()),
            logs: Vec::new(),
            elapsed: Duration::ZERO,
            memory_peak_bytes: 0,
            fuel: None,
        };
        let mut previous = context.previous.clone();
        for (i, step) in steps.iter().enumerate() {
            let input = TransformInput {
                event_json: event_json.to_string(),
                context: PluginContext {
                    previous: previous.take(),
                    ..context.clone()
                },
                config_json: step.config_json.clone(),
            };
            let out = self.transform(&step.sha256, input).await?;
            total
                .logs
                .extend(out.logs.into_iter().map(|l| format!("#{} {l}", i + 1)));
            total.elapsed += out.elapsed;
            total.memory_peak_bytes = total.memory_peak_bytes.max(out.memory_peak_bytes);
            total.fuel = match (total.fuel, out.fuel) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            };
            match out.outcome {
                Transformed::Request(r) => {
                    previous = Some(r.clone());
                    total.outcome = Transformed::Request(r);
                }
                skip @ Transformed::Skip(_) => {
                    total.outcome = skip;
                    return Ok(total);
                }
            }
        }
        Ok(total)
    }

    /// Runs an authenticator for one attempt (its `oauth2` import answers an error).
    pub async fn authenticate(
        &self,
        sha256: &str,
        input: AuthInput,
    ) -> Result<AuthOutput, PluginError> {
        self.authenticate_with_tokens(sha256, input, None).await
    }

    /// Runs an authenticator for one attempt; its `oauth2` import gets tokens from `tokens`.
    pub async fn authenticate_with_tokens(
        &self,
        sha256: &str,
        input: AuthInput,
        tokens: Option<Tokens>,
    ) -> Result<AuthOutput, PluginError> {
        let loaded = self.get(sha256, PluginKind::Authenticator)?;
        let _running = self.inner.ticker.running();
        let limits = &self.inner.limits;
        check_input_size(
            request_size(&input.request) + input.config_json.len(),
            limits,
        )?;
        let config_json = null_if_blank(input.config_json);
        let request = to_wit_request(input.request);
        let attempt = wit::AttemptInfo {
            delivery_id: input.delivery_id,
            attempt: input.attempt,
            now_ms: input.now_ms,
        };
        let started = Instant::now();
        let mut fresh = self
            .fresh(sha256, &loaded, config_json, input.secrets)
            .await?;
        fresh.store.data_mut().tokens = tokens;
        let Instance::Authenticator(instance) = &fresh.instance else {
            unreachable!("an authenticator's instance")
        };
        self.arm_fuel(&mut fresh.store);
        let result = instance
            .call_authenticate(&mut fresh.store, &request, &attempt)
            .await;
        let elapsed = started.elapsed();
        let fuel = self.fuel_used(&fresh.store);
        let output = auth_output(result, fresh.store.data_mut(), elapsed, limits)
            .map(|out| AuthOutput { fuel, ..out });
        self.recycle(sha256, fresh);
        output
    }
}

/// An authenticator's additions (its own, then the secrets it placed), checked.
fn auth_output(
    result: wasmtime::Result<Result<wit::AuthAdditions, wit::PluginError>>,
    state: &mut HostState,
    elapsed: Duration,
    limits: &PluginLimits,
) -> Result<AuthOutput, PluginError> {
    let additions = match result {
        Err(e) => return Err(classify(e, state, limits)),
        Ok(Err(guest)) => return Err(PluginError::Guest(guest_error(guest))),
        Ok(Ok(a)) => a,
    };
    let secret_names: Vec<String> = state
        .placed_headers
        .iter()
        .chain(&state.placed_query)
        .map(|(n, _)| n.clone())
        .collect();
    let mut add_headers = additions.headers;
    add_headers.append(&mut state.placed_headers);
    let mut add_query = additions.query;
    add_query.append(&mut state.placed_query);
    output::check_additions(&add_headers, &add_query, limits.max_output_bytes)?;
    Ok(AuthOutput {
        add_headers,
        add_query,
        secret_names,
        token_keys: std::mem::take(&mut state.token_keys),
        logs: state.logs.finish(),
        elapsed,
        memory_peak_bytes: state.limiter.peak_bytes,
        fuel: None,
    })
}

/// Turns a failed instantiation or call into the specific [`PluginError`].
pub(super) fn classify(
    e: wasmtime::Error,
    state: &mut HostState,
    limits: &PluginLimits,
) -> PluginError {
    if state.timed_out {
        return PluginError::Timeout {
            limit_ms: limits.cpu_deadline_ms,
        };
    }
    if state.limiter.exceeded {
        return PluginError::MemoryLimit {
            limit_bytes: limits.memory_bytes,
        };
    }
    let text = format!("{e:#}");
    if text.contains("maximum concurrent") {
        return PluginError::Busy(limits.max_concurrency);
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        let mut msg = trap.to_string();
        if let Some(panic) = state.logs.panic_message() {
            msg = format!("{msg} ({})", panic.trim_start_matches("[error] "));
        }
        return PluginError::Trap(msg);
    }
    if text.contains("utf-8")
        || text.contains("UTF-8")
        || text.contains("invalid")
        || text.contains("out of bounds")
    {
        // Lifting the guest's return value failed: it handed back malformed data.
        return PluginError::InvalidOutput(text);
    }
    PluginError::Trap(text)
}

fn guest_error(e: wit::PluginError) -> GuestError {
    match e {
        wit::PluginError::InvalidConfig(m) => GuestError::InvalidConfig(m),
        wit::PluginError::InvalidEvent(m) => GuestError::InvalidEvent(m),
        wit::PluginError::Unsupported(m) => GuestError::Unsupported(m),
        wit::PluginError::Other(m) => GuestError::Other(m),
    }
}

fn context_size(c: &PluginContext) -> usize {
    c.webhook_id.len()
        + c.webhook_name.len()
        + c.event_type.len()
        + c.delivery_id.len()
        + c.url.len()
        + c.method.len()
        + c.previous.as_ref().map_or(0, request_size)
}

/// Bytes of a request's url, body, headers and query parameters.
fn request_size(r: &PreparedRequest) -> usize {
    r.url.len()
        + r.body.as_ref().map_or(0, String::len)
        + r.headers
            .iter()
            .chain(&r.query)
            .map(|(a, b)| a.len() + b.len())
            .sum::<usize>()
}

/// Refuses a call whose input is over `max_input_bytes`, before anything runs.
fn check_input_size(size: usize, limits: &PluginLimits) -> Result<(), PluginError> {
    if size > limits.max_input_bytes {
        return Err(PluginError::InputTooLarge {
            size,
            limit: limits.max_input_bytes,
        });
    }
    Ok(())
}

/// A plugin's config JSON; `null` when none was given.
fn null_if_blank(config_json: String) -> String {
    if config_json.trim().is_empty() {
        "null".to_string()
    } else {
        config_json
    }
}

fn to_wit_request(r: PreparedRequest) -> wit::Request {
    wit::Request {
        method: r.method,
        url: r.url,
        query: r.query,
        headers: r.headers,
        body: r.body,
    }
}

fn from_wit_request(r: wit::Request) -> PreparedRequest {
    PreparedRequest {
        method: r.method,
        url: r.url,
        query: r.query,
        headers: r.headers,
        body: r.body,
    }
}

fn to_wit_context(c: PluginContext) -> wit::WebhookContext {
    wit::WebhookContext {
        webhook_id: c.webhook_id,
        webhook_name: c.webhook_name,
        event_type: c.event_type,
        delivery_id: c.delivery_id,
        url: c.url,
        method: c.method,
        now_ms: c.now_ms,
        attempt: c.attempt,
        previous: c.previous.map(to_wit_request),
    }
}
