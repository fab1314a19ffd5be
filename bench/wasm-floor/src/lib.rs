//! Two floor filters, chosen by the plugin configuration, that do the least the
//! gateway has to do, so the benchmark can split the gateway's added latency
//! into "any wasm filter on this Envoy" and "the gateway's own work":
//!
//! - default (`wasm-noop`): sets the routing header in the request-headers
//!   callback and continues; every other callback is the SDK's default.
//! - `"floor": "body"` in the configuration (`wasm-body`): pauses on request
//!   headers, copies the whole request body into the VM once it is complete,
//!   then sets the routing header and continues; copies each response body
//!   chunk into the VM as it passes (as usage extraction must).
//! - `"floor": "hostcalls"` (`wasm-hostcalls`): `body`, plus the hostcalls the
//!   gateway makes for a non-streaming OpenAI call with auth cached, limits and
//!   capture off (the header map read once, the credential removed, six
//!   upstream headers set, two response headers read, the clock and metrics),
//!   with none of its logic, so the gap to the gateway is its own computation.
//! - `"floor": "min"` (`wasm-min`): `body`, plus the fewest hostcalls any
//!   gateway that rewrites the upstream request needs (7 in all, against the
//!   `hostcalls` floor's 21): the header map read, then replaced whole in one
//!   call, the response header map read, and two clock reads. It answers
//!   whether fewer, larger hostcalls would lift the `hostcalls` floor.
//!
//! - `"floor": "json"` (`wasm-json`): `hostcalls`, plus the JSON any gateway
//!   that routes by model and counts tokens must read: the request body parsed
//!   for its `model` and `stream` (every other member skipped, as a typed
//!   parse does; a stream that does not ask for usage is made to, by a splice),
//!   and the response's `usage` (the JSON body at its end, or each SSE `data:`
//!   line that carries one), cutting out the usage chunk it asked for (not the
//!   `"usage":null` member of the other chunks, which the gateway also cuts). It
//!   answers how far the gateway's own computation is above the least an
//!   LLM-aware filter computes.
//!
//! With `"log_spin_us": N` as well (`wasm-log-spin`), the log callback also
//! spins for N µs: it shows whether work there delays the client's response.
//!
//! With `"timed": true` as well (`bench/profile.py --timing wasm-hostcalls`),
//! each callback adds its wall time to the counters the gateway's
//! callback-timing build keeps (`llm_gateway.timing.<callback>_ns`), so the
//! two are compared callback by callback.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use serde::Deserialize;

const ROUTE_HEADER: &str = "x-llm-gateway-cluster";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root {
            body: false,
            min: false,
            json: false,
            log_spin_ns: 0,
            calls: None,
            usage_metric: None,
            requests: None,
        })
    });
}}

struct Root {
    body: bool,
    /// The `min` floor.
    min: bool,
    /// The `json` floor.
    json: bool,
    /// How long the log callback spins (`"log_spin_us"`), in ns.
    log_spin_ns: u64,
    /// The metric the `hostcalls` floor increments, when that floor is chosen.
    calls: Option<u32>,
    /// The `json` floor's count of the calls whose usage it read.
    usage_metric: Option<u32>,
    /// With `"timed": true`: the request counter `bench/profile.py --timing` divides by.
    requests: Option<u32>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        let floor = |name: &str| {
            text.contains(&format!("\"floor\":\"{name}\"")) || text.contains(&format!("\"floor\": \"{name}\""))
        };
        self.json = floor("json");
        if floor("hostcalls") || self.json {
            self.calls = hostcalls::define_metric(MetricType::Counter, "floor_calls_total").ok();
        }
        if self.json {
            self.usage_metric = hostcalls::define_metric(MetricType::Counter, "floor_usage_read_total").ok();
        }
        self.min = floor("min");
        self.log_spin_ns = text
            .split("\"log_spin_us\":")
            .nth(1)
            .and_then(|rest| rest.trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
            .map_or(0, |us| us * 1000);
        self.body = floor("body") || self.calls.is_some() || self.min;
        if text.contains("\"timed\":true") || text.contains("\"timed\": true") {
            self.requests = hostcalls::define_metric(MetricType::Counter, "llm_gateway.requests_total").ok();
        }
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        if let Some(id) = self.requests {
            let _ = hostcalls::increment_metric(id, 1);
        }
        Some(Box::new(Floor {
            body: self.body,
            min: self.min,
            json: self.json,
            stream: false,
            asked: false,
            tokens: 0,
            response: Vec::new(),
            log_spin_ns: self.log_spin_ns,
            calls: self.calls,
            usage_metric: self.usage_metric,
            timed: self.requests.is_some(),
            seen: 0,
            headers: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Floor {
    body: bool,
    min: bool,
    json: bool,
    /// The `json` floor: whether the client asked for a stream, tokens read
    /// from the response, and a JSON response's bytes so far.
    stream: bool,
    /// It asked for the usage chunk, which the client then must not see.
    asked: bool,
    tokens: u64,
    response: Vec<u8>,
    log_spin_ns: u64,
    /// The `min` floor: the request's headers, read once, written back whole.
    headers: Vec<(String, String)>,
    calls: Option<u32>,
    usage_metric: Option<u32>,
    timed: bool,
    /// Bytes copied in, so the copies cannot be optimised away.
    seen: usize,
}

impl Context for Floor {}

fn now_ns() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

thread_local! {
    static TIMING_IDS: RefCell<HashMap<&'static str, Option<u32>>> = RefCell::new(HashMap::new());
}

/// Runs one callback, adding its wall time to `llm_gateway.timing.<name>_ns` when timed.
fn timed<T>(on: bool, name: &'static str, f: impl FnOnce() -> T) -> T {
    if !on {
        return f();
    }
    let started = now_ns();
    let out = f();
    let took = now_ns().saturating_sub(started);
    let id = TIMING_IDS.with(|ids| {
        *ids.borrow_mut().entry(name).or_insert_with(|| {
            hostcalls::define_metric(MetricType::Counter, &format!("llm_gateway.timing.{name}_ns")).ok()
        })
    });
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, took as i64);
    }
    out
}

/// The request members a router reads; serde skips every other one.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    model: &'a str,
    #[serde(default)]
    stream: bool,
    stream_options: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct WithUsage {
    usage: Option<Usage>,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn usage_tokens(json: &[u8]) -> u64 {
    serde_json::from_slice::<WithUsage>(json)
        .ok()
        .and_then(|r| r.usage)
        .map_or(0, |u| u.prompt_tokens + u.completion_tokens)
}

impl Floor {
    fn count(&self, n: u32) {
        if let Some(id) = self.calls {
            for _ in 0..n {
                let _ = hostcalls::increment_metric(id, 1);
            }
        }
    }
}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        timed(self.timed, "request_headers", || self.request_headers(end_of_stream))
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        timed(self.timed, "request_body", || self.request_body(size, end_of_stream))
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        timed(self.timed, "response_headers", || self.response_headers())
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        timed(self.timed, "response_body", || self.response_body(size, end_of_stream))
    }

    fn on_log(&mut self) {
        timed(self.timed, "log", || self.log())
    }
}

/// The callbacks, each doing what its floor does.
impl Floor {
    fn request_headers(&mut self, end_of_stream: bool) -> Action {
        if self.min {
            let _ = self.get_current_time();
            self.headers = self.get_http_request_headers();
            return Action::Pause;
        }
        if self.calls.is_some() {
            self.count(1);
            let _ = self.get_current_time();
            self.seen += self.get_http_request_headers().len();
            self.set_http_request_header("authorization", None);
            self.count(1);
        }
        if self.body && !end_of_stream {
            return Action::Pause;
        }
        self.set_http_request_header(ROUTE_HEADER, Some("mock"));
        Action::Continue
    }

    fn request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !self.body {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, size).unwrap_or_default();
        self.seen += body.len();
        if self.json {
            if let Ok(r) = serde_json::from_slice::<Request>(&body) {
                self.seen += r.model.len();
                self.stream = r.stream;
                // An OpenAI stream carries usage only when asked: ask, the least way (a splice).
                if r.stream && r.stream_options.is_none() && body.first() == Some(&b'{') {
                    let mut asked = br#"{"stream_options":{"include_usage":true},"#.to_vec();
                    asked.extend_from_slice(&body[1..]);
                    self.set_http_request_body(0, size, &asked);
                    self.set_http_request_header("content-length", Some(&asked.len().to_string()));
                    self.asked = true;
                }
            }
        }
        if self.min {
            let mut h = std::mem::take(&mut self.headers);
            h.retain(|(k, _)| k != "authorization" && k != ":authority" && k != ":path");
            for (name, value) in [
                (ROUTE_HEADER, "mock"),
                ("accept-encoding", "identity"),
                (":authority", "mock.local"),
                (":path", "/v1/chat/completions"),
                ("x-envoy-upstream-rq-timeout-ms", "600000"),
                ("authorization", "Bearer sk-upstream-fake"),
            ] {
                h.push((name.to_string(), value.to_string()));
            }
            let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            self.set_http_request_headers(refs);
            return Action::Continue;
        }
        self.set_http_request_header(ROUTE_HEADER, Some("mock"));
        if self.calls.is_some() {
            for (name, value) in [
                ("accept-encoding", "identity"),
                (":authority", "mock.local"),
                (":path", "/v1/chat/completions"),
                ("x-envoy-upstream-rq-timeout-ms", "600000"),
                ("authorization", "Bearer sk-upstream-fake"),
            ] {
                self.set_http_request_header(name, Some(value));
            }
        }
        Action::Continue
    }

    fn response_headers(&mut self) -> Action {
        if self.min {
            self.seen += self.get_http_response_headers().len();
            return Action::Continue;
        }
        if self.calls.is_some() {
            for name in [":status", "content-type"] {
                self.seen += self.get_http_response_header(name).map_or(0, |v| v.len());
            }
            let _ = self.get_current_time();
        }
        Action::Continue
    }

    fn response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !self.body {
            return Action::Continue;
        }
        let chunk = self.get_http_response_body(0, size).unwrap_or_default();
        self.seen += chunk.len();
        if !self.json {
            return Action::Continue;
        }
        if self.stream {
            // The mock's chunks end on event boundaries; usage rides on some `data:`
            // lines, and the usage chunk the floor asked for is cut out again.
            let mut kept = Vec::with_capacity(chunk.len());
            let mut cut = false;
            let mut rest: &[u8] = &chunk;
            while !rest.is_empty() {
                let end = rest.windows(2).position(|w| w == b"\n\n").map_or(rest.len(), |i| i + 2);
                let (event, tail) = rest.split_at(end);
                rest = tail;
                let data = event.split(|&b| b == b'\n').find_map(|l| l.strip_prefix(b"data: "));
                if let Some(json) = data.filter(|d| contains(d, b"\"usage\":")) {
                    self.tokens += usage_tokens(json);
                    if self.asked && contains(json, b"\"choices\":[]") {
                        cut = true;
                        continue;
                    }
                }
                kept.extend_from_slice(event);
            }
            if cut {
                self.set_http_response_body(0, size, &kept);
            }
        } else {
            self.response.extend_from_slice(&chunk);
            if end_of_stream {
                self.tokens += usage_tokens(&self.response);
            }
        }
        Action::Continue
    }

    fn log(&mut self) {
        if self.log_spin_ns > 0 {
            let start = now_ns();
            while now_ns().saturating_sub(start) < self.log_spin_ns {}
        }
        if self.min {
            let _ = self.get_current_time();
        }
        if self.calls.is_some() {
            let _ = self.get_current_time();
            match self.usage_metric {
                // One of the four increments counts the calls whose usage it read, so a run shows it did.
                Some(id) => {
                    self.count(3);
                    let _ = hostcalls::increment_metric(id, i64::from(self.tokens > 0));
                }
                None => self.count(4),
            }
        }
    }
}
