//! The request flow driven natively by a fake host: the paths that only the
//! end-to-end suite reached before (shared lookups and deferral, a request
//! leaving mid-lookup, fail-open limits, Envoy's error replies rewritten).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

use super::capture;
use super::host::{Action, Host, Metric};
use super::request::{self, Request};
use super::root::Root;
use super::worker::Worker;
use crate::config::Config;
use crate::errors::LocalReply;
use crate::forward::ProviderKeys;
use crate::wire::header_pairs::Headers;

/// One request's stream as Envoy holds it.
#[derive(Default)]
struct Stream {
    request_headers: Vec<(String, String)>,
    request_body: Vec<u8>,
    reply: Option<LocalReply>,
    resumed: u32,
    response_headers: Vec<(String, String)>,
    response_body: Vec<u8>,
    code_details: String,
    /// The cluster an upstream attempt goes to.
    cluster: Option<String>,
}

/// A callout the flow made.
#[derive(Clone, Debug)]
struct Dispatched {
    token: u32,
    /// The context it was made in, which Envoy answers.
    context: u32,
    cluster: String,
    path: String,
    body: String,
}

#[derive(Default)]
struct Fake {
    now: Cell<u64>,
    current: Cell<u32>,
    streams: RefCell<HashMap<u32, Stream>>,
    callouts: RefCell<Vec<Dispatched>>,
    next_token: Cell<u32>,
    /// The callout answer being delivered: status and body.
    answer: RefCell<(u32, Vec<u8>)>,
    shared: RefCell<HashMap<String, Vec<u8>>>,
    metrics: RefCell<HashMap<Metric, i64>>,
    /// Every hostcall made, by name, for the hostcall budget.
    calls: RefCell<Vec<String>>,
    /// Envoy refuses to dispatch callouts (e.g. an unknown cluster).
    refuse_calls: Cell<bool>,
    /// The root's tick period last set (0: never).
    tick_period_ms: Cell<u64>,
}

impl Fake {
    fn stream<T>(&self, f: impl FnOnce(&mut Stream) -> T) -> T {
        f(self.streams.borrow_mut().entry(self.current.get()).or_default())
    }

    fn of<T>(&self, id: u32, f: impl FnOnce(&Stream) -> T) -> T {
        f(self.streams.borrow().get(&id).expect("no such stream"))
    }

    fn metric(&self, m: Metric) -> i64 {
        self.metrics.borrow().get(&m).copied().unwrap_or(0)
    }

    fn header(headers: &[(String, String)], name: &str) -> Option<String> {
        headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn set(headers: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
        headers.retain(|(k, _)| k != name);
        if let Some(v) = value {
            headers.push((name.to_string(), v.to_string()));
        }
    }
}

impl Host for Fake {
    fn request_headers(&self) -> Headers {
        self.calls.borrow_mut().push("request_headers".to_string());
        self.stream(|s| s.request_headers.iter().map(|(k, v)| (k, v)).collect())
    }
    fn request_header(&self, name: &str) -> Option<String> {
        self.calls.borrow_mut().push(format!("request_header {name}"));
        self.stream(|s| Fake::header(&s.request_headers, name))
    }
    fn set_request_header(&self, name: &str, value: Option<&str>) {
        self.calls.borrow_mut().push(format!("set_request_header {name}"));
        self.stream(|s| Fake::set(&mut s.request_headers, name, value))
    }
    fn request_body(&self, size: usize) -> Vec<u8> {
        self.calls.borrow_mut().push("request_body".to_string());
        self.stream(|s| s.request_body[..size.min(s.request_body.len())].to_vec())
    }
    fn set_request_body(&self, _replace_len: usize, body: &[u8]) {
        self.calls.borrow_mut().push("set_request_body".to_string());
        self.stream(|s| s.request_body = body.to_vec())
    }
    fn resume_request(&self) {
        self.calls.borrow_mut().push("resume_request".to_string());
        self.stream(|s| s.resumed += 1)
    }
    fn send_reply(&self, reply: &LocalReply) {
        self.calls.borrow_mut().push("send_reply".to_string());
        self.stream(|s| s.reply = Some(reply.clone()))
    }
    fn response_header(&self, name: &str) -> Option<String> {
        self.calls.borrow_mut().push(format!("response_header {name}"));
        self.stream(|s| Fake::header(&s.response_headers, name))
    }
    fn set_response_header(&self, name: &str, value: Option<&str>) {
        self.calls.borrow_mut().push(format!("set_response_header {name}"));
        self.stream(|s| Fake::set(&mut s.response_headers, name, value))
    }
    fn response_body(&self, size: usize) -> Vec<u8> {
        self.calls.borrow_mut().push("response_body".to_string());
        self.stream(|s| s.response_body[..size.min(s.response_body.len())].to_vec())
    }
    fn set_response_body(&self, _replace_len: usize, body: &[u8]) {
        self.calls.borrow_mut().push("set_response_body".to_string());
        self.stream(|s| s.response_body = body.to_vec())
    }
    fn code_details(&self) -> String {
        self.calls.borrow_mut().push("code_details".to_string());
        self.stream(|s| s.code_details.clone())
    }
    fn cluster_name(&self) -> Option<String> {
        self.calls.borrow_mut().push("cluster_name".to_string());
        self.stream(|s| s.cluster.clone())
    }
    fn http_call(&self, cluster: &str, headers: &[(&str, &str)], body: Option<&[u8]>, _timeout: u64) -> Option<u32> {
        self.calls.borrow_mut().push("http_call".to_string());
        if self.refuse_calls.get() {
            return None;
        }
        let token = self.next_token.get() + 1;
        self.next_token.set(token);
        let path = headers.iter().find(|(k, _)| *k == ":path").map(|(_, v)| v.to_string()).unwrap_or_default();
        let context = self.current.get();
        let body = String::from_utf8_lossy(body.unwrap_or_default()).into_owned();
        self.callouts.borrow_mut().push(Dispatched { token, context, cluster: cluster.to_string(), path, body });
        Some(token)
    }
    fn call_response(&self, _body_size: usize) -> (u32, Vec<u8>) {
        self.calls.borrow_mut().push("call_response".to_string());
        self.answer.borrow().clone()
    }
    fn call_response_header(&self, name: &str) -> Option<String> {
        self.calls.borrow_mut().push(format!("call_response_header {name}"));
        None
    }
    fn now_ms(&self) -> u64 {
        self.calls.borrow_mut().push("now_ms".to_string());
        self.now.get()
    }
    fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        self.calls.borrow_mut().push(format!("shared_data {key}"));
        self.shared.borrow().get(key).cloned()
    }
    fn set_shared_data(&self, key: &str, value: &[u8]) {
        self.calls.borrow_mut().push(format!("set_shared_data {key}"));
        self.shared.borrow_mut().insert(key.to_string(), value.to_vec());
    }
    fn set_effective_context(&self, id: u32) -> bool {
        self.calls.borrow_mut().push("set_effective_context".to_string());
        let known = self.streams.borrow().contains_key(&id);
        if known {
            self.current.set(id);
        }
        known
    }
    fn count(&self, metric: Metric, by: u64) {
        // Not a hostcall on the request path: the adapter sums increments and flushes them on the tick.
        let mut metrics = self.metrics.borrow_mut();
        let sum = metrics.entry(metric).or_default();
        *sum = sum.saturating_add(i64::try_from(by).unwrap_or(i64::MAX));
    }
    fn gauge(&self, metric: Metric, value: u64) {
        self.calls.borrow_mut().push(format!("gauge {metric:?}"));
        self.metrics.borrow_mut().insert(metric, value as i64);
    }
    fn set_tick_period_ms(&self, ms: u64) {
        self.calls.borrow_mut().push(format!("set_tick_period {ms}"));
        self.tick_period_ms.set(ms);
    }
}

const PRINCIPAL: &[u8] = br#"{"team_id": 7, "scopes": ["llm_gateway:read"]}"#;
const CHAT: &str = r#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}"#;

struct Rig {
    host: Fake,
    root: Root,
    requests: HashMap<u32, Rc<RefCell<Request>>>,
}

impl Rig {
    fn new(config: &str) -> Rig {
        Rig::with_keys(config, |_| Some("sk-test".to_string()))
    }

    /// A worker whose VM environment is `env`.
    fn with_keys(config: &str, env: impl Fn(&str) -> Option<String>) -> Rig {
        let config = Config::parse(config.as_bytes()).expect("config");
        let keys = ProviderKeys::from_env(env);
        let host = Fake { now: Cell::new(1_000_000), ..Fake::default() };
        Rig { host, root: Root::new(Worker::new(config, keys)), requests: HashMap::new() }
    }

    /// A new chat request's headers, in its own context.
    fn headers(&mut self, id: u32, key: &str) -> Action {
        let auth = format!("Bearer {key}");
        let length = CHAT.len().to_string();
        let headers = [
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("authorization", &auth),
            ("content-length", &length),
        ];
        self.open(id, &headers, CHAT, false)
    }

    /// A new request with these headers and body; `end_of_stream` if it has no body.
    fn open(&mut self, id: u32, headers: &[(&str, &str)], body: &str, end_of_stream: bool) -> Action {
        self.host.streams.borrow_mut().insert(
            id,
            Stream {
                request_headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                request_body: body.as_bytes().to_vec(),
                ..Stream::default()
            },
        );
        self.host.current.set(id);
        let req = Request::new(id, Rc::clone(&self.root.worker), Rc::clone(&self.root.registry));
        self.requests.insert(id, Rc::clone(&req));
        let action = req.borrow_mut().on_request_headers(&self.host, end_of_stream);
        action
    }

    /// A request with these headers and body, authenticated (its key looked up
    /// unless cached), then its whole body read.
    fn authenticated(&mut self, id: u32, headers: &[(&str, &str)], body: &str) -> Action {
        let lookups = self.auth_callouts().len();
        self.open(id, headers, body, false);
        if self.auth_callouts().len() > lookups {
            let token = self.auth_callouts()[lookups].token;
            self.answer(token, 200, PRINCIPAL);
        }
        self.body(id)
    }

    fn body(&mut self, id: u32) -> Action {
        self.host.current.set(id);
        let size = self.host.of(id, |s| s.request_body.len());
        let action = self.requests[&id].borrow_mut().on_request_body(&self.host, size, true);
        action
    }

    fn reply(&self, id: u32) -> Option<LocalReply> {
        self.host.of(id, |s| s.reply.clone())
    }

    /// Envoy answers callout `token` in the context that made it.
    fn answer(&mut self, token: u32, status: u32, body: &[u8]) {
        let made_in = self.host.callouts.borrow().iter().find(|c| c.token == token).expect("no such callout").context;
        *self.host.answer.borrow_mut() = (status, body.to_vec());
        self.host.current.set(made_in);
        let current = self.requests.get(&made_in).cloned();
        let handled = request::on_callout(&self.root.registry, &self.host, token, 0, current.as_ref());
        assert!(handled, "callout {token} was no request's");
    }

    /// The stream ends (Envoy's log callback), then the root's next tick accounts for the call.
    fn end(&mut self, id: u32) {
        self.log(id);
        self.quick_tick();
    }

    /// A quick tick, in the root's context (no stream).
    fn quick_tick(&mut self) {
        self.host.current.set(0);
        self.root.quick_tick(&self.host);
    }

    fn log(&mut self, id: u32) {
        self.host.current.set(id);
        self.requests[&id].borrow_mut().on_log(&self.host);
        self.host.streams.borrow_mut().remove(&id);
    }

    fn auth_callouts(&self) -> Vec<Dispatched> {
        self.host.callouts.borrow().iter().filter(|c| c.cluster == "auth").cloned().collect()
    }

    /// The webdis calls (checks and spend records), in order.
    fn store_callouts(&self) -> Vec<Dispatched> {
        self.host.callouts.borrow().iter().filter(|c| c.cluster == "webdis").cloned().collect()
    }

    /// A callout the root made (spend records) answered.
    fn answer_root(&mut self, token: u32, status: u32, body: &[u8]) {
        *self.host.answer.borrow_mut() = (status, body.to_vec());
        self.host.current.set(0);
        self.root.on_callout(&self.host, token, 0);
    }

    fn upstream_authority(&self, id: u32) -> Option<String> {
        self.host.of(id, |s| Fake::header(&s.request_headers, ":authority"))
    }
}

const NO_LIMITS: &str = r#"{"limits": {"enabled": false}}"#;

#[test]
fn requests_with_one_key_share_one_lookup_and_the_waiters_go_on_from_the_tick() {
    let mut rig = Rig::new(NO_LIMITS);
    assert_eq!(rig.headers(1, "phx_shared"), Action::Pause);
    assert_eq!(rig.headers(2, "phx_shared"), Action::Pause);
    assert_eq!(rig.body(1), Action::Pause);
    assert_eq!(rig.body(2), Action::Pause);
    let lookups = rig.auth_callouts();
    assert_eq!(lookups.len(), 1, "one lookup per key per worker");
    assert!(lookups[0].path.starts_with("/GET/llmgw:key:"));
    rig.answer(lookups[0].token, 200, PRINCIPAL);
    // The leader goes on in its own callback; the waiter may not make callouts
    // from another request's callback, so it goes on from the next tick.
    assert_eq!(rig.host.of(1, |s| s.resumed), 1);
    assert_eq!(rig.upstream_authority(1).as_deref(), Some("api.openai.com"));
    assert_eq!(rig.host.of(2, |s| s.resumed), 0);
    assert_eq!(rig.host.tick_period_ms.get(), 10, "the deferred request hurries the tick");
    rig.root.tick(&rig.host);
    assert_eq!(rig.host.of(2, |s| s.resumed), 1);
    assert_eq!(rig.upstream_authority(2).as_deref(), Some("api.openai.com"));
    // The client's key stays here; the provider gets the gateway's.
    for id in [1, 2] {
        let auth = rig.host.of(id, |s| Fake::header(&s.request_headers, "authorization"));
        assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    }
    // A third request finds the key cached.
    rig.headers(3, "phx_shared");
    assert_eq!(rig.body(3), Action::Continue);
    assert_eq!(rig.auth_callouts().len(), 1);
    assert_eq!(rig.host.metric(Metric::AuthCacheHits), 1);
}

#[test]
fn a_request_leaving_mid_lookup_hands_the_lookup_to_its_waiters() {
    let mut rig = Rig::new(NO_LIMITS);
    rig.headers(1, "phx_leaver");
    rig.headers(2, "phx_leaver");
    rig.body(2);
    let first = rig.auth_callouts()[0].clone();
    rig.end(1);
    assert_eq!(rig.host.tick_period_ms.get(), 10, "the waiter, deferred, hurries the tick");
    rig.root.tick(&rig.host);
    let lookups = rig.auth_callouts();
    assert_eq!(lookups.len(), 2, "the waiter looks the key up again");
    assert_eq!(lookups[1].context, 2);
    rig.answer(lookups[1].token, 200, PRINCIPAL);
    assert_eq!(rig.host.of(2, |s| s.resumed), 1);
    // The first lookup's late answer belongs to nobody now.
    *rig.host.answer.borrow_mut() = (200, PRINCIPAL.to_vec());
    assert!(!request::on_callout(&rig.root.registry, &rig.host, first.token, 0, None));
}

#[test]
fn unknown_keys_get_the_clients_error_and_are_cached_per_worker() {
    let mut rig = Rig::new(NO_LIMITS);
    rig.headers(1, "phx_unknown");
    let lookup = rig.auth_callouts()[0].token;
    rig.answer(lookup, 404, b"");
    let reply = rig.host.of(1, |s| s.reply.clone()).expect("a reply");
    assert_eq!(reply.status, 401);
    assert!(rig.host.shared.borrow().is_empty(), "unknown keys never reach shared data");
    assert_eq!(rig.headers(2, "phx_unknown"), Action::Pause);
    assert_eq!(rig.host.of(2, |s| s.reply.as_ref().map(|r| r.status)), Some(401));
}

const LIMITED: &str = r#"{"limits": {"local_admission_lease": 0, "team": [{"window_seconds": 3600, "limit_usd": 5}]}}"#;

#[test]
fn limits_fail_open_when_the_store_does_not_answer() {
    let mut rig = Rig::new(LIMITED);
    rig.headers(1, "phx_open");
    rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
    assert_eq!(rig.body(1), Action::Pause, "waits for the limit check");
    let check = rig.host.callouts.borrow().iter().find(|c| c.cluster == "webdis").cloned().expect("a check");
    rig.answer(check.token, 0, b"");
    assert_eq!(rig.host.of(1, |s| s.resumed), 1);
    assert_eq!(rig.host.metric(Metric::LimitsUnavailable), 1);
    rig.host.stream(|s| s.response_headers = vec![(":status".into(), "200".into())]);
    rig.requests[&1].borrow_mut().on_response_headers(&rig.host, false);
    let budget = rig.host.of(1, |s| Fake::header(&s.response_headers, "x-posthog-budget"));
    assert_eq!(budget.as_deref(), Some("unknown"));
}

#[test]
fn limits_fail_closed_in_the_clients_format() {
    let closed = r#"{"limits": {"fail_open": false, "local_admission_lease": 0, "team": [{"window_seconds": 3600, "limit_usd": 5}]}}"#;
    let mut rig = Rig::new(closed);
    rig.headers(1, "phx_closed");
    rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
    rig.body(1);
    let check = rig.host.callouts.borrow().iter().find(|c| c.cluster == "webdis").cloned().expect("a check");
    rig.answer(check.token, 503, b"");
    let reply = rig.host.of(1, |s| s.reply.clone()).expect("a reply");
    assert_eq!(reply.status, 503);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "limits_unavailable");
    assert_eq!(rig.host.of(1, |s| s.resumed), 0);
}

#[test]
fn envoys_error_reply_is_rewritten_and_the_call_still_booked() {
    let config = r#"{"limits": {"enabled": false}, "capture": {"region_url": "https://us.posthog.com",
        "primary": {"api_key": "phc_test"}}}"#;
    let mut rig = Rig::new(config);
    rig.headers(1, "phx_err");
    rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
    assert_eq!(rig.body(1), Action::Continue);
    rig.host.stream(|s| {
        s.response_headers = vec![(":status".into(), "503".into()), ("content-type".into(), "text/plain".into())];
        s.response_body = b"upstream connect error".to_vec();
        s.code_details = "upstream_reset_before_response_started{remote_connection_failure}".into();
    });
    let req = Rc::clone(&rig.requests[&1]);
    assert_eq!(req.borrow_mut().on_response_headers(&rig.host, false), Action::Continue);
    assert_eq!(req.borrow_mut().on_response_body(&rig.host, 22, false), Action::Pause);
    assert_eq!(req.borrow_mut().on_response_body(&rig.host, 22, true), Action::Continue);
    let (status, body) = rig.host.of(1, |s| (Fake::header(&s.response_headers, ":status"), s.response_body.clone()));
    assert_eq!(status.as_deref(), Some("502"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["message"], "The provider openai could not be reached");
    rig.end(1);
    assert_eq!(rig.host.metric(Metric::UpstreamFailures), 1);
    assert_eq!(rig.host.metric(Metric::EventsQueued), 1);
    assert_eq!(rig.host.metric(Metric::Responses(crate::providers::Provider::OpenAi, 2)), 1);
}

#[test]
fn count_tokens_goes_to_anthropic_and_is_estimated_for_others_without_a_call() {
    let mut rig = Rig::new(NO_LIMITS);
    let auth = [(":method", "POST"), (":path", "/v1/messages/count_tokens?beta=true"), ("x-api-key", "phx_count")];
    let claude = r#"{"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}"#;
    rig.open(1, &auth, claude, false);
    rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
    assert_eq!(rig.body(1), Action::Continue);
    let path = rig.host.of(1, |s| Fake::header(&s.request_headers, ":path"));
    assert_eq!(path.as_deref(), Some("/v1/messages/count_tokens"));
    assert_eq!(rig.upstream_authority(1).as_deref(), Some("api.anthropic.com"));
    let gpt = r#"{"model": "gpt-5", "system": "be brief", "messages": [{"role": "user", "content": "hi"}]}"#;
    rig.open(2, &auth, gpt, false);
    assert_eq!(rig.body(2), Action::Pause);
    let reply = rig.reply(2).expect("an estimate");
    assert_eq!(reply.status, 200);
    assert!(reply.headers.contains(&("x-posthog-token-count", "estimated".to_string())));
    let n: Value = serde_json::from_str(&reply.body).unwrap();
    assert!(n["input_tokens"].as_u64().unwrap() > 0);
    rig.end(1);
    rig.end(2);
    assert_eq!(rig.host.metric(Metric::CountTokens), 2);
    assert_eq!(rig.host.metric(Metric::EventsQueued), 0);
}

#[test]
fn models_are_listed_after_auth_in_the_clients_shape() {
    let mut rig = Rig::new(NO_LIMITS);
    let headers =
        [(":method", "GET"), (":path", "/v1/models"), ("x-api-key", "phx_models"), ("anthropic-version", "2023-06-01")];
    assert_eq!(rig.open(1, &headers, "", true), Action::Pause);
    assert!(rig.reply(1).is_none(), "nothing before the key is known");
    rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
    let reply = rig.reply(1).expect("a list");
    let list: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(list["has_more"], false);
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&"gpt-4o-mini") && ids.iter().any(|m| m.starts_with("claude-")), "{ids:?}");
    rig.open(2, &[(":method", "GET"), (":path", "/v1/models"), ("x-api-key", "phx_nobody")], "", true);
    rig.answer(rig.auth_callouts()[1].token, 404, b"");
    assert_eq!(rig.reply(2).map(|r| r.status), Some(401));
}

#[test]
fn probes_and_websocket_upgrades_are_answered_at_once() {
    let mut rig = Rig::new(NO_LIMITS);
    rig.open(1, &[(":method", "HEAD"), (":path", "/")], "", true);
    assert_eq!(rig.reply(1).map(|r| r.status), Some(200));
    let ws = [(":method", "GET"), (":path", "/v1/responses"), ("upgrade", "websocket"), ("connection", "Upgrade")];
    rig.open(2, &ws, "", true);
    assert_eq!(rig.reply(2).map(|r| r.status), Some(426));
    assert!(rig.auth_callouts().is_empty());
}

/// Issue 14: a stream is complete once the client's terminal event has passed,
/// in every order of "terminal event sent / client closes / provider ends";
/// a client that leaves one event before the end is a disconnect. The event
/// PostHog gets says so, with the usage seen.
#[test]
fn completion_is_decided_by_the_terminal_event_in_every_order() {
    let config = r#"{"limits": {"enabled": false}, "capture": {"region_url": "https://us.posthog.com",
        "primary": {"api_key": "phc_test"}}}"#;
    let events = [
        "data: {\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n",
        "data: [DONE]\n\n",
    ];
    // (what, events passed, provider ended, Envoy's code details when the stream ended, error)
    let cases: [(&str, usize, bool, &str, Option<&str>); 5] = [
        ("terminal passed, client closed, provider never ended", 4, false, "downstream_remote_disconnect", None),
        ("terminal passed, provider ended, client closed", 4, true, "downstream_remote_disconnect", None),
        ("terminal passed, provider ended", 4, true, "via_upstream", None),
        (
            "client left one event before the end",
            3,
            false,
            "downstream_remote_disconnect",
            Some("client disconnected before the response completed"),
        ),
        (
            "provider cut the stream before its terminal event",
            3,
            false,
            "upstream_reset_after_response_started{remote_reset}",
            Some("response did not complete (upstream_reset_after_response_started{remote_reset})"),
        ),
    ];
    for (i, (what, passed, ended, details, error)) in cases.into_iter().enumerate() {
        let mut rig = Rig::new(config);
        let id = 10 + i as u32;
        let body = r#"{"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}"#;
        rig.open(
            id,
            &[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", "Bearer phx_k")],
            body,
            false,
        );
        rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
        assert_eq!(rig.body(id), Action::Continue, "{what}");
        rig.host.stream(|s| {
            s.response_headers =
                vec![(":status".into(), "200".into()), ("content-type".into(), "text/event-stream".into())];
        });
        let req = Rc::clone(&rig.requests[&id]);
        req.borrow_mut().on_response_headers(&rig.host, false);
        for (n, event) in events.iter().take(passed).enumerate() {
            rig.host.now.set(1_000_000 + 100 * (n as u64 + 1));
            rig.host.stream(|s| s.response_body = event.as_bytes().to_vec());
            req.borrow_mut().on_response_body(&rig.host, event.len(), false);
        }
        rig.host.now.set(1_009_000);
        if ended {
            rig.host.stream(|s| s.response_body.clear());
            req.borrow_mut().on_response_body(&rig.host, 0, true);
        }
        rig.host.now.set(1_020_000);
        rig.host.stream(|s| s.code_details = details.into());
        rig.end(id);
        let worker = Rc::clone(&rig.root.worker);
        worker.capture.as_ref().expect("capture").borrow_mut().flush(&rig.host, 1_030_000, true);
        let sent = rig.host.callouts.borrow().iter().rev().find(|c| c.cluster == "posthog_primary").cloned();
        let batch: Value = serde_json::from_str(&sent.expect("a capture batch").body).expect("batch JSON");
        let p = &batch["batch"][0]["properties"];
        assert_eq!(p["$ai_is_error"], error.is_some(), "{what}: {p}");
        assert_eq!(p["$ai_error"].as_str(), error, "{what}");
        assert_eq!(p["$ai_http_status"], 200, "{what}");
        assert_eq!((p["$ai_input_tokens"].as_u64(), p["$ai_output_tokens"].as_u64()), (Some(7), Some(3)), "{what}");
        // A complete call ends when its terminal event passed (the 4th chunk, 0.4 s in),
        // whoever closed afterwards; an incomplete one when it ended.
        let latency = if error.is_none() { 0.4 } else { 20.0 };
        assert_eq!(p["$ai_latency"].as_f64(), Some(latency), "{what}");
    }
}

/// Capture keeps several batches out to a slow PostHog, one more per tick,
/// each answered on its own; a callout Envoy refuses backs its batch off
/// instead of being resent in a loop, even while draining.
#[test]
fn capture_keeps_several_batches_out_and_backs_off_a_refused_one() {
    use super::host::{Lane, LaneMetric};
    let config = r#"{"limits": {"enabled": false}, "capture": {"region_url": "https://us.posthog.com",
        "batch_max_events": 1, "max_batches_in_flight": 3, "primary": {"api_key": "phc_test"}}}"#;
    let rig = Rig::new(config);
    let worker = Rc::clone(&rig.root.worker);
    let capture = worker.capture.as_ref().expect("capture");
    let sent = |rig: &Rig| -> Vec<u32> {
        rig.host.callouts.borrow().iter().filter(|c| c.cluster == "posthog_primary").map(|c| c.token).collect()
    };
    for n in 0..5 {
        capture.borrow_mut().push(Rc::from(format!("{{\"n\":{n}}}")), 1_000_000);
    }
    for tick in 0..4 {
        capture.borrow_mut().flush(&rig.host, 1_000_000 + tick * 100, false);
        assert_eq!(sent(&rig).len() as u64, (tick + 1).min(3), "one more out per tick, up to three");
    }
    let out = sent(&rig);
    assert!(capture.borrow_mut().on_response(&rig.host, out[1], 200, None, 1_000_310));
    capture.borrow_mut().flush(&rig.host, 1_000_310, false);
    assert_eq!(sent(&rig).len(), 4, "the freed slot is refilled");

    rig.host.refuse_calls.set(true);
    assert!(capture.borrow_mut().on_response(&rig.host, out[0], 200, None, 1_000_320));
    let tried = rig.host.calls.borrow().iter().filter(|c| *c == "http_call").count();
    capture.borrow_mut().flush(&rig.host, 1_000_320, true);
    let tried_now = rig.host.calls.borrow().iter().filter(|c| *c == "http_call").count();
    assert_eq!(tried_now, tried + 1, "one refused send, then the batch waits");
    assert!(!capture.borrow().is_idle());

    rig.host.refuse_calls.set(false);
    for token in sent(&rig).into_iter().skip(2) {
        assert!(capture.borrow_mut().on_response(&rig.host, token, 200, None, 1_000_330));
    }
    capture.borrow_mut().flush(&rig.host, 1_000_330, true);
    let last = *sent(&rig).last().expect("the retry");
    assert!(capture.borrow_mut().on_response(&rig.host, last, 200, None, 1_000_340));
    assert!(capture.borrow().is_idle());
    let metric = |m| rig.host.metric(Metric::Capture(Lane::Primary, m));
    assert_eq!((metric(LaneMetric::Sent), metric(LaneMetric::Failed), metric(LaneMetric::Dropped)), (5, 1, 0));
}

/// The segments of a webdis command body (`EVAL/<script>/<numkeys>/<keys>…/<args>…`), decoded.
fn segments(body: &str) -> Vec<String> {
    body.split('/')
        .map(|seg| {
            let mut out = Vec::new();
            let b = seg.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    out.push(u8::from_str_radix(&seg[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        })
        .collect()
}

/// The keys of a `check.lua` or `record.lua` call.
fn call_keys(body: &str) -> Vec<String> {
    let s = segments(body);
    let n: usize = s[2].parse().unwrap();
    s[3..3 + n].to_vec()
}

/// check.lua allowing a call: each window at its estimate, the month at $0, no lease.
fn allow(body: &str) -> Vec<u8> {
    let s = segments(body);
    let n: usize = s[2].parse().unwrap();
    let (keys, args) = (&s[3..3 + n], &s[3 + n..]);
    let windows: usize = args[1].parse().unwrap();
    let mut out = vec![Value::from(1), Value::from(if n > windows { 0 } else { -1 })];
    for key in &keys[..windows] {
        out.extend([Value::from(key.as_str()), Value::from(args[0].parse::<i64>().unwrap()), Value::from(60_000)]);
    }
    out.push(Value::from(0));
    serde_json::json!({ "EVAL": out }).to_string().into_bytes()
}

const CLUSTER: &str = r#"{"limits": {"redis_cluster": true, "local_admission_lease": 0,
    "user": [{"window_seconds": 3600, "limit_usd": 5}], "product": [{"window_seconds": 86400, "limit_usd": 50}]}}"#;

/// A chat call through auth to its check calls (against a Redis Cluster: one per hash tag).
fn checked(rig: &mut Rig, id: u32) -> Vec<Dispatched> {
    let before = rig.store_callouts().len();
    rig.headers(id, "phx_cluster");
    if let Some(lookup) = rig.auth_callouts().iter().find(|c| c.context == id) {
        rig.answer(lookup.token, 200, PRINCIPAL);
    }
    assert_eq!(rig.body(id), Action::Pause, "waits for the checks");
    rig.store_callouts()[before..].to_vec()
}

#[test]
fn against_a_cluster_the_check_is_one_call_per_slot_and_waits_for_both() {
    let mut rig = Rig::new(CLUSTER);
    let calls = checked(&mut rig, 1);
    assert_eq!(calls.len(), 2);
    let tags: Vec<String> = calls.iter().map(|c| crate::limits::hash_tag(&call_keys(&c.body)[0]).to_string()).collect();
    assert_eq!(tags, ["t:7", "p:llm_gateway"]);
    for c in &calls {
        let keys = call_keys(&c.body);
        assert!(keys.iter().all(|k| crate::limits::hash_tag(k) == crate::limits::hash_tag(&keys[0])), "{keys:?}");
    }
    rig.answer(calls[1].token, 200, &allow(&calls[1].body));
    assert_eq!(rig.host.of(1, |s| s.resumed), 0, "one slot has answered, not both");
    rig.answer(calls[0].token, 200, &allow(&calls[0].body));
    assert_eq!(rig.host.of(1, |s| s.resumed), 1);
    assert_eq!(rig.upstream_authority(1).as_deref(), Some("api.openai.com"));
    assert_eq!(rig.host.metric(Metric::LimitsUnavailable), 0);
}

#[test]
fn a_failed_slot_fails_open_and_the_others_reservation_is_still_settled() {
    let mut rig = Rig::new(CLUSTER);
    let calls = checked(&mut rig, 1);
    rig.answer(calls[0].token, 200, &allow(&calls[0].body));
    rig.answer(calls[1].token, 200, br#"{"EVAL":[false,"upstream failure"]}"#);
    assert_eq!(rig.host.of(1, |s| s.resumed), 1, "failed open");
    assert_eq!(rig.host.metric(Metric::LimitsUnavailable), 1);
    rig.host.stream(|s| s.response_headers = vec![(":status".into(), "200".into())]);
    rig.requests[&1].borrow_mut().on_response_headers(&rig.host, false);
    let budget = rig.host.of(1, |s| Fake::header(&s.response_headers, "x-posthog-budget"));
    assert_eq!(budget.as_deref(), Some("unknown"));
    rig.end(1);
    // The team's window reservation is settled (its key in the record), the product's
    // was never made (nothing recorded for it).
    rig.host.now.set(rig.host.now.get() + 1000);
    rig.root.tick(&rig.host);
    let records: Vec<String> = rig.store_callouts()[2..].iter().flat_map(|c| call_keys(&c.body)).collect();
    let user_key = &call_keys(&calls[0].body)[0];
    assert!(records.contains(user_key), "{records:?}");
    assert!(records.iter().all(|k| crate::limits::hash_tag(k) == "t:7"), "{records:?}");
}

#[test]
fn a_call_naming_another_window_is_sent_again_on_redis_time() {
    let mut rig = Rig::new(CLUSTER);
    let calls = checked(&mut rig, 1);
    // Redis's clock is 2 hours ahead: a different hour window.
    let redis_now = rig.host.now.get() + 7_200_000;
    let wrong = format!(r#"{{"EVAL":[3,1,{},{redis_now}]}}"#, redis_now / 3_600_000);
    rig.answer(calls[0].token, 200, wrong.as_bytes());
    rig.answer(calls[1].token, 200, &allow(&calls[1].body));
    let retry = rig.store_callouts()[2].clone();
    assert_eq!(rig.host.metric(Metric::LimitsWindowRetries), 1);
    let key = &call_keys(&retry.body)[0];
    assert!(key.ends_with(&format!(":{}", redis_now / 3_600_000)), "{key}");
    assert_eq!(rig.host.of(1, |s| s.resumed), 0);
    rig.answer(retry.token, 200, &allow(&retry.body));
    assert_eq!(rig.host.of(1, |s| s.resumed), 1);
    // The worker keeps Redis's offset: the next check names Redis's window at once.
    let next = checked(&mut rig, 2);
    assert_eq!(call_keys(&next[0].body)[0], *key);
    assert_eq!(rig.host.metric(Metric::LimitsWindowRetries), 1);
}

#[test]
fn a_request_leaving_mid_check_gives_back_what_was_reserved() {
    let mut rig = Rig::new(CLUSTER);
    let calls = checked(&mut rig, 1);
    rig.answer(calls[0].token, 200, &allow(&calls[0].body));
    rig.end(1);
    rig.host.now.set(rig.host.now.get() + 1000);
    rig.root.tick(&rig.host);
    let record = rig.store_callouts().last().cloned().expect("a record");
    let s = segments(&record.body);
    assert_eq!(s[1], crate::limits::RECORD_SCRIPT);
    assert_eq!(call_keys(&record.body), [call_keys(&calls[0].body)[0].clone()]);
    assert!(s.last().unwrap().starts_with('-'), "the estimate goes back: {s:?}");
}

#[test]
fn spend_is_recorded_per_slot_retried_when_not_run_and_counted_when_dropped() {
    let mut rig = Rig::new(CLUSTER);
    let w = &rig.root.worker;
    let now = rig.host.now.get();
    let res = |k: &str| vec![(k.to_string(), 100_000)];
    for team in [1, 2, 3] {
        let key = format!("llmgw:{{t:{team}}}:rl:u:x:3600:1");
        w.spend.borrow_mut().pending.settle(&res(&key), 0.5, Some(team), now);
    }
    rig.host.now.set(now + 1000);
    rig.root.tick(&rig.host);
    let records = rig.store_callouts();
    assert_eq!(records.len(), 3, "one record call per team's slot, all in flight at once");
    for r in &records {
        let keys = call_keys(&r.body);
        assert_eq!(keys.len(), 2, "the team's window and its month: {keys:?}");
        assert_eq!(crate::limits::hash_tag(&keys[0]), crate::limits::hash_tag(&keys[1]));
    }
    rig.answer_root(records[0].token, 200, br#"{"EVAL":[1,0,1]}"#);
    // Refused before running (a slot moving): back in the queue, sent again.
    rig.answer_root(
        records[1].token,
        200,
        br#"{"EVAL":[false,"TRYAGAIN Multiple keys request during rehashing of slot"]}"#,
    );
    // Maybe run: dropped, and its budget spend counted.
    rig.answer_root(records[2].token, 200, br#"{"EVAL":[false,"upstream failure"]}"#);
    assert_eq!(rig.host.metric(Metric::SpendRecords), 1);
    assert_eq!(rig.host.metric(Metric::SpendDropped), 2);
    assert_eq!(rig.host.metric(Metric::SpendDroppedMicroUsd), 500_000);
    rig.host.now.set(now + 2000);
    rig.root.tick(&rig.host);
    let again = rig.store_callouts();
    assert_eq!(again.len(), 4);
    assert_eq!(call_keys(&again[3].body), call_keys(&records[1].body));
}

/// Redis's answer to a check: allowed, the lease asked for granted.
fn allow_with_lease(body: &str) -> Vec<u8> {
    let s = segments(body);
    let n: usize = s[2].parse().unwrap();
    let (keys, args) = (&s[3..3 + n], &s[3 + n..]);
    let (estimate, windows): (i64, usize) = (args[0].parse().unwrap(), args[1].parse().unwrap());
    let lease: i64 = if args.len() == 3 + 2 * windows + 1 { args.last().unwrap().parse().unwrap() } else { 0 };
    let mut out = vec![Value::from(1), Value::from(if n > windows { 0 } else { -1 })];
    for key in &keys[..windows] {
        out.extend([Value::from(key.as_str()), Value::from(estimate + lease), Value::from(600_000)]);
    }
    out.push(Value::from(lease));
    serde_json::json!({ "EVAL": out }).to_string().into_bytes()
}

#[test]
fn a_warm_subject_waits_for_redis_once_and_its_lease_is_renewed_from_the_root() {
    let mut rig = Rig::new(r#"{"limits": {"team": [{"window_seconds": 3600, "limit_usd": 50}]}}"#);
    rig.headers(1, "phx_warm");
    rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
    assert_eq!(rig.body(1), Action::Pause, "a cold subject waits for its check");
    let check = rig.store_callouts()[0].clone();
    let answer = allow_with_lease(&check.body);
    rig.answer(check.token, 200, &answer);
    assert_eq!(rig.host.of(1, |s| s.resumed), 1);
    // The next calls are admitted on the lease until half of it is used.
    let mut id = 2;
    while rig.host.metric(Metric::LimitsLeaseRenewals) == 0 {
        rig.headers(id, "phx_warm");
        assert_eq!(rig.body(id), Action::Continue, "call {id} admitted locally");
        rig.root.tick(&rig.host);
        id += 1;
        assert!(id < 20, "a renewal by half the lease");
    }
    let calls = rig.store_callouts();
    assert_eq!(calls.len(), 2, "the check, then the root's renewal");
    let renewal = calls[1].clone();
    assert!(segments(&renewal.body).iter().any(|s| s == "0"), "a renewal reserves no estimate");
    // Calls go on while the renewal is out; its answer adds to the lease.
    rig.headers(id, "phx_warm");
    assert_eq!(rig.body(id), Action::Continue);
    *rig.host.answer.borrow_mut() = (200, allow_with_lease(&renewal.body));
    assert!(!rig.root.on_callout(&rig.host, renewal.token, 0));
    for n in 1..=30 {
        rig.headers(id + n, "phx_warm");
        assert_eq!(rig.body(id + n), Action::Continue, "call {} on the renewed lease", id + n);
    }
    assert_eq!(rig.host.metric(Metric::LimitsLocalAdmits) as u32, id + 30 - 1);
    assert!(rig.store_callouts().len() <= 3, "at most one more renewal: {:?}", rig.store_callouts().len());
}

/// The provider answers request `id` with `status` and these headers.
fn provider_answers(rig: &mut Rig, id: u32, status: u16, headers: &[(&str, &str)]) {
    rig.host.current.set(id);
    rig.host.stream(|s| {
        s.response_headers = vec![(":status".into(), status.to_string())];
        s.response_headers.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        s.code_details = "via_upstream".into();
    });
    let req = Rc::clone(&rig.requests[&id]);
    req.borrow_mut().on_response_headers(&rig.host, true);
}

fn sent_key(rig: &Rig, id: u32, header: &str) -> Option<String> {
    rig.host.of(id, |s| Fake::header(&s.request_headers, header))
}

#[test]
fn provider_keys_are_used_in_turn_and_a_key_answering_429_rests_for_its_retry_after() {
    use crate::providers::Provider;
    let mut rig = Rig::with_keys(NO_LIMITS, |var| {
        (var == "LLM_GATEWAY_OPENAI_API_KEY").then(|| "sk-one, sk-two,sk-three".to_string())
    });
    let mut next_id = 0;
    let mut call = |rig: &mut Rig| {
        next_id += 1;
        rig.headers(next_id, "phx_pool");
        rig.body(next_id);
        if let Some(lookup) = rig.auth_callouts().iter().find(|c| c.context == next_id) {
            rig.answer(lookup.token, 200, PRINCIPAL);
        }
        next_id
    };
    let first = call(&mut rig);
    let sent = |rig: &Rig, id| sent_key(rig, id, "authorization");
    assert_eq!(sent(&rig, first).as_deref(), Some("Bearer sk-one"));
    // sk-one answers 429, Retry-After 30 s: it rests, the others take turns.
    provider_answers(&mut rig, first, 429, &[("retry-after", "30")]);
    assert_eq!(rig.host.metric(Metric::KeyRested(Provider::OpenAi)), 1);
    let ids: Vec<u32> = (0..3).map(|_| call(&mut rig)).collect();
    let keys: Vec<Option<String>> = ids.iter().map(|id| sent(&rig, *id)).collect();
    assert_eq!(keys, [Some("Bearer sk-two".into()), Some("Bearer sk-three".into()), Some("Bearer sk-two".into())]);
    // The others answer 429 too (ms, then an HTTP date 10 s ahead): every key rests,
    // and the one whose rest ends first goes out, counted.
    provider_answers(&mut rig, ids[0], 429, &[("retry-after-ms", "20000")]);
    provider_answers(&mut rig, ids[1], 429, &[("retry-after", "Thu, 01 Jan 1970 00:16:50 GMT")]);
    assert_eq!(rig.host.metric(Metric::KeyRested(Provider::OpenAi)), 3);
    let all_resting = call(&mut rig);
    assert_eq!(sent(&rig, all_resting).as_deref(), Some("Bearer sk-three"));
    assert_eq!(rig.host.metric(Metric::KeysAllResting(Provider::OpenAi)), 1);
    // Other statuses rest nothing; past the rests every key is back in turn.
    provider_answers(&mut rig, ids[2], 500, &[("retry-after", "60")]);
    assert_eq!(rig.host.metric(Metric::KeyRested(Provider::OpenAi)), 3);
    rig.host.now.set(1_000_000 + 30_000);
    let ids: Vec<u32> = (0..3).map(|_| call(&mut rig)).collect();
    let back: Vec<Option<String>> = ids.iter().map(|id| sent(&rig, *id)).collect();
    assert_eq!(back, [Some("Bearer sk-one".into()), Some("Bearer sk-two".into()), Some("Bearer sk-three".into())]);
    assert_eq!(rig.host.metric(Metric::KeysAllResting(Provider::OpenAi)), 1);
}

// ---------------------------------------------------------------- failover

mod failover {
    use super::*;
    use crate::failover::{FAILOVER_HEADER, REFUSAL_HEADER, TARGET_HEADER};
    use crate::flow::attempt::Attempt;
    use crate::providers::Provider;
    use serde_json::json;

    const CHAINED: &str = r#"{"limits": {"enabled": false},
        "capture": {"region_url": "https://us.posthog.com", "primary": {"api_key": "phc_test"}},
        "failover": {"deadline_ms": 5000, "models": {
            "claude-sonnet-4-5": [{"provider": "anthropic"}, {"provider": "openai", "model": "gpt-4o"}]}}}"#;
    const MESSAGES: &str =
        r#"{"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}"#;
    /// The stream the upstream filter's attempts see: one header map for all of them.
    const UP: u32 = 100;

    impl Rig {
        /// A Messages request, authenticated and sent (its first target set downstream).
        fn sent(&mut self, id: u32, body: &str) {
            let headers = [(":method", "POST"), (":path", "/v1/messages"), ("x-api-key", "phx_chain")];
            assert_eq!(self.authenticated(id, &headers, body), Action::Continue);
        }

        /// One attempt the router makes on `cluster`: the request as the
        /// downstream filter sent it (headers shared with earlier attempts, the
        /// body replayed), then the provider's answer (`None`: no response).
        fn attempt(&mut self, from: u32, cluster: &str, answer: Option<u16>) -> Option<LocalReply> {
            let (headers, body) = self.host.of(from, |s| (s.request_headers.clone(), s.request_body.clone()));
            {
                let mut streams = self.host.streams.borrow_mut();
                let up = streams.entry(UP).or_default();
                if up.request_headers.is_empty() {
                    up.request_headers = headers;
                }
                up.request_body = body;
                up.cluster = Some(cluster.to_string());
                up.reply = None;
                up.response_headers.clear();
            }
            self.host.current.set(UP);
            let mut attempt = Attempt::new(Rc::clone(&self.root.worker.relay));
            if attempt.on_request_headers(&self.host, false) == Action::Pause {
                if let Some(reply) = self.reply(UP) {
                    attempt.on_done(&self.host);
                    return Some(reply);
                }
                let size = self.host.of(UP, |s| s.request_body.len());
                assert_eq!(attempt.on_request_body(&self.host, size, true), Action::Continue);
            }
            if let Some(status) = answer {
                self.host.stream(|s| s.response_headers = vec![(":status".into(), status.to_string())]);
                attempt.on_response_headers(&self.host);
            }
            attempt.on_done(&self.host);
            None
        }

        fn up_header(&self, name: &str) -> Option<String> {
            self.host.of(UP, |s| Fake::header(&s.request_headers, name))
        }

        /// The downstream filter gets the response the router passes on.
        fn respond(&mut self, id: u32, headers: &[(&str, &str)], body: &str, details: &str) -> (u16, Value) {
            self.host.current.set(id);
            self.host.stream(|s| {
                s.response_headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                s.response_body = body.as_bytes().to_vec();
                s.code_details = details.into();
            });
            let req = Rc::clone(&self.requests[&id]);
            req.borrow_mut().on_response_headers(&self.host, false);
            req.borrow_mut().on_response_body(&self.host, body.len(), true);
            let (status, out) =
                self.host.of(id, |s| (Fake::header(&s.response_headers, ":status"), s.response_body.clone()));
            let status = status.and_then(|s| s.parse().ok()).unwrap_or(0);
            (status, serde_json::from_slice(&out).unwrap_or(Value::Null))
        }

        /// The events the worker sent to PostHog.
        fn events(&mut self) -> Vec<Value> {
            self.host.now.set(self.host.now.get() + 5_000);
            self.root.tick(&self.host);
            let batches: Vec<String> = self
                .host
                .callouts
                .borrow()
                .iter()
                .filter(|c| c.cluster == "posthog_primary")
                .map(|c| c.body.clone())
                .collect();
            batches
                .iter()
                .flat_map(|b| {
                    serde_json::from_str::<Value>(b).unwrap()["batch"].as_array().cloned().unwrap_or_default()
                })
                .map(|e| e["properties"].clone())
                .collect()
        }
    }

    #[test]
    fn a_fallback_answers_rewritten_for_its_provider_and_read_on_its_wire() {
        let mut rig = Rig::new(CHAINED);
        rig.sent(1, MESSAGES);
        // The first target goes as any request does, with the router's directives.
        let sent = |name: &str| rig.host.of(1, |s| Fake::header(&s.request_headers, name));
        assert_eq!(sent(FAILOVER_HEADER).as_deref(), Some("1"));
        assert_eq!(sent(":path").as_deref(), Some("/v1/messages"));
        assert_eq!(sent("x-envoy-max-retries").as_deref(), Some("1"));
        assert_eq!(sent("x-envoy-retriable-status-codes").as_deref(), Some("429,500,502,503,504,529"));
        assert!(sent("x-envoy-upstream-rq-per-try-timeout-ms").is_none(), "not streaming: no first-byte timeout");
        // Attempt 1: Anthropic, overloaded. It names the next target's cluster.
        assert!(rig.attempt(1, "anthropic", Some(529)).is_none());
        assert_eq!(rig.up_header("x-llm-gateway-cluster").as_deref(), Some("openai"));
        assert_eq!(rig.up_header("x-api-key").as_deref(), Some("sk-test"), "attempt 1 is the downstream's request");
        // Attempt 2: OpenAI. Anthropic's headers go, OpenAI's come, and the body is OpenAI's.
        assert!(rig.attempt(1, "openai", Some(200)).is_none());
        assert_eq!(rig.up_header(":path").as_deref(), Some("/v1/chat/completions"));
        assert_eq!(rig.up_header(":authority").as_deref(), Some("api.openai.com"));
        assert_eq!(rig.up_header("authorization").as_deref(), Some("Bearer sk-test"));
        assert!(rig.up_header("x-api-key").is_none() && rig.up_header("anthropic-version").is_none());
        let body: Value = rig.host.of(UP, |s| serde_json::from_slice(&s.request_body).unwrap());
        assert_eq!((body["model"].clone(), body["max_completion_tokens"].clone()), (json!("gpt-4o"), json!(64)));
        let length = rig.up_header("content-length").unwrap();
        assert_eq!(length, rig.host.of(UP, |s| s.request_body.len()).to_string());
        assert_eq!(rig.host.of(UP, |s| Fake::header(&s.response_headers, TARGET_HEADER)).as_deref(), Some("1"));
        // The client gets OpenAI's answer as an Anthropic message; the target header stays inside.
        let chat = r#"{"id": "c1", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}"#;
        let headers = [(":status", "200"), ("content-type", "application/json"), (TARGET_HEADER, "1")];
        let (status, body) = rig.respond(1, &headers, chat, "via_upstream");
        assert_eq!(status, 200);
        assert_eq!((body["type"].clone(), body["content"][0]["text"].clone()), (json!("message"), json!("hi there")));
        assert_eq!(body["usage"]["input_tokens"], 10);
        assert!(rig.host.of(1, |s| Fake::header(&s.response_headers, TARGET_HEADER)).is_none());
        rig.end(1);
        assert!(rig.root.worker.relay.borrow().is_empty(), "the chain leaves the relay with the request");
        assert_eq!(rig.host.metric(Metric::FailoverUnchainedAttempts), 0, "chained attempts are not counted");
        let p = rig.events().pop().expect("an event");
        assert_eq!((p["$ai_provider"].clone(), p["$ai_model"].clone()), (json!("openai"), json!("gpt-4o-2024-08-06")));
        assert_eq!(p["$ai_model_requested"], "claude-sonnet-4-5");
        assert_eq!((p["$ai_attempts"].clone(), p["$ai_fallback"].clone()), (json!(2), json!(true)));
        assert_eq!(p["$ai_fallback_attempts"][0]["http_status"], 529);
        assert_eq!(p["$ai_input_tokens"], 10);
        assert_eq!(
            rig.host.metric(Metric::Failover(crate::failover::pair_index(Provider::Anthropic, Provider::OpenAi))),
            1
        );
        assert_eq!(rig.host.metric(Metric::FailoverAnswered), 1);
        assert_eq!(rig.host.metric(Metric::Responses(Provider::OpenAi, 0)), 1);
    }

    #[test]
    fn envoys_reply_after_the_last_attempt_names_the_last_target() {
        let mut rig = Rig::new(CHAINED);
        rig.sent(1, MESSAGES);
        rig.attempt(1, "anthropic", Some(503));
        rig.attempt(1, "openai", None);
        let headers = [(":status", "503"), ("content-type", "text/plain")];
        let details = "upstream_reset_before_response_started{remote_connection_failure}";
        let (status, body) = rig.respond(1, &headers, "upstream connect error", details);
        assert_eq!((status, body["type"].clone()), (502, json!("error")));
        assert_eq!(body["error"]["message"], "The provider openai could not be reached");
        rig.end(1);
        let p = rig.events().pop().unwrap();
        assert_eq!((p["$ai_provider"].clone(), p["$ai_attempts"].clone()), (json!("openai"), json!(2)));
        assert_eq!(rig.host.metric(Metric::FailoverExhausted), 1);
        assert_eq!(rig.host.metric(Metric::FailoverAnswered), 0);
    }

    #[test]
    fn no_attempt_starts_past_the_deadline_or_on_the_wrong_cluster() {
        let mut rig = Rig::new(CHAINED);
        rig.sent(1, MESSAGES);
        rig.attempt(1, "anthropic", Some(503));
        rig.host.now.set(rig.host.now.get() + 5_000);
        let reply = rig.attempt(1, "openai", None).expect("refused");
        assert_eq!(reply.status, 504);
        let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut all = vec![(":status", "504")];
        all.extend(headers);
        let (status, body) = rig.respond(1, &all, &reply.body, "via_upstream");
        assert_eq!((status, body["error"]["code"].clone()), (504, json!("failover_deadline_exceeded")));
        assert!(rig.host.of(1, |s| Fake::header(&s.response_headers, REFUSAL_HEADER)).is_none());
        rig.end(1);
        assert_eq!(rig.host.metric(Metric::FailoverDeadline), 1);
        let p = rig.events().pop().unwrap();
        assert_eq!((p["$ai_provider"].clone(), p["$ai_attempts"].clone()), (json!("anthropic"), json!(1)));

        // A route without refresh_cluster_on_retry sends the retry to the first cluster again.
        rig.host.streams.borrow_mut().remove(&UP);
        rig.sent(2, MESSAGES);
        rig.attempt(2, "anthropic", Some(503));
        let reply = rig.attempt(2, "anthropic", None).expect("refused");
        assert_eq!((reply.status, reply.headers[0].1.as_str()), (502, "misrouted"));
        let (status, body) = rig.respond(2, &[(":status", "502"), (REFUSAL_HEADER, "misrouted")], &reply.body, "");
        assert_eq!((status, body["error"]["code"].clone()), (502, json!("failover_misconfigured")));
        rig.end(2);
        assert_eq!(rig.host.metric(Metric::FailoverMisconfigured), 1);
    }

    #[test]
    fn requests_without_a_chain_pass_the_upstream_filter_untouched() {
        let mut rig = Rig::new(CHAINED);
        let haiku = MESSAGES.replace("claude-sonnet-4-5", "claude-haiku-4-5");
        rig.sent(1, &haiku);
        assert!(rig.host.of(1, |s| Fake::header(&s.request_headers, FAILOVER_HEADER)).is_none());
        assert!(rig.host.of(1, |s| Fake::header(&s.request_headers, "x-envoy-retry-on")).is_none());
        let before = rig.host.of(1, |s| s.request_headers.clone());
        assert!(rig.attempt(1, "anthropic", Some(200)).is_none());
        assert_eq!(rig.host.of(UP, |s| s.request_headers.clone()), before);
        assert!(rig.host.of(UP, |s| Fake::header(&s.response_headers, TARGET_HEADER)).is_none());
        let (status, _) =
            rig.respond(1, &[(":status", "200"), ("content-type", "application/json")], "{}", "via_upstream");
        assert_eq!(status, 200);
        rig.end(1);
        let p = rig.events().pop().unwrap();
        assert!(p.get("$ai_attempts").is_none());
        assert_eq!(rig.host.metric(Metric::FailoverUnchainedAttempts), 1, "a config that lets it get here shows");
    }

    #[test]
    fn a_target_that_cannot_serve_the_request_is_left_out_and_a_client_cannot_steer_retries() {
        let mut rig = Rig::new(CHAINED);
        // Anthropic's Messages field OpenAI cannot express: the fallback is left out.
        let server_tool = r#"{"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}"#;
        let headers = [
            (":method", "POST"),
            (":path", "/v1/messages"),
            ("x-api-key", "phx_skip"),
            ("x-envoy-retry-on", "5xx"),
            ("x-envoy-max-retries", "5"),
            (FAILOVER_HEADER, "99"),
        ];
        rig.open(1, &headers, server_tool, false);
        rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
        assert_eq!(rig.body(1), Action::Continue);
        assert_eq!(rig.host.metric(Metric::FailoverTargetsSkipped), 1);
        for name in ["x-envoy-retry-on", "x-envoy-max-retries", FAILOVER_HEADER] {
            assert!(rig.host.of(1, |s| Fake::header(&s.request_headers, name)).is_none(), "{name} reached the router");
        }
    }

    #[test]
    fn a_client_leaving_before_any_response_is_booked_on_the_last_attempt() {
        let mut rig = Rig::new(CHAINED);
        rig.sent(1, MESSAGES);
        rig.attempt(1, "anthropic", Some(529));
        rig.attempt(1, "openai", None);
        rig.host.current.set(1);
        rig.host.stream(|s| s.code_details = "downstream_remote_disconnect".into());
        rig.end(1);
        let p = rig.events().pop().unwrap();
        assert_eq!((p["$ai_provider"].clone(), p["$ai_attempts"].clone()), (json!("openai"), json!(2)));
        assert_eq!((p["$ai_http_status"].clone(), p["$ai_model"].clone()), (json!(499), json!("gpt-4o")));
        assert!(p["$ai_error"].as_str().unwrap().contains("client disconnected"), "{p}");
        assert!(rig.root.worker.relay.borrow().is_empty());
    }

    #[test]
    fn an_attempt_the_relay_does_not_know_is_refused() {
        let rig = Rig::new(CHAINED);
        rig.host
            .streams
            .borrow_mut()
            .insert(UP, Stream { request_headers: vec![(FAILOVER_HEADER.into(), "42".into())], ..Stream::default() });
        rig.host.current.set(UP);
        let mut attempt = Attempt::new(Rc::clone(&rig.root.worker.relay));
        assert_eq!(attempt.on_request_headers(&rig.host, false), Action::Pause);
        let reply = rig.reply(UP).expect("refused");
        assert_eq!((reply.status, reply.headers[0].1.as_str()), (502, "lost"));
    }
}

#[test]
fn a_body_over_the_failover_limit_makes_one_attempt() {
    let config = r#"{"limits": {"enabled": false}, "failover": {"max_body_bytes": 16,
        "models": {"claude-sonnet-4-5": [{"provider": "anthropic"}, {"provider": "openai", "model": "gpt-4o"}]}}}"#;
    let mut rig = Rig::new(config);
    let body = r#"{"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}"#;
    rig.open(1, &[(":method", "POST"), (":path", "/v1/messages"), ("x-api-key", "phx_big")], body, false);
    rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
    assert_eq!(rig.body(1), Action::Continue);
    assert!(rig.host.of(1, |s| Fake::header(&s.request_headers, crate::failover::FAILOVER_HEADER)).is_none());
    assert_eq!(rig.host.metric(Metric::FailoverBodyTooLarge), 1);
    assert!(rig.root.worker.relay.borrow().is_empty());
}

/// Envoy runs the log callback before it writes the response's last bytes, so
/// a call is accounted for on the root's next tick, or in the drain at
/// shutdown: its metrics and its event, with the end and the error the log callback saw.
#[test]
fn a_call_is_accounted_for_on_the_next_tick_or_in_the_drain() {
    let config = r#"{"limits": {"enabled": false}, "capture": {"region_url": "https://us.posthog.com",
        "primary": {"api_key": "phc_test"}}}"#;
    let mut rig = Rig::new(config);
    let answer = br#"{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;
    let call = |rig: &mut Rig, id: u32, details: &str| {
        rig.headers(id, "phx_tick");
        if id == 1 {
            rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
        }
        assert_eq!(rig.body(id), Action::Continue);
        rig.host.stream(|s| {
            s.response_headers =
                vec![(":status".into(), "200".into()), ("content-type".into(), "application/json".into())];
            s.response_body = answer[..answer.len() / 2].to_vec();
            s.code_details = details.into();
        });
        let req = Rc::clone(&rig.requests[&id]);
        req.borrow_mut().on_response_headers(&rig.host, false);
        req.borrow_mut().on_response_body(&rig.host, answer.len() / 2, false);
        rig.log(id);
    };
    call(&mut rig, 1, "downstream_remote_disconnect");
    assert_eq!((rig.host.metric(Metric::EventsQueued), rig.host.metric(Metric::TokensInput)), (0, 0), "not yet");
    rig.quick_tick();
    // Accounted: its event queued (half a JSON body carries no usage).
    assert_eq!((rig.host.metric(Metric::EventsQueued), rig.host.metric(Metric::TokensInput)), (1, 0));
    // Envoy's reason, read in the log callback, is in the event sent after the tick.
    call(&mut rig, 2, "upstream_reset_after_response_started{remote_reset}");
    assert!(!rig.root.on_done(&rig.host), "the drain sends the queued events and waits for the answer");
    assert_eq!(rig.host.metric(Metric::EventsQueued), 2);
    let sent =
        rig.host.callouts.borrow().iter().filter(|c| c.cluster == "posthog_primary").cloned().collect::<Vec<_>>();
    let errors: Vec<Value> = sent
        .iter()
        .flat_map(|c| serde_json::from_str::<Value>(&c.body).unwrap()["batch"].as_array().unwrap().clone())
        .map(|e| e["properties"]["$ai_error"].clone())
        .collect();
    assert_eq!(
        errors,
        [
            serde_json::json!("client disconnected before the response completed"),
            serde_json::json!("response did not complete (upstream_reset_after_response_started{remote_reset})")
        ]
    );
}

/// Past `MAX_WAITING` calls waiting for the tick, a call is accounted for at once: the queue stays bounded.
#[test]
fn the_queue_of_ended_calls_is_bounded() {
    let mut rig = Rig::new(NO_LIMITS);
    rig.headers(1, "phx_many");
    rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
    let answered = Metric::Responses(crate::providers::Provider::OpenAi, 0);
    for id in 1..=capture::MAX_WAITING as u32 + 1 {
        if id > 1 {
            rig.headers(id, "phx_many");
        }
        assert_eq!(rig.body(id), Action::Continue);
        rig.host.stream(|s| s.response_headers = vec![(":status".into(), "200".into())]);
        rig.requests[&id].borrow_mut().on_response_headers(&rig.host, true);
        rig.log(id);
    }
    assert_eq!(rig.host.metric(answered), 1, "the one past the bound, at once");
    assert_eq!(rig.root.worker.ended.borrow().len(), capture::MAX_WAITING);
    rig.quick_tick();
    assert_eq!(rig.host.metric(answered), capture::MAX_WAITING as i64 + 1);
}

/// Under traffic ticks come every 10 ms, late under load; the full one runs
/// once 100 ms have passed by the clock.
#[test]
fn the_full_tick_runs_by_the_clock_not_by_the_count() {
    let mut rig = Rig::new(NO_LIMITS);
    let t0 = rig.host.now.get();
    // A call ends before every tick: the root stays fast.
    let tick = |rig: &mut Rig, at: u64| {
        rig.host.now.set(t0 + at);
        rig.root.worker.pace.hurry(&rig.host);
        rig.root.on_tick(&rig.host)
    };
    assert!(tick(&mut rig, 0), "the first tick is full");
    for step in 1..10 {
        assert!(!tick(&mut rig, 10 * step), "{} ms in", 10 * step);
    }
    assert!(tick(&mut rig, 100));
    // Late ticks: each past 100 ms is full.
    assert!(tick(&mut rig, 230));
    assert!(!tick(&mut rig, 240));
}

/// Each tick enters the VM: an idle worker ticks every 100 ms (set when the
/// filter is configured), a call that ended makes the root tick every 10 ms
/// until 10 ticks in a row find nothing to do, and every slow tick is full.
/// (Deferred requests hurry it too: the two deferral tests above.)
#[test]
fn the_root_ticks_fast_only_while_work_waits_for_the_tick() {
    let mut rig = Rig::new(NO_LIMITS);
    let period = |rig: &Rig| rig.host.tick_period_ms.get();
    let sets = |rig: &Rig| rig.host.calls.borrow().iter().filter(|c| c.starts_with("set_tick_period")).count();
    assert!(rig.root.on_tick(&rig.host), "idle: every tick is full");
    rig.host.now.set(rig.host.now.get() + 1);
    assert!(rig.root.on_tick(&rig.host));
    assert_eq!(sets(&rig), 0, "an idle root keeps its period");
    rig.headers(1, "phx_pace");
    rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
    for id in 1..=2 {
        if id > 1 {
            rig.headers(id, "phx_pace");
        }
        rig.body(id);
        rig.host.stream(|s| s.response_headers = vec![(":status".into(), "200".into())]);
        rig.requests[&id].borrow_mut().on_response_headers(&rig.host, true);
        rig.log(id);
    }
    assert_eq!((period(&rig), sets(&rig)), (10, 1), "the first call that ended hurries the root, once");
    let answered = Metric::Responses(crate::providers::Provider::OpenAi, 0);
    rig.host.now.set(rig.host.now.get() + 10);
    rig.root.on_tick(&rig.host);
    assert_eq!(rig.host.metric(answered), 2, "accounted on the next tick");
    for n in 1..10 {
        rig.host.now.set(rig.host.now.get() + 10);
        rig.root.on_tick(&rig.host);
        assert_eq!(period(&rig), 10, "{n} idle ticks");
    }
    rig.host.now.set(rig.host.now.get() + 10);
    rig.root.on_tick(&rig.host);
    assert_eq!((period(&rig), sets(&rig)), (100, 2), "the tenth idle tick slows the root down");
}

/// A body goes upstream with its length: the client's when it passes as sent,
/// its own when the gateway rewrites it (without one, Envoy sends it chunked).
#[test]
fn the_upstream_body_goes_with_its_own_length() {
    let mut rig = Rig::new(NO_LIMITS);
    let stream = r#"{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}"#;
    for (id, body, rewritten) in [(1, CHAT, false), (2, stream, true)] {
        let length = body.len().to_string();
        let headers = [
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("authorization", "Bearer phx_length"),
            ("content-length", length.as_str()),
        ];
        assert_eq!(rig.authenticated(id, &headers, body), Action::Continue);
        let (sent_length, sent) =
            rig.host.of(id, |s| (Fake::header(&s.request_headers, "content-length"), s.request_body.clone()));
        assert_eq!(sent != body.as_bytes(), rewritten, "the stream asks for usage: {}", String::from_utf8_lossy(&sent));
        assert_eq!(sent_length, Some(sent.len().to_string()));
    }
}

/// Each hostcall is a crossing from V8 into Envoy, so the calls a warm request
/// makes (auth cached, limits off) are budgeted per phase (BENCHMARKS.md,
/// per-callback budget).
#[test]
fn a_warm_request_stays_within_its_hostcall_budget() {
    const BUDGET: [(&str, usize); 6] =
        [("headers", 3), ("body", 7), ("response_headers", 2), ("response_body", 2), ("log", 1), ("tick", 0)];
    let mut rig = Rig::new(NO_LIMITS);
    rig.headers(1, "phx_budget");
    rig.body(1);
    rig.answer(rig.auth_callouts()[0].token, 200, PRINCIPAL);
    rig.end(1);
    rig.host.calls.borrow_mut().clear();
    let spend = |rig: &mut Rig, phase: usize, run: &dyn Fn(&mut Rig)| {
        run(rig);
        let mut calls: Vec<String> = rig.host.calls.borrow_mut().drain(..).collect();
        // The adapter reads the clock once per callback.
        let mut clock_read = false;
        calls.retain(|c| c != "now_ms" || !std::mem::replace(&mut clock_read, true));
        let (name, budget) = BUDGET[phase];
        assert!(calls.len() <= budget, "{name} made {} hostcalls, budget {budget}: {calls:?}", calls.len());
    };
    spend(&mut rig, 0, &|rig| {
        rig.headers(2, "phx_budget");
    });
    spend(&mut rig, 1, &|rig| {
        rig.body(2);
    });
    spend(&mut rig, 2, &|rig| {
        rig.host.stream(|s| {
            s.response_headers = vec![(":status".into(), "200".into()), ("content-type".into(), "application/json".into())];
            s.response_body = br#"{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#.to_vec();
        });
        rig.requests[&2].borrow_mut().on_response_headers(&rig.host, false);
    });
    spend(&mut rig, 3, &|rig| {
        let n = rig.host.of(2, |s| s.response_body.len());
        rig.requests[&2].borrow_mut().on_response_body(&rig.host, n, true);
    });
    spend(&mut rig, 4, &|rig| rig.log(2));
    spend(&mut rig, 5, &|rig| rig.quick_tick());
    assert_eq!(rig.host.metric(Metric::TokensInput), 5, "the warm request was accounted");
}
