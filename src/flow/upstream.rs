//! The upstream stage: what leaves for the provider. At the headers, the
//! client's credentials and Envoy directives are removed; once authenticated
//! with the whole body, the body is parsed once and the upstream planned; once
//! the limits allow, Save Mode applies and the headers and body are set.

use std::rc::Rc;

use super::failover::{self, Chain, Fallback};
use super::host::{Host, Metric};
use super::worker::Worker;
use crate::accounting::{self, CallInfo};
use crate::auth::Principal;
use crate::capture::properties;
use crate::cost_controls::{self, Upgrade};
use crate::errors::{ApiError, ErrorKind};
use crate::failover::FAILOVER_HEADER;
use crate::forward;
use crate::pipeline::ResponsePlan;
use crate::providers::Provider;
use crate::request;
use crate::routes::Route;
use crate::wire::header_pairs::Headers;
use crate::wire::{Api, ProviderWire};

/// Everything needed to send a request upstream once its limits allow it.
pub struct Sending {
    pub route: Route,
    pub body_size: usize,
    /// The client's body as read once; Save Mode scans it when the plan keeps it.
    body: Vec<u8>,
    pub upstream: forward::Upstream,
    /// The failover chain's targets after the first, in order.
    pub fallbacks: Vec<forward::Upstream>,
    pub call: CallInfo,
    pub max_output_tokens: Option<u64>,
    save_mode_header: Option<String>,
    pub team_id: i64,
    cost_controls: Option<bool>,
    /// The budget guard's engage tier turns Save Mode on.
    pub budget_engaged: bool,
}

/// Headers that carry a coding agent's session id: Claude Code's, then Codex's.
const SESSION_HEADERS: [&str; 2] = ["x-claude-code-session-id", "session-id"];

/// Removes what must not go upstream as the client sent it
/// ([`forward::dropped_on_arrival`], and the failover relay's header): credentials
/// stay here, only the filter chooses the upstream and steers Envoy's router (its
/// timeout and its retries), and the body may change size.
pub fn strip_client_headers(worker: &Worker, host: &dyn Host, headers: &Headers) {
    for (name, _) in headers.iter() {
        // `dropped_on_arrival` covers every `x-envoy-*`, Envoy's retry controls among them.
        if forward::dropped_on_arrival(name, &worker.config.route_header) || name == FAILOVER_HEADER {
            host.set_request_header(name, None);
        }
    }
}

/// Authenticated and the whole body is here: parse it once and decide the upstream.
pub fn prepare(
    worker: &Worker,
    host: &dyn Host,
    headers: &Headers,
    route: Route,
    principal: &Principal,
    body_size: usize,
    started_ms: u64,
) -> Result<Sending, ApiError> {
    let body = host.request_body(body_size);
    let parsed = request::parse(&body, route.api).map_err(|e| {
        let mut err = ApiError::new(ErrorKind::InvalidRequest, e.message);
        err.param = e.param;
        err
    })?;
    let routed = forward::plan(
        &worker.config,
        &worker.keys,
        host.now_ms(),
        route.api,
        &parsed,
        &body,
        headers.get(forward::PROVIDER_HEADER),
    )?;
    let (mut upstream, mut fallbacks) = failover::plan(worker, host, route.api, &parsed, &body, routed)?;
    for target in std::iter::once(&mut upstream).chain(fallbacks.iter_mut()) {
        if target.all_keys_resting {
            host.count(Metric::KeysAllResting(target.provider), 1);
        }
        // Claude's beta flags go to Bedrock in the body, only those it takes, and only from a Messages client.
        if let (Provider::Bedrock, Api::Messages, Some(flags)) =
            (target.provider, route.api, headers.get("anthropic-beta"))
        {
            let (betas, dropped) = crate::bedrock::bedrock_betas(flags);
            host.count(Metric::BedrockBetasDropped, dropped as u64);
            if !betas.is_empty() {
                let body_now = target.body.as_deref().unwrap_or(&body);
                if let Some(with) = crate::bedrock::with_betas(body_now, &betas) {
                    target.body = Some(with);
                }
            }
        }
    }
    if worker.pricing.table().rejects(Some(upstream.provider), &upstream.model) {
        host.count(Metric::UnpricedRejected, 1);
        return Err(crate::pricing::unpriced(&parsed.model));
    }
    let call = call_info(worker, host, headers, &route, principal, &parsed, &upstream, started_ms);
    Ok(Sending {
        save_mode_header: headers.get(&worker.config.cost_controls.header).map(str::to_string),
        max_output_tokens: parsed.max_output_tokens,
        route,
        body_size,
        body,
        upstream,
        fallbacks,
        call,
        team_id: principal.team_id,
        cost_controls: principal.cost_controls,
        budget_engaged: false,
    })
}

/// Attribution and everything else the call's event needs from the request.
#[allow(clippy::too_many_arguments)]
fn call_info(
    worker: &Worker,
    host: &dyn Host,
    headers: &Headers,
    route: &Route,
    principal: &Principal,
    parsed: &request::ParsedRequest,
    upstream: &forward::Upstream,
    started_ms: u64,
) -> CallInfo {
    let (client_properties, rejected) = properties::header_properties(headers);
    host.count(Metric::PropertiesRejected, rejected as u64);
    // Gateway directives stop here; the provider has no use for them.
    for (name, _) in headers.iter().filter(|(k, _)| k.starts_with("x-posthog-")) {
        host.set_request_header(name, None);
    }
    let capture_content = worker.config.capture.as_ref().is_some_and(|c| c.content);
    let mut gateway_properties = serde_json::Map::new();
    // Coding agents name their session; PostHog groups an agent session's calls by it.
    let session = SESSION_HEADERS
        .iter()
        .find_map(|h| headers.get(h))
        .and_then(|v| properties::sanitize_id(v, properties::MAX_ID_CHARS));
    if let Some(session) = session {
        gateway_properties.insert("$ai_session_id".into(), session.into());
    }
    let content_field = if route.api == Api::Responses { "input" } else { "messages" };
    CallInfo {
        started_ms,
        trace_id: properties::trace_id(headers.get("x-posthog-trace-id"), parsed.metadata_user_id.as_deref()),
        distinct_id: accounting::end_user(parsed, headers.get("x-posthog-distinct-id"), principal),
        team_id: principal.team_id,
        product: worker.config.products.get(route.product).cloned().unwrap_or_default(),
        api_format: route.api.event_name(),
        provider: upstream.provider.name(),
        model: parsed.model.to_string(),
        upstream_model: upstream.model.clone(),
        base_url: upstream.base_url(),
        stream: parsed.stream,
        input: capture_content.then(|| parsed.fields.get(content_field).map(|r| r.get().to_string())).flatten(),
        client_properties,
        gateway_properties,
    }
}

/// Allowed: Save Mode, then the upstream's headers and body, and the chain
/// handed to the relay under `key` (the request's context id). Returns the
/// call's record, how its response comes back, and its chain.
pub fn send(
    worker: &Worker,
    host: &dyn Host,
    s: Sending,
    headers: &Headers,
    key: u32,
) -> (CallInfo, ResponsePlan, Option<Box<Chain>>) {
    let Sending {
        body_size,
        body,
        mut upstream,
        fallbacks,
        mut call,
        save_mode_header,
        team_id,
        cost_controls,
        budget_engaged,
        ..
    } = s;
    for (name, value) in upstream.header_edits(headers) {
        host.set_request_header(name, value);
    }
    // Save Mode applies to every Anthropic-bound body, translated ones included:
    // the upgraded body, if any, and the event's Save Mode properties.
    let product = call.product.clone();
    let save_mode =
        |u: &forward::Upstream, sent: &[u8]| -> (Option<Vec<u8>>, Option<serde_json::Map<String, serde_json::Value>>) {
            if !matches!(u.response.provider, ProviderWire::Anthropic | ProviderWire::Bedrock) {
                return (None, None);
            }
            let decision = cost_controls::decide(
                &worker.config.cost_controls,
                &product,
                team_id,
                cost_controls,
                save_mode_header.as_deref(),
                budget_engaged,
                u.provider == Provider::Bedrock,
            );
            let upgrade = decision.active.then(|| cost_controls::upgrade_cache_ttl(sent));
            let telemetry = cost_controls::telemetry(&decision, upgrade.as_ref());
            match upgrade {
                Some(Upgrade::Upgraded { body: upgraded, .. }) => {
                    host.count(Metric::SaveModeUpgrades, 1);
                    (Some(upgraded), Some(telemetry))
                }
                _ => (None, Some(telemetry)),
            }
        };
    let planned = upstream.body.take();
    let (upgraded, telemetry) = save_mode(&upstream, planned.as_deref().unwrap_or(&body));
    call.gateway_properties.extend(telemetry.unwrap_or_default());
    let new_body = upgraded.or(planned);
    if let Some(new_body) = &new_body {
        host.replace_request_body(body_size, new_body);
    }
    let chain = if fallbacks.is_empty() {
        None
    } else {
        // A fallback sending the client's body as it came shares one copy of it.
        let mut client_body: Option<Rc<Vec<u8>>> = None;
        let fallbacks = fallbacks
            .into_iter()
            .map(|mut u| {
                let planned = u.body.take();
                let (upgraded, _) = save_mode(&u, planned.as_deref().unwrap_or(&body));
                let body = match upgraded.or(planned) {
                    Some(b) => Rc::new(b),
                    None => Rc::clone(client_body.get_or_insert_with(|| Rc::new(body.clone()))),
                };
                Fallback { upstream: u, body }
            })
            .collect();
        let first_len = new_body.as_ref().map_or(body_size, Vec::len);
        failover::start(worker, host, key, &upstream, first_len, fallbacks, headers, call.stream, call.started_ms)
    };
    (call, upstream.response, chain)
}
