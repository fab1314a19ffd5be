//! One request through the gateway, as a state machine driven by Envoy's
//! callbacks. Each state carries what its phase needs:
//!
//! ```text
//! Start ─headers─▶ Awaiting ─principal and whole body─▶ (Checking ─check answered─▶) Forwarded ─▶ end
//!                     │                                        │                       │
//!                     └────────────── Replied ◀────────────────┘        Envoy's own error reply
//!                                                                                   ▼
//!                                                                            RewritingError
//! ```
//!
//! Headers: resolve the route, check the credential, start the principal
//! lookup (cache, shared data, or one callout per key per worker, joined by
//! later requests with the same key), strip client credentials, pause. Body:
//! pause until complete. Whichever of the lookup and the body finishes last
//! plans the upstream and checks limits; the request then goes. Provider
//! responses pass through the response stage; Envoy's own error replies are
//! rewritten into the client's API error format.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use super::auth::{self, Outcome};
use super::capture::{self, Call};
use super::count::{self, Counted, Counting};
use super::host::{Action, Host, Metric};
use super::limits::{self, Checking, Grant, Step};
use super::registry::{Callout, Registry};
use super::response::{self, Response};
use super::upstream::{self, Sending};
use super::worker::Worker;
use crate::auth::Principal;
use crate::errors::LocalReply;
use crate::errors::{self, ApiError, ErrorKind};
use crate::routes::{self, Op, Route};
use crate::wire::header_pairs::Headers;
use crate::wire::Api;

/// The requests of one worker, as its registry sees them.
pub type Requests = Registry<Request>;

enum State {
    /// Waiting for the request headers.
    Start,
    /// Headers accepted; waiting for the principal (looked up by the key's hash) and the whole body.
    Awaiting { route: Route, hash: String, principal: Option<Rc<Principal>>, body_size: Option<usize> },
    /// The limit check is in flight.
    Checking(Box<Checking>),
    /// Sent upstream; the provider's response is read as it passes.
    Forwarded { api: Api, call: Box<Call> },
    /// A token count sent to the provider (no call, no event).
    Counting(Counting),
    /// Envoy replied with an error instead of the provider; its body is being replaced.
    RewritingError { body: String, call: Option<Box<Call>> },
    /// The filter replied itself; nothing more to do.
    Replied { api: Api },
}

pub struct Request {
    pub id: u32,
    worker: Rc<Worker>,
    registry: Rc<RefCell<Requests>>,
    /// This request, for the registry's weak references.
    me: Weak<RefCell<Request>>,
    state: State,
    started_ms: u64,
    /// The client's request headers, as they arrived (names lowercase).
    headers: Headers,
}

/// Whose callback a lookup's outcome arrives in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    OwnHeaders,
    OwnCallout,
    /// Another request's callback: no callout may be made from here.
    Other,
}

impl Request {
    pub fn new(id: u32, worker: Rc<Worker>, registry: Rc<RefCell<Requests>>) -> Rc<RefCell<Request>> {
        Rc::new_cyclic(|me| {
            RefCell::new(Request {
                id,
                worker,
                registry,
                me: me.clone(),
                state: State::Start,
                started_ms: 0,
                headers: Headers::default(),
            })
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The client's API, for errors.
    fn api(&self) -> Api {
        match &self.state {
            State::Awaiting { route, .. } => route.api,
            State::Checking(c) => c.sending.route.api,
            State::Forwarded { api, .. } | State::Replied { api } => *api,
            State::Counting(_) => Api::Messages,
            State::Start | State::RewritingError { .. } => Api::Chat,
        }
    }

    fn reply(&mut self, host: &dyn Host, error: ApiError, api: Api) -> Action {
        log::info!("#{} local reply {}", self.id, error.status());
        host.count(Metric::LocalReplies, 1);
        self.answer(host, error.reply(api), api)
    }

    /// Answers the request locally, a success or an error.
    fn answer(&mut self, host: &dyn Host, reply: LocalReply, api: Api) -> Action {
        host.send_reply(&reply);
        self.state = State::Replied { api };
        Action::Pause
    }

    pub fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        host.count(Metric::Requests, 1);
        self.started_ms = host.now_ms();
        // One copy of the header map serves every lookup of this request.
        self.headers = host.request_headers();
        if self.header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
            return self.reply(host, routes::websocket_refusal(), Api::Responses);
        }
        let method = self.header(":method").unwrap_or_default();
        let path = self.header(":path").unwrap_or_default();
        let anthropic_client = self.header("anthropic-version").is_some();
        let route = match routes::resolve(method, path, &self.worker.config.products, anthropic_client) {
            Ok(r) => r,
            Err((e, api)) => return self.reply(host, e, api),
        };
        // A probe is answered before any auth: it only asks whether the gateway is there.
        if route.op == Op::Probe {
            return self.answer(host, LocalReply { status: 200, headers: Vec::new(), body: String::new() }, route.api);
        }
        // Listing models takes no body.
        let body_size = (route.op == Op::Models).then_some(0);
        if end_of_stream && body_size.is_none() {
            let e = ApiError::new(ErrorKind::InvalidRequest, "Request body is empty; expected a JSON object");
            return self.reply(host, e, route.api);
        }
        let token = crate::auth::request_credentials(&self.headers);
        upstream::strip_client_headers(&self.worker, host, &self.headers);
        let token = match token {
            Ok(t) => t,
            Err(e) => {
                host.count(Metric::AuthRejected, 1);
                return self.reply(host, e, route.api);
            }
        };
        let hash = token.hash();
        self.state = State::Awaiting { route, hash: hash.clone(), principal: None, body_size };
        if body_size.is_none() {
            let deadline = self.started_ms + self.worker.config.body_timeout_ms;
            self.registry.borrow_mut().expect_body(self.id, deadline, self.me.clone());
        }
        match auth::cached(&self.worker, host, &hash) {
            Some(outcome) => self.on_auth(host, outcome, Caller::OwnHeaders),
            None => self.start_lookup(host, hash),
        }
    }

    /// Joins the lookup in flight for this key, or starts one.
    fn start_lookup(&mut self, host: &dyn Host, hash: String) -> Action {
        if self.registry.borrow_mut().wait_for_lookup(&hash, (self.id, self.me.clone())) {
            return Action::Pause;
        }
        match auth::dispatch(&self.worker, host, &hash) {
            Some(token) => {
                self.registry.borrow_mut().add_callout(token, (self.id, self.me.clone()), Callout::Auth(hash));
                Action::Pause
            }
            None => self.on_auth(host, Outcome::Failed, Caller::OwnHeaders),
        }
    }

    /// The lookup finished; `caller` says in whose callback.
    fn on_auth(&mut self, host: &dyn Host, outcome: Outcome, caller: Caller) -> Action {
        let State::Awaiting { route, principal, body_size, .. } = &mut self.state else {
            return Action::Continue;
        };
        let api = route.api;
        let product = self.worker.config.products.get(route.product).map_or("", String::as_str);
        let p = match auth::admit(&self.worker, host, outcome, product) {
            Ok(p) => p,
            Err(e) => return self.reply(host, e, api),
        };
        *principal = Some(Rc::clone(&p));
        let Some(size) = *body_size else {
            return Action::Pause;
        };
        if caller == Caller::Other {
            // A callout made here would be answered to the other request (the SDK
            // routes answers by the context running at dispatch): go on from the root's tick.
            self.registry.borrow_mut().defer((self.id, self.me.clone()));
            self.worker.pace.hurry(host);
            return Action::Pause;
        }
        let route = route.clone();
        let action = self.forward(host, route, &p, size);
        if caller == Caller::OwnCallout && action == Action::Continue {
            host.resume_request();
        }
        action
    }

    /// Called from the root's tick, in this request's context.
    pub fn run_deferred(&mut self, host: &dyn Host) {
        let State::Awaiting { route, hash, principal, body_size } = &self.state else {
            return;
        };
        match (principal.clone(), *body_size) {
            (Some(p), Some(size)) => {
                let route = route.clone();
                if self.forward(host, route, &p, size) == Action::Continue {
                    host.resume_request();
                }
            }
            (None, _) => {
                let hash = hash.clone();
                self.start_lookup(host, hash);
            }
            _ => {}
        }
    }

    /// No body arrived in time (see `Registry::expect_body`).
    pub fn body_timed_out(&mut self, host: &dyn Host) {
        if let State::Awaiting { route, body_size: None, .. } = &self.state {
            let api = route.api;
            host.count(Metric::BodyTimeouts, 1);
            let e = ApiError::new(ErrorKind::RequestTimeout, "The request body did not arrive in time")
                .code("request_body_timeout");
            self.reply(host, e, api);
        }
    }

    pub fn on_request_body(&mut self, host: &dyn Host, size: usize, end_of_stream: bool) -> Action {
        self.registry.borrow_mut().body_arrived(self.id);
        let State::Awaiting { route, principal, body_size, .. } = &mut self.state else {
            return Action::Continue;
        };
        let limit = self.worker.config.max_request_body_bytes;
        if size > limit {
            let api = route.api;
            let e =
                ApiError::new(ErrorKind::TooLarge, format!("Request body exceeds the gateway limit of {limit} bytes"));
            return self.reply(host, e, api);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        *body_size = Some(size);
        let Some(p) = principal.clone() else {
            return Action::Pause;
        };
        let route = route.clone();
        self.forward(host, route, &p, size)
    }

    /// Authenticated and the whole body is here: plan the upstream, then check
    /// limits; or count tokens, or list models.
    fn forward(&mut self, host: &dyn Host, route: Route, principal: &Principal, body_size: usize) -> Action {
        let api = route.api;
        match route.op {
            Op::Call => {}
            Op::CountTokens => {
                return match count::begin(&self.worker, host, &self.headers, body_size) {
                    Ok(Counted::Upstream(counting)) => {
                        self.state = State::Counting(counting);
                        Action::Continue
                    }
                    Ok(Counted::Reply(reply)) => self.answer(host, reply, api),
                    Err(e) => self.reply(host, e, api),
                };
            }
            Op::Models => {
                let table = self.worker.pricing.table();
                let models = crate::models::routable(&self.worker.config, &self.worker.keys, table.names());
                let reply = LocalReply {
                    status: 200,
                    headers: vec![("content-type", "application/json".to_string())],
                    body: crate::models::list_body(&models, api == Api::Messages),
                };
                return self.answer(host, reply, api);
            }
            Op::Probe => return Action::Continue,
        }
        let sending =
            match upstream::prepare(&self.worker, host, &self.headers, route, principal, body_size, self.started_ms) {
                Ok(s) => s,
                Err(e) => return self.reply(host, e, api),
            };
        let step = limits::check(&self.worker, host, Box::new(sending), principal);
        self.take_step(host, step, api)
    }

    fn take_step(&mut self, host: &dyn Host, step: Step, api: Api) -> Action {
        match step {
            Step::Send(sending, grant) => self.send(host, sending, grant),
            Step::Wait(tokens, checking) => {
                let mut registry = self.registry.borrow_mut();
                for token in tokens {
                    registry.add_callout(token, (self.id, self.me.clone()), Callout::Check);
                }
                self.state = State::Checking(checking);
                Action::Pause
            }
            Step::Reply(e) => self.reply(host, e, api),
        }
    }

    fn send(&mut self, host: &dyn Host, sending: Box<Sending>, grant: Grant) -> Action {
        let api = sending.route.api;
        let key = sending.upstream.key;
        let (info, plan, chain) = upstream::send(&self.worker, host, *sending, &self.headers, self.id);
        let response = Response::new(plan, key);
        self.state = State::Forwarded { api, call: Box::new(Call { info, response, grant, chain }) };
        Action::Continue
    }

    /// A limit check call answered (outside the request's callbacks: resume if it goes on).
    fn on_check(&mut self, host: &dyn Host, token: u32, status: u32, body: &[u8]) {
        let state = std::mem::replace(&mut self.state, State::Start);
        let State::Checking(checking) = state else {
            self.state = state;
            return;
        };
        let api = checking.sending.route.api;
        let step = limits::answered(&self.worker, host, checking, token, status, body);
        if self.take_step(host, step, api) == Action::Continue {
            host.resume_request();
        }
    }

    pub fn on_response_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        // Our own JSON reply passes; Envoy's plain-text one may still overtake it
        // (a body over Envoy's buffer limit arriving before our reply is sent).
        if matches!(self.state, State::Replied { .. })
            && host.response_header("content-type").is_some_and(|c| c.starts_with("application/json"))
        {
            return Action::Continue;
        }
        // A call with fallbacks: the answer is the answering target's, or the upstream filter's refusal.
        let mut refused = None;
        if let State::Forwarded { call, .. } = &mut self.state {
            for (name, value) in &call.grant.response_headers {
                host.set_response_header(name, Some(value));
            }
            let Call { chain, info, response, .. } = call.as_mut();
            if let Some(chain) = chain {
                refused = chain.on_response_headers(&self.worker, host, info, response);
            }
        }
        let status = host.response_header(":status").and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        // Only an error status can be Envoy's own reply.
        let details = if status >= 400 || status == 0 { host.code_details() } else { String::new() };
        let upstream = match &self.state {
            State::Forwarded { call, .. } => call.info.provider,
            _ => "provider",
        };
        let Some(error) = refused.or_else(|| errors::from_envoy_reply(status, &details, upstream)) else {
            return match &mut self.state {
                State::Forwarded { call, .. } => {
                    response::rest_rate_limited_key(&self.worker, host, call.response.key, status);
                    call.response.start(host, status, end_of_stream, self.started_ms)
                }
                State::Counting(counting) => {
                    response::rest_rate_limited_key(&self.worker, host, counting.key, status);
                    counting.on_headers(host, status, end_of_stream)
                }
                _ => Action::Continue,
            };
        };
        host.count(Metric::UpstreamFailures, 1);
        log::info!("#{} envoy reply {status} rewritten to {}", self.id, error.status());
        let reply = error.reply(self.api());
        host.set_response_header(":status", Some(&reply.status.to_string()));
        host.set_response_header("content-length", None);
        for (name, value) in &reply.headers {
            host.set_response_header(name, Some(value));
        }
        let call = match std::mem::replace(&mut self.state, State::Start) {
            State::Forwarded { mut call, .. } => {
                call.response.status = reply.status;
                // Envoy's own reply is whole: an error by its status (`HTTP 502`), not an interruption.
                call.response.completed_ms = Some(host.now_ms());
                Some(call)
            }
            _ => None,
        };
        self.state = State::RewritingError { body: reply.body, call };
        Action::Continue
    }

    pub fn on_response_body(&mut self, host: &dyn Host, body_size: usize, end_of_stream: bool) -> Action {
        match &mut self.state {
            State::RewritingError { body, .. } => {
                if !end_of_stream {
                    return Action::Pause;
                }
                host.set_response_body(body_size, body.as_bytes());
                Action::Continue
            }
            State::Forwarded { call, .. } => call.response.read(host, body_size, end_of_stream),
            State::Counting(counting) => counting.on_body(host, body_size, end_of_stream),
            _ => Action::Continue,
        }
    }

    /// The stream is over, however it ended: Envoy cancelled this request's
    /// callouts (requests waiting on its lookup need another), and a forwarded
    /// call is accounted for.
    pub fn on_log(&mut self, host: &dyn Host) {
        {
            let mut registry = self.registry.borrow_mut();
            for hash in registry.forget(self.id) {
                for waiter in registry.end_lookup(&hash) {
                    registry.defer(waiter);
                    self.worker.pace.hurry(host);
                }
            }
        }
        match std::mem::replace(&mut self.state, State::Start) {
            State::Forwarded { call, .. } | State::RewritingError { call: Some(call), .. } => {
                capture::ended(&self.worker, host, *call)
            }
            State::Checking(checking) => limits::abandoned(&self.worker, host, *checking),
            _ => {}
        }
    }
}

/// A callout made for a request answered, in `current`'s callback (or the
/// root's): hands it to the request that made it. False if it was no request's.
pub fn on_callout(
    registry: &RefCell<Requests>,
    host: &dyn Host,
    token: u32,
    body_size: usize,
    current: Option<&Rc<RefCell<Request>>>,
) -> bool {
    let Some(((id, weak), callout)) = registry.borrow_mut().take_callout(token) else {
        return false;
    };
    let Some(req) = weak.upgrade() else {
        return true;
    };
    let current_id = current.map(|c| c.borrow().id);
    if current_id != Some(id) && !host.set_effective_context(id) {
        return true;
    }
    match callout {
        Callout::Check => {
            let (status, body) = host.call_response(body_size);
            req.borrow_mut().on_check(host, token, status, &body);
        }
        Callout::Auth(hash) => finish_lookup(&req, host, &hash, body_size),
    }
    if let Some(c) = current_id.filter(|c| *c != id) {
        host.set_effective_context(c);
    }
    true
}

/// Hands a lookup's outcome to the request that made it and every request waiting on the same key.
fn finish_lookup(req: &Rc<RefCell<Request>>, host: &dyn Host, hash: &str, body_size: usize) {
    let (worker, registry, me) = {
        let r = req.borrow();
        (Rc::clone(&r.worker), Rc::clone(&r.registry), r.id)
    };
    let outcome = auth::answered(&worker, host, hash, body_size);
    let waiters = registry.borrow_mut().end_lookup(hash);
    req.borrow_mut().on_auth(host, outcome.clone(), Caller::OwnCallout);
    for (id, waiter) in waiters {
        if let Some(w) = waiter.upgrade() {
            if host.set_effective_context(id) {
                w.borrow_mut().on_auth(host, outcome.clone(), Caller::Other);
            }
        }
    }
    host.set_effective_context(me);
}
