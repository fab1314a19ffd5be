//! One forwarded call: what the request says about it, its response read as
//! it passes (usage, first token, the injected usage chunk removed), and at
//! stream end its cost, metrics and `$ai_generation` event.

use std::rc::Rc;

use super::host;
use super::http::Request;
use crate::accounting::{self, CallInfo, Outcome};
use crate::auth::Principal;
use crate::capture::properties;
use crate::forward;
use crate::request;
use crate::routes::{self, Route};
use crate::usage::{UsageChunkStripper, UsageTracker};

/// Reading one provider response without holding it back.
pub struct Response {
    pub status: u16,
    pub tracker: Option<UsageTracker>,
    /// Removes the usage chunk the gateway asked for on the client's behalf.
    pub stripper: Option<UsageChunkStripper>,
    pub first_token_ms: Option<u64>,
    pub complete: bool,
}

impl Response {
    pub fn new(strip_usage_chunk: bool) -> Self {
        Response {
            status: 0,
            tracker: None,
            stripper: strip_usage_chunk.then(UsageChunkStripper::default),
            first_token_ms: None,
            complete: false,
        }
    }

    /// The provider's headers arrived: choose how to read the body.
    pub fn start(&mut self, status: u16, api_format: &str) {
        let streaming = host::response_header("content-type").is_some_and(|c| c.starts_with("text/event-stream"));
        self.status = status;
        self.tracker = Some(UsageTracker::new(accounting::wire_of(api_format), streaming));
        if !(streaming && status == 200) {
            self.stripper = None;
        }
        if self.stripper.is_some() {
            host::set_response_header("content-length", None);
        }
    }
}

impl Request {
    /// Attribution and everything else the call's event needs from the request.
    pub(super) fn call_info(
        &self,
        route: &Route,
        principal: &Principal,
        parsed: &request::ParsedRequest,
        upstream: &forward::Upstream,
    ) -> CallInfo {
        let headers = host::request_headers();
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let (client_properties, rejected) = properties::header_properties(&headers);
        host::increment(self.shared.metrics.properties_rejected, rejected as i64);
        // Gateway directives stop here; the provider has no use for them.
        for (name, _) in headers.iter().filter(|(k, _)| k.starts_with("x-posthog-")) {
            host::set_request_header(name, None);
        }
        let capture_content = self.shared.config.capture.as_ref().is_some_and(|c| c.content);
        let content_field = if route.endpoint == crate::routes::Endpoint::Responses { "input" } else { "messages" };
        CallInfo {
            started_ms: self.started_ms,
            uuid: properties::new_uuid(),
            trace_id: properties::trace_id(header("x-posthog-trace-id"), parsed.metadata_user_id.as_deref()),
            distinct_id: accounting::end_user(parsed, header("x-posthog-distinct-id"), principal),
            team_id: principal.team_id,
            product: self.shared.config.products.get(route.product).cloned().unwrap_or_default(),
            api_format: accounting::api_format(route.endpoint),
            provider: upstream.provider.name(),
            model: parsed.model.to_string(),
            upstream_model: upstream.model.clone(),
            base_url: format!("https://{}{}", upstream.authority, upstream.base_path),
            stream: parsed.stream,
            input: capture_content.then(|| parsed.fields.get(content_field).map(|r| r.get().to_string())).flatten(),
            client_properties,
            gateway_properties: Default::default(),
        }
    }

    /// Tees one response chunk through the usage reader; strips the injected usage chunk.
    pub(super) fn read_response(&mut self, body_size: usize, end_of_stream: bool) {
        let Some(r) = self.response.as_mut() else {
            return;
        };
        let Some(tracker) = r.tracker.as_mut() else {
            return;
        };
        let chunk = host::response_body(body_size);
        if tracker.feed(&chunk).first_token && r.first_token_ms.is_none() {
            r.first_token_ms = Some(host::now_ms());
        }
        if let Some(stripper) = r.stripper.as_mut() {
            let mut out = stripper.feed(&chunk);
            if end_of_stream {
                out.extend(stripper.finish());
            }
            if out != chunk {
                host::set_response_body(body_size, &out);
            }
        }
        r.complete |= end_of_stream;
    }

    /// The stream is over, however it ended: account for the call and queue its event.
    pub(super) fn finish_call(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        let r = self.response.take();
        let details = host::property(&["response", "code_details"]).unwrap_or_default();
        let details = String::from_utf8_lossy(&details);
        let complete = r.as_ref().is_some_and(|r| r.complete);
        let interrupted = (!complete).then(|| {
            if details.contains("downstream") {
                "client disconnected before the response completed".to_string()
            } else {
                format!("response did not complete ({})", routes::truncate(&details, 80))
            }
        });
        let status = r.as_ref().map_or(0, |r| r.status);
        let out = Outcome {
            status: if status == 0 { 499 } else { status },
            ended_ms: host::now_ms(),
            first_token_ms: r.as_ref().and_then(|r| r.first_token_ms),
            extracted: r.and_then(|mut r| r.tracker.as_mut().map(UsageTracker::finish)).unwrap_or_default(),
            interrupted,
        };
        let shared = Rc::clone(&self.shared);
        let cost = accounting::call_cost(&shared.config.prices, &call, &out, shared.config.fallback_cost_usd);
        self.count(&call, &out, cost.as_ref());
        if let Some(capture) = &shared.capture {
            let mut capture = capture.borrow_mut();
            let settings = &capture.settings;
            let event = accounting::generation(&call, &out, cost.as_ref(), settings.content)
                .to_json(&settings.region_url, settings.max_event_bytes);
            capture.push(Rc::from(event), out.ended_ms);
            host::increment(shared.metrics.events_queued, 1);
        }
    }

    fn count(&self, call: &CallInfo, out: &Outcome, cost: Option<&crate::pricing::Cost>) {
        let m = &self.shared.metrics;
        m.response(call.provider, out.status);
        match &out.extracted.usage {
            Some(u) => {
                host::increment(m.tokens_input, u.input_tokens as i64);
                host::increment(m.tokens_output, u.output_tokens as i64);
                host::increment(m.tokens_cache_read, u.cache_read_tokens.unwrap_or(0) as i64);
                host::increment(m.tokens_cache_creation, u.cache_creation_tokens.unwrap_or(0) as i64);
                host::increment(m.tokens_reasoning, u.reasoning_tokens.unwrap_or(0) as i64);
            }
            None if (200..300).contains(&out.status) => host::increment(m.usage_missing, 1),
            None => {}
        }
        if let Some(c) = cost {
            host::increment(m.cost_micro_usd, (c.total_usd * 1e6).round() as i64);
            if c.source == crate::pricing::CostSource::Fallback {
                host::increment(m.cost_fallback, 1);
            }
        }
    }
}
