//! Per-request context: a phase enum driven by host callbacks.
//!
//! Headers: resolve the route, check the credential, start the principal
//! lookup (cache, shared data, or one callout per key per worker), strip
//! client credentials, pause. Body: pause until complete. Whichever of the
//! lookup and the body finishes last parses the body once, plans the
//! upstream, sets headers (and the body if it changed) and lets the request
//! go. Provider responses pass through untouched; Envoy's own error replies
//! are rewritten into the client's API error format.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host;
use super::root::Shared;
use crate::accounting::{self, CallInfo, Outcome};
use crate::auth::{self, Cached, Lookup, Principal};
use crate::capture::properties;
use crate::errors::{self, ApiError, ApiFormat, ErrorKind};
use crate::forward::{self, CREDENTIAL_HEADERS};
use crate::request;
use crate::routes::{self, Route};
use crate::usage::{UsageChunkStripper, UsageTracker};

enum Phase {
    /// Waiting for request headers.
    Start,
    /// Headers accepted; waiting for the principal and the whole body.
    Pending {
        route: Route,
        principal: Option<Rc<Principal>>,
        /// Buffered body size once the body is complete.
        body_size: Option<usize>,
    },
    /// Sent upstream; the provider's response is streaming back.
    Forwarded { format: ApiFormat, provider: &'static str },
    /// Envoy replied with an error instead of the provider; replacing its body.
    RewritingError { body: String },
    /// The filter replied itself; nothing more to do.
    Replied { format: ApiFormat },
}

/// Per-request state, shared (weakly) with the requests waiting on the same key.
pub struct Request {
    id: u32,
    shared: Rc<Shared>,
    phase: Phase,
    /// Key hash, while this request's callout is the one in flight for it
    /// (kept outside `phase`: a request may reply early with its callout still out).
    leading: Option<String>,
    started_ms: u64,
    /// Set once the request is sent upstream; becomes the call's event.
    call: Option<Box<CallInfo>>,
    /// The provider's response, as read so far.
    response: Option<Response>,
}

/// Reading one provider response without holding it back.
struct Response {
    status: u16,
    tracker: Option<UsageTracker>,
    /// Removes the usage chunk the gateway asked for on the client's behalf.
    stripper: Option<UsageChunkStripper>,
    first_token_ms: Option<u64>,
    complete: bool,
}

/// A request waiting for another request's auth callout.
pub type Waiter = (u32, Weak<RefCell<Request>>);

pub struct HttpFilter {
    req: Rc<RefCell<Request>>,
}

impl HttpFilter {
    pub fn new(id: u32, shared: Rc<Shared>) -> Self {
        HttpFilter {
            req: Rc::new(RefCell::new(Request {
                id,
                shared,
                phase: Phase::Start,
                leading: None,
                started_ms: 0,
                call: None,
                response: None,
            })),
        }
    }
}

/// What an auth lookup ended with, for the requests waiting on it.
#[derive(Clone)]
enum AuthOutcome {
    Known(Rc<Principal>),
    Unknown,
    Failed,
}

impl Request {
    fn reply(&mut self, error: ApiError, format: ApiFormat) -> Action {
        log::info!("#{} local reply {}", self.id, error.status());
        host::increment(self.shared.metrics.local_replies, 1);
        host::send_reply(&error.reply(format));
        self.phase = Phase::Replied { format };
        Action::Pause
    }

    fn format(&self) -> ApiFormat {
        match &self.phase {
            Phase::Pending { route, .. } => route.endpoint.format(),
            Phase::Forwarded { format, .. } | Phase::Replied { format } => *format,
            _ => ApiFormat::OpenAi,
        }
    }

    fn on_headers(&mut self, end_of_stream: bool, me: &Rc<RefCell<Request>>) -> Action {
        host::increment(self.shared.metrics.requests, 1);
        self.started_ms = host::now_ms();
        let method = host::request_header(":method").unwrap_or_default();
        let path = host::request_header(":path").unwrap_or_default();
        let route = match routes::resolve(&method, &path, &self.shared.config.products) {
            Ok(r) => r,
            Err((e, format)) => return self.reply(e, format),
        };
        let format = route.endpoint.format();
        if end_of_stream {
            let e = ApiError::new(ErrorKind::InvalidRequest, "Request body is empty; expected a JSON object");
            return self.reply(e, format);
        }
        let token = auth::credentials(
            host::request_header("authorization").as_deref(),
            host::request_header("x-api-key").as_deref(),
        );
        for name in CREDENTIAL_HEADERS {
            host::set_request_header(name, None);
        }
        // Only the filter chooses the upstream and its timeout; the body may change size.
        host::set_request_header(&self.shared.config.route_header, None);
        host::set_request_header("x-envoy-upstream-rq-timeout-ms", None);
        host::set_request_header("content-length", None);
        let token = match token {
            Ok(t) => t,
            Err(e) => {
                host::increment(self.shared.metrics.auth_rejected, 1);
                return self.reply(e, format);
            }
        };
        self.phase = Phase::Pending { route, principal: None, body_size: None };
        let hash = token.hash();
        match self.shared.cached_principal(&hash) {
            Some(Cached::Known(p)) => {
                host::increment(self.shared.metrics.auth_cache_hits, 1);
                self.on_auth(AuthOutcome::Known(p), false)
            }
            Some(Cached::Unknown) => {
                host::increment(self.shared.metrics.auth_cache_hits, 1);
                self.on_auth(AuthOutcome::Unknown, false)
            }
            None => self.start_lookup(hash, me),
        }
    }

    /// Joins the callout in flight for this key, or starts one.
    fn start_lookup(&mut self, hash: String, me: &Rc<RefCell<Request>>) -> Action {
        if self.shared.join_flight(&hash, (self.id, Rc::downgrade(me))) {
            return Action::Pause;
        }
        let a = &self.shared.config.auth;
        let path = format!("{}{}{}", a.path_prefix, hash, a.path_suffix);
        let headers = [(":method", "GET"), (":path", path.as_str()), (":authority", a.authority.as_str())];
        host::increment(self.shared.metrics.auth_lookups, 1);
        match host::http_call(&a.cluster, &headers, None, a.timeout_ms) {
            Some(token) => {
                self.shared.start_flight(token, hash.clone());
                self.leading = Some(hash);
                Action::Pause
            }
            None => self.on_auth(AuthOutcome::Failed, false),
        }
    }

    /// The lookup finished. `resume` is set outside the request's own callbacks.
    fn on_auth(&mut self, outcome: AuthOutcome, resume: bool) -> Action {
        self.leading = None;
        let Phase::Pending { route, principal, body_size } = &mut self.phase else {
            return Action::Continue;
        };
        let format = route.endpoint.format();
        let p = match outcome {
            AuthOutcome::Known(p) => p,
            AuthOutcome::Unknown => {
                host::increment(self.shared.metrics.auth_rejected, 1);
                return self.reply(ApiError::new(ErrorKind::Authentication, "Invalid API key"), format);
            }
            AuthOutcome::Failed => {
                host::increment(self.shared.metrics.auth_unavailable, 1);
                let e = ApiError::new(ErrorKind::Unavailable, "Authentication service unavailable; try again")
                    .code("auth_unavailable");
                return self.reply(e, format);
            }
        };
        let product = self.shared.config.products.get(route.product).map_or("", String::as_str);
        if let Err(e) = auth::authorize(&p, &self.shared.config.auth.required_scope, product) {
            host::increment(self.shared.metrics.auth_rejected, 1);
            return self.reply(e, format);
        }
        *principal = Some(Rc::clone(&p));
        let Some(size) = *body_size else {
            return Action::Pause;
        };
        let route = route.clone();
        let action = self.forward(route, &p, size);
        if resume && matches!(action, Action::Continue) {
            host::resume_request();
        }
        action
    }

    fn on_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        let Phase::Pending { route, principal, body_size, .. } = &mut self.phase else {
            return Action::Continue;
        };
        let limit = self.shared.config.max_request_body_bytes;
        if size > limit {
            let format = route.endpoint.format();
            let e =
                ApiError::new(ErrorKind::TooLarge, format!("Request body exceeds the gateway limit of {limit} bytes"));
            return self.reply(e, format);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        *body_size = Some(size);
        let Some(p) = principal.clone() else {
            return Action::Pause;
        };
        let route = route.clone();
        self.forward(route, &p, size)
    }

    /// Authenticated and the whole body is here: parse it, decide the upstream, send it on.
    fn forward(&mut self, route: Route, principal: &Principal, body_size: usize) -> Action {
        let format = route.endpoint.format();
        let body = host::request_body(body_size);
        let parsed = match request::parse(&body, route.endpoint) {
            Ok(p) => p,
            Err(e) => {
                let mut err = ApiError::new(ErrorKind::InvalidRequest, e.message);
                err.param = e.param;
                return self.reply(err, format);
            }
        };
        let upstream = match forward::plan(&self.shared.config, &self.shared.keys, route.endpoint, &parsed) {
            Ok(u) => u,
            Err(e) => return self.reply(e, format),
        };
        for (name, value) in &upstream.headers {
            host::set_request_header(name, Some(value));
        }
        for (name, value) in &upstream.default_headers {
            if host::request_header(name).is_none() {
                host::set_request_header(name, Some(value));
            }
        }
        if let Some(new_body) = &upstream.body {
            host::set_request_body(body_size, new_body);
        }
        self.call = Some(Box::new(self.call_info(&route, principal, &parsed, &upstream)));
        self.response = Some(Response {
            status: 0,
            tracker: None,
            stripper: upstream.strip_usage_chunk.then(UsageChunkStripper::default),
            first_token_ms: None,
            complete: false,
        });
        self.phase = Phase::Forwarded { format, provider: upstream.provider.name() };
        Action::Continue
    }

    /// Attribution and everything else the call's event needs from the request.
    fn call_info(
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
        }
    }

    fn on_response_headers(&mut self) -> Action {
        // Our own JSON reply passes; Envoy's plain-text one may still overtake it
        // (a body over Envoy's buffer limit arriving before our reply is sent).
        if matches!(self.phase, Phase::Replied { .. })
            && host::response_header("content-type").is_some_and(|c| c.starts_with("application/json"))
        {
            return Action::Continue;
        }
        let status = host::response_header(":status").and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        let details = host::property(&["response", "code_details"]).unwrap_or_default();
        let upstream = match &self.phase {
            Phase::Forwarded { provider, .. } => provider,
            _ => "provider",
        };
        let Some(error) = errors::from_envoy_reply(status, &String::from_utf8_lossy(&details), upstream) else {
            if let (Some(r), Some(call)) = (self.response.as_mut(), self.call.as_ref()) {
                let streaming =
                    host::response_header("content-type").is_some_and(|c| c.starts_with("text/event-stream"));
                r.status = status;
                r.tracker = Some(UsageTracker::new(accounting::wire_of(call.api_format), streaming));
                if !(streaming && status == 200) {
                    r.stripper = None;
                }
                if r.stripper.is_some() {
                    host::set_response_header("content-length", None);
                }
            }
            return Action::Continue;
        };
        if let Some(r) = self.response.as_mut() {
            r.status = error.status();
            r.stripper = None;
        }
        host::increment(self.shared.metrics.upstream_failures, 1);
        log::info!("#{} envoy reply {status} rewritten to {}", self.id, error.status());
        let reply = error.reply(self.format());
        host::set_response_header(":status", Some(&reply.status.to_string()));
        host::set_response_header("content-length", None);
        for (name, value) in &reply.headers {
            host::set_response_header(name, Some(value));
        }
        self.phase = Phase::RewritingError { body: reply.body };
        Action::Continue
    }

    fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Phase::RewritingError { body } = &self.phase else {
            self.read_response(body_size, end_of_stream);
            return Action::Continue;
        };
        if !end_of_stream {
            return Action::Pause;
        }
        host::set_response_body(body_size, body.as_bytes());
        Action::Continue
    }
}

impl Request {
    /// Tees one response chunk through the usage reader; strips the injected usage chunk.
    fn read_response(&mut self, body_size: usize, end_of_stream: bool) {
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
    fn finish_call(&mut self) {
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

impl HttpFilter {
    /// Hands a lookup's outcome to this request and every request waiting on the same key.
    fn finish_lookup(&self, token: u32, body_size: usize) {
        let shared = Rc::clone(&self.req.borrow().shared);
        let Some(hash) = shared.end_flight_token(token) else {
            return;
        };
        let (status, body) = host::call_response(body_size);
        let outcome = match auth::lookup_result(status, &body) {
            Lookup::Found(p) => AuthOutcome::Known(shared.remember_principal(&hash, p, &body)),
            Lookup::Unknown => {
                shared.remember_unknown(&hash);
                AuthOutcome::Unknown
            }
            Lookup::Failed(why) => {
                log::warn!("auth lookup failed: {why}");
                AuthOutcome::Failed
            }
        };
        let me = self.req.borrow().id;
        self.req.borrow_mut().on_auth(outcome.clone(), true);
        for (id, waiter) in shared.take_waiters(&hash) {
            if let Some(w) = waiter.upgrade() {
                if host::set_effective_context(id) {
                    w.borrow_mut().on_auth(outcome.clone(), true);
                }
            }
        }
        host::set_effective_context(me);
    }

    /// This request ends with its lookup still in flight: the first live waiter takes over.
    fn abandon_lookup(&self) {
        let (hash, shared, me) = {
            let mut r = self.req.borrow_mut();
            let Some(hash) = r.leading.take() else {
                return;
            };
            (hash, Rc::clone(&r.shared), r.id)
        };
        shared.end_flight_hash(&hash);
        let mut waiters = shared.take_waiters(&hash).into_iter();
        for (id, waiter) in waiters.by_ref() {
            let Some(w) = waiter.upgrade() else { continue };
            if host::set_effective_context(id) {
                w.borrow_mut().start_lookup(hash.clone(), &w);
                for rest in waiters {
                    shared.join_flight(&hash, rest);
                }
                break;
            }
        }
        host::set_effective_context(me);
    }
}

impl Context for HttpFilter {
    fn on_http_call_response(&mut self, token_id: u32, _headers: usize, body_size: usize, _trailers: usize) {
        self.finish_lookup(token_id, body_size);
    }
}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let me = Rc::clone(&self.req);
        self.req.borrow_mut().on_headers(end_of_stream, &me)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.req.borrow_mut().on_body(body_size, end_of_stream)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.req.borrow_mut().on_response_headers()
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.req.borrow_mut().on_response_body(body_size, end_of_stream)
    }

    fn on_log(&mut self) {
        self.abandon_lookup();
        self.req.borrow_mut().finish_call();
    }
}
