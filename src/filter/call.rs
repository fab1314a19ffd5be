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
use crate::pipeline::{ProviderWire, ResponsePipeline, ResponsePlan};
use crate::request;
use crate::routes::{self, Route};
use crate::usage::Extracted;
use proxy_wasm::types::Action;

/// One provider response, read (and converted when needed) as it passes.
pub struct Response {
    plan: ResponsePlan,
    pub status: u16,
    pipeline: Option<ResponsePipeline>,
    pub first_token_ms: Option<u64>,
    pub complete: bool,
}

impl Response {
    pub fn new(plan: ResponsePlan) -> Self {
        Response { plan, status: 0, pipeline: None, first_token_ms: None, complete: false }
    }

    /// The provider's headers arrived: choose how the body goes back. Pauses
    /// when the body must be converted whole (the status may still change).
    pub fn start(&mut self, status: u16, end_of_stream: bool, started_ms: u64) -> Action {
        self.status = status;
        // Only a Bedrock error needs its error type; every other response saves the hostcall.
        let amzn_error_type = (self.plan.provider == ProviderWire::Bedrock && status >= 400)
            .then(|| host::response_header("x-amzn-errortype"))
            .flatten();
        let pipeline = ResponsePipeline::start(
            self.plan.clone(),
            status,
            host::response_header("content-type").as_deref(),
            amzn_error_type,
            started_ms / 1000,
        );
        if pipeline.rewrites() {
            host::set_response_header("content-length", None);
        }
        if let Some(ct) = pipeline.content_type() {
            host::set_response_header("content-type", Some(ct));
        }
        let hold = pipeline.holds_body() && !end_of_stream;
        self.pipeline = Some(pipeline);
        if hold {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    /// One body callback: tee (and convert) a chunk, or convert the whole body at its end.
    pub fn read(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(pipeline) = self.pipeline.as_mut() else {
            return Action::Continue;
        };
        if pipeline.holds_body() {
            if !end_of_stream {
                return Action::Pause;
            }
            let (out, status) = pipeline.finish_whole(&host::response_body(body_size));
            host::set_response_body(body_size, &out);
            if let Some(status) = status {
                self.status = status;
                host::set_response_header(":status", Some(&status.to_string()));
            }
        } else {
            let fed = pipeline.feed(&host::response_body(body_size), end_of_stream);
            if fed.first_token && self.first_token_ms.is_none() {
                self.first_token_ms = Some(host::now_ms());
            }
            if let Some(out) = fed.replace {
                host::set_response_body(body_size, &out);
            }
        }
        self.complete |= end_of_stream;
        Action::Continue
    }

    pub fn extracted(&mut self) -> Extracted {
        self.pipeline.as_mut().map(ResponsePipeline::finish).unwrap_or_default()
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
        let header = |name: &str| self.header(name);
        let (client_properties, rejected) = properties::header_properties(&self.headers);
        host::increment(self.shared.metrics.properties_rejected, rejected as i64);
        // Gateway directives stop here; the provider has no use for them.
        for (name, _) in self.headers.iter().filter(|(k, _)| k.starts_with("x-posthog-")) {
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

    /// The stream is over, however it ended: account for the call and queue its event.
    pub(super) fn finish_call(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        let r = self.response.take();
        let complete = r.as_ref().is_some_and(|r| r.complete);
        let interrupted = (!complete).then(|| {
            let details = host::property(&["response", "code_details"]).unwrap_or_default();
            let details = String::from_utf8_lossy(&details);
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
            extracted: r.map(|mut r| r.extracted()).unwrap_or_default(),
            interrupted,
        };
        let shared = Rc::clone(&self.shared);
        let cost = accounting::call_cost(&shared.pricing.table(), &call, &out, shared.config.fallback_cost_usd);
        self.count(&call, &out, cost.as_ref());
        let reservations = std::mem::take(&mut self.reservations);
        let real_usd = cost.as_ref().map_or(0.0, |c| c.total_usd);
        shared.record_spend(&reservations, real_usd, call.team_id);
        if let Some((signature, estimate)) = self.admission.take() {
            shared.admissions.borrow_mut().settle(&signature, estimate, crate::limits::usd_to_micro(real_usd));
        }
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
            m.cost_fallback(c, out.extracted.served_model.as_deref().unwrap_or(&call.upstream_model));
        }
    }
}
