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

use super::call::Response;
use super::check::Checking;
use super::host;
use super::metrics::timed;
use super::root::Shared;
use crate::accounting::CallInfo;
use crate::auth::{self, Cached, Lookup, Principal};
use crate::cost_controls::{self, Upgrade};
use crate::errors::{self, ApiError, ErrorKind};
use crate::forward::{self, CREDENTIAL_HEADERS};
use crate::providers::Provider;
use crate::request;
use crate::routes::{self, Route};
use crate::wire::Api;
use crate::wire::ProviderWire;

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
    Forwarded { format: Api, provider: &'static str },
    /// Envoy replied with an error instead of the provider; replacing its body.
    RewritingError { body: String },
    /// The filter replied itself; nothing more to do.
    Replied { format: Api },
}

/// Per-request state, shared (weakly) with the requests waiting on the same key.
pub struct Request {
    pub(super) id: u32,
    pub(super) shared: Rc<Shared>,
    phase: Phase,
    /// Key hash, while this request's callout is the one in flight for it
    /// (kept outside `phase`: a request may reply early with its callout still out).
    leading: Option<String>,
    pub(super) started_ms: u64,
    /// Set once the request is sent upstream; becomes the call's event.
    pub(super) call: Option<Box<CallInfo>>,
    /// The provider's response, as read so far.
    pub(super) response: Option<Response>,
    /// The limit check in flight.
    pub(super) checking: Option<Box<Checking>>,
    /// Rate-limit and budget headers for the client's response.
    pub(super) response_headers: Vec<(&'static str, String)>,
    /// Estimates reserved in each window, settled with the real cost at the end.
    pub(super) reservations: Vec<(String, i64)>,
    /// The allowed check's plan signature and estimate, to settle its lease too.
    pub(super) admission: Option<(String, i64)>,
    /// This request, for the registries that route callout answers back to it.
    pub(super) me: WeakRequest,
    /// The key's hash, to look it up again if the request leading its lookup goes away.
    key_hash: Option<String>,
    /// The client's request headers, as they arrived.
    pub(super) headers: Vec<(String, String)>,
}

pub type WeakRequest = Weak<RefCell<Request>>;

/// Everything needed to send a request upstream once its limits allow it.
pub struct Sending {
    pub route: Route,
    pub body_size: usize,
    /// The client's body as read once; Save Mode scans it when the plan keeps it.
    body: Vec<u8>,
    pub upstream: forward::Upstream,
    pub call: CallInfo,
    pub max_output_tokens: Option<u64>,
    save_mode_header: Option<String>,
    pub team_id: i64,
    cost_controls: Option<bool>,
    /// The budget guard's engage tier turns Save Mode on.
    pub budget_engaged: bool,
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
                checking: None,
                response_headers: Vec::new(),
                reservations: Vec::new(),
                admission: None,
                me: Weak::new(),
                key_hash: None,
                headers: Vec::new(),
            })),
        }
        .with_self_reference()
    }

    fn with_self_reference(self) -> Self {
        let me = Rc::downgrade(&self.req);
        self.req.borrow_mut().me = me;
        self
    }
}

/// Whose callback a lookup's outcome arrives in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    OwnHeaders,
    OwnCallout,
    /// Another request's callback: no callout may be made from here.
    Other,
}

/// What an auth lookup ended with, for the requests waiting on it.
#[derive(Clone)]
enum AuthOutcome {
    Known(Rc<Principal>),
    Unknown,
    Failed,
}

impl Request {
    pub(super) fn reply(&mut self, error: ApiError, format: Api) -> Action {
        log::info!("#{} local reply {}", self.id, error.status());
        host::increment(self.shared.metrics.local_replies, 1);
        host::send_reply(&error.reply(format));
        self.phase = Phase::Replied { format };
        Action::Pause
    }

    /// A client request header (names are lowercase).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn format(&self) -> Api {
        match &self.phase {
            Phase::Pending { route, .. } => route.api,
            Phase::Forwarded { format, .. } | Phase::Replied { format } => *format,
            _ => Api::Chat,
        }
    }

    fn on_headers(&mut self, end_of_stream: bool, me: &Rc<RefCell<Request>>) -> Action {
        host::increment(self.shared.metrics.requests, 1);
        self.started_ms = host::now_ms();
        // One copy of the header map serves every lookup of this request.
        self.headers = host::request_headers();
        #[cfg(feature = "fault-injection")]
        if self.header("x-llm-gateway-test-fault") == Some("trap") {
            // A trap, as a bug would cause one (panic = "abort" makes panics traps too).
            std::process::abort();
        }
        let method = self.header(":method").unwrap_or_default();
        let path = self.header(":path").unwrap_or_default();
        let route = match routes::resolve(method, path, &self.shared.config.products) {
            Ok(r) => r,
            Err((e, format)) => return self.reply(e, format),
        };
        let format = route.api;
        if end_of_stream {
            let e = ApiError::new(ErrorKind::InvalidRequest, "Request body is empty; expected a JSON object");
            return self.reply(e, format);
        }
        let token = auth::request_credentials(&self.headers);
        // Credentials stay here; only the filter chooses the upstream and its timeout;
        // the body may change size.
        let config = &self.shared.config;
        for (name, _) in &self.headers {
            let strip = CREDENTIAL_HEADERS.contains(&name.as_str())
                || *name == config.route_header
                || name == "x-envoy-upstream-rq-timeout-ms"
                || name == "content-length";
            if strip {
                host::set_request_header(name, None);
            }
        }
        let token = match token {
            Ok(t) => t,
            Err(e) => {
                host::increment(self.shared.metrics.auth_rejected, 1);
                return self.reply(e, format);
            }
        };
        self.phase = Phase::Pending { route, principal: None, body_size: None };
        self.shared.expect_body(self.id, self.started_ms, Rc::downgrade(me));
        let hash = token.hash();
        self.key_hash = Some(hash.clone());
        match self.shared.cached_principal(&hash) {
            Some(Cached::Known(p)) => {
                host::increment(self.shared.metrics.auth_cache_hits, 1);
                self.on_auth(AuthOutcome::Known(p), Caller::OwnHeaders)
            }
            Some(Cached::Unknown) => {
                host::increment(self.shared.metrics.auth_cache_hits, 1);
                self.on_auth(AuthOutcome::Unknown, Caller::OwnHeaders)
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
                self.shared.route(token, self.id, self.me.clone());
                self.leading = Some(hash);
                Action::Pause
            }
            None => self.on_auth(AuthOutcome::Failed, Caller::OwnHeaders),
        }
    }

    /// The lookup finished; `caller` says in whose callback.
    fn on_auth(&mut self, outcome: AuthOutcome, caller: Caller) -> Action {
        self.leading = None;
        let Phase::Pending { route, principal, body_size } = &mut self.phase else {
            return Action::Continue;
        };
        let format = route.api;
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
        if caller == Caller::Other {
            // A callout made here would be answered to the other request (the SDK
            // routes answers by the context running at dispatch): go on from the root's tick.
            self.shared.defer(self.id, self.me.clone());
            return Action::Pause;
        }
        let route = route.clone();
        let action = self.forward(route, &p, size);
        if caller == Caller::OwnCallout && matches!(action, Action::Continue) {
            host::resume_request();
        }
        action
    }

    /// Called from the root's tick, in this request's context.
    pub(super) fn run_deferred(&mut self) {
        let Phase::Pending { route, principal, body_size } = &self.phase else {
            return;
        };
        match (principal.clone(), *body_size) {
            (Some(p), Some(size)) => {
                let route = route.clone();
                if matches!(self.forward(route, &p, size), Action::Continue) {
                    host::resume_request();
                }
            }
            (None, _) => {
                if let (Some(hash), Some(me)) = (self.key_hash.clone(), self.me.upgrade()) {
                    self.start_lookup(hash, &me);
                }
            }
            _ => {}
        }
    }

    /// No body arrived in time; see `Shared::expect_body`.
    pub(super) fn body_timed_out(&mut self) {
        if let Phase::Pending { route, body_size: None, .. } = &self.phase {
            let format = route.api;
            host::increment(self.shared.metrics.body_timeouts, 1);
            let e = ApiError::new(ErrorKind::RequestTimeout, "The request body did not arrive in time")
                .code("request_body_timeout");
            self.reply(e, format);
        }
    }

    fn on_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        self.shared.body_arrived(self.id);
        let Phase::Pending { route, principal, body_size, .. } = &mut self.phase else {
            return Action::Continue;
        };
        let limit = self.shared.config.max_request_body_bytes;
        if size > limit {
            let format = route.api;
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

    /// Authenticated and the whole body is here: parse it once, decide the
    /// upstream, check limits, send it on.
    fn forward(&mut self, route: Route, principal: &Principal, body_size: usize) -> Action {
        let format = route.api;
        let body = host::request_body(body_size);
        let parsed = match request::parse(&body, route.api) {
            Ok(p) => p,
            Err(e) => {
                let mut err = ApiError::new(ErrorKind::InvalidRequest, e.message);
                err.param = e.param;
                return self.reply(err, format);
            }
        };
        let upstream = match forward::plan(
            &self.shared.config,
            &self.shared.keys,
            route.api,
            &parsed,
            &body,
            self.header(forward::PROVIDER_HEADER),
        ) {
            Ok(u) => u,
            Err(e) => return self.reply(e, format),
        };
        let save_mode_header = self.header(&self.shared.config.cost_controls.header).map(str::to_string);
        let call = self.call_info(&route, principal, &parsed, &upstream);
        let max_output_tokens = parsed.max_output_tokens;
        drop(parsed);
        let sending = Sending {
            max_output_tokens,
            route,
            body_size,
            body,
            upstream,
            call,
            save_mode_header,
            team_id: principal.team_id,
            cost_controls: principal.cost_controls,
            budget_engaged: false,
        };
        self.check_then_send(Box::new(sending), principal)
    }

    /// Allowed: Save Mode, then the upstream's headers and body; the request goes.
    pub(super) fn send(&mut self, s: Sending) -> Action {
        let Sending {
            route,
            body_size,
            body,
            upstream,
            mut call,
            save_mode_header,
            team_id,
            cost_controls,
            budget_engaged,
            ..
        } = s;
        for (name, value) in &upstream.headers {
            host::set_request_header(name, Some(value));
        }
        for (name, value) in &upstream.default_headers {
            if self.header(name).is_none() {
                host::set_request_header(name, Some(value));
            }
        }
        let mut new_body = upstream.body;
        // Save Mode applies to every Anthropic-bound body, translated ones included.
        if matches!(upstream.response.provider, ProviderWire::Anthropic | ProviderWire::Bedrock) {
            let decision = cost_controls::decide(
                &self.shared.config.cost_controls,
                &call.product,
                team_id,
                cost_controls,
                save_mode_header.as_deref(),
                budget_engaged,
                upstream.provider == Provider::Bedrock,
            );
            let upgrade = decision.active.then(|| match &new_body {
                Some(b) => cost_controls::upgrade_cache_ttl(b),
                None => cost_controls::upgrade_cache_ttl(&body),
            });
            call.gateway_properties.extend(cost_controls::telemetry(&decision, upgrade.as_ref()));
            if let Some(Upgrade::Upgraded { body: upgraded, .. }) = upgrade {
                host::increment(self.shared.metrics.save_mode_upgrades, 1);
                new_body = Some(upgraded);
            }
        }
        if let Some(new_body) = &new_body {
            host::set_request_body(body_size, new_body);
        }
        self.call = Some(Box::new(call));
        self.response = Some(Response::new(upstream.response));
        self.phase = Phase::Forwarded { format: route.api, provider: upstream.provider.name() };
        Action::Continue
    }

    fn on_response_headers(&mut self, end_of_stream: bool) -> Action {
        // Our own JSON reply passes; Envoy's plain-text one may still overtake it
        // (a body over Envoy's buffer limit arriving before our reply is sent).
        if matches!(self.phase, Phase::Replied { .. })
            && host::response_header("content-type").is_some_and(|c| c.starts_with("application/json"))
        {
            return Action::Continue;
        }
        for (name, value) in &self.response_headers {
            host::set_response_header(name, Some(value));
        }
        let status = host::response_header(":status").and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        // Only an error status can be Envoy's own reply.
        let details = if status >= 400 || status == 0 {
            host::property(&["response", "code_details"]).unwrap_or_default()
        } else {
            Vec::new()
        };
        let upstream = match &self.phase {
            Phase::Forwarded { provider, .. } => provider,
            _ => "provider",
        };
        let Some(error) = errors::from_envoy_reply(status, &String::from_utf8_lossy(&details), upstream) else {
            return match self.response.as_mut() {
                Some(r) => r.start(status, end_of_stream, self.started_ms),
                None => Action::Continue,
            };
        };
        if let Some(r) = self.response.as_mut() {
            r.status = error.status();
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
            return match self.response.as_mut() {
                Some(r) => r.read(body_size, end_of_stream),
                None => Action::Continue,
            };
        };
        if !end_of_stream {
            return Action::Pause;
        }
        host::set_response_body(body_size, body.as_bytes());
        Action::Continue
    }
}

/// Hands a lookup's outcome to the request that made it and every request waiting on the same key.
pub(super) fn finish_lookup(req: &Rc<RefCell<Request>>, token: u32, body_size: usize) {
    let shared = Rc::clone(&req.borrow().shared);
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
    let me = req.borrow().id;
    req.borrow_mut().on_auth(outcome.clone(), Caller::OwnCallout);
    for (id, waiter) in shared.take_waiters(&hash) {
        if let Some(w) = waiter.upgrade() {
            if host::set_effective_context(id) {
                w.borrow_mut().on_auth(outcome.clone(), Caller::Other);
            }
        }
    }
    host::set_effective_context(me);
}

impl HttpFilter {
    /// This request ends with its lookup still in flight: its waiters look the key up again.
    fn abandon_lookup(&self) {
        let (hash, shared) = {
            let mut r = self.req.borrow_mut();
            let Some(hash) = r.leading.take() else {
                return;
            };
            (hash, Rc::clone(&r.shared))
        };
        shared.end_flight_hash(&hash);
        for (id, waiter) in shared.take_waiters(&hash) {
            shared.defer(id, waiter);
        }
    }
}

impl Context for HttpFilter {
    fn on_http_call_response(&mut self, token_id: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let shared = Rc::clone(&self.req.borrow().shared);
        shared.answer(token_id, body_size, Some(&self.req));
    }
}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let me = Rc::clone(&self.req);
        timed("request_headers", || self.req.borrow_mut().on_headers(end_of_stream, &me))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        timed("request_body", || self.req.borrow_mut().on_body(body_size, end_of_stream))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        timed("response_headers", || self.req.borrow_mut().on_response_headers(end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        timed("response_body", || self.req.borrow_mut().on_response_body(body_size, end_of_stream))
    }

    fn on_log(&mut self) {
        timed("log", || {
            let id = self.req.borrow().id;
            self.req.borrow().shared.body_arrived(id);
            self.req.borrow().shared.unroute(id);
            self.abandon_lookup();
            self.req.borrow_mut().finish_call();
        })
    }
}
