//! Issue 9: the fault matrix. Every neighbour of the gateway (auth service,
//! webdis/Redis, PostHog primary and mirror, the provider) fails in each way
//! the README's "Failure modes" table names, through a real Envoy, and each
//! row asserts what the client sees, the metric that counts it, and at the
//! end that the books balance: every call is an event delivered or counted
//! as dropped on each destination, and the spend in Redis is the sum of the
//! calls' costs.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use llm_gateway_e2e::calls::principal;
use llm_gateway_e2e::fault_proxy::{Fault, FaultProxy, FAULTS};
use llm_gateway_e2e::sink::CaptureSink;
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

/// An Envoy whose auth service, webdis and both PostHog destinations sit
/// behind fault proxies, with timeouts of 300 ms so "slow" is past them.
struct Rig {
    name: &'static str,
    envoy: Envoy,
    auth: FaultProxy,
    store: FaultProxy,
    primary: FaultProxy,
    mirror: FaultProxy,
    primary_sink: CaptureSink,
    mirror_sink: CaptureSink,
    team: i64,
    key: String,
}

fn rig(stack: &Stack, name: &'static str, team: i64, overlay: Value) -> Rig {
    let (primary_sink, mirror_sink) = (CaptureSink::start(), CaptureSink::start());
    let auth = FaultProxy::start(stack.store.webdis_port);
    let store = FaultProxy::start(stack.store.webdis_port);
    let primary = FaultProxy::start(primary_sink.port());
    let mirror = FaultProxy::start(mirror_sink.port());
    let key = format!("phx_matrix_{name}");
    stack.store.put_key(&key, &principal(team, json!({})));
    stack.store.command(&["DEL", &budget_key(team)]);
    let mut config = test_plugin_config();
    merge(
        &mut config,
        json!({
            "providers": {"openai": {"timeout_ms": 1000}},
            "auth": {"timeout_ms": 300},
            "limits": {"timeout_ms": 300, "budget": {"monthly_budget_usd": 1000.0}},
            "capture": {"flush_interval_ms": 100, "max_attempts": 3,
                "primary": {"timeout_ms": 300}, "secondary": {"timeout_ms": 300}},
        }),
    );
    merge(&mut config, overlay);
    let dir = stack.dir.join(format!("matrix-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let ports =
        Ports { auth: auth.port(), webdis: store.port(), sink: primary.port(), sink2: mirror.port(), ..stack.ports() };
    let envoy = Envoy::start_with(&dir, &config, ports, 1);
    Rig { name, envoy, auth, store, primary, mirror, primary_sink, mirror_sink, team, key }
}

fn chat(stream: bool) -> String {
    json!({"model": "gpt-4o", "stream": stream, "user": "matrix-user",
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string()
}

impl Rig {
    /// A chat call with this rig's key, marked so the mock's requests can be counted.
    fn call(&self, key: &str, trace: &str, extra: &[(&str, &str)], stream: bool) -> Response {
        let mut headers = vec![("x-api-key", key), ("x-test-rig", self.name), ("x-posthog-trace-id", trace)];
        headers.extend_from_slice(extra);
        send(self.envoy.port, "POST", "/v1/chat/completions", &headers, &chat(stream))
    }

    fn delta(&self, before: &HashMap<String, u64>, name: &str) -> u64 {
        let key = format!("llm_gateway.{name}");
        self.envoy.metrics().get(&key).copied().unwrap_or(0) - before.get(&key).copied().unwrap_or(0)
    }

    fn wait_for_metric(&self, name: &str, at_least: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.envoy.metric(&format!("llm_gateway.{name}")) < at_least {
            assert!(Instant::now() < deadline, "{name} stayed below {at_least}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn event(&self, trace: &str) -> Value {
        self.mirror_sink.properties(trace)
    }

    /// Calls that reached the provider: a call failed over reaches it once per attempt,
    /// all with the request's id.
    fn calls(&self, stack: &Stack) -> u64 {
        let ids: HashSet<String> = stack
            .mock
            .requests()
            .iter()
            .filter(|r| r.header("x-test-rig") == Some(self.name))
            .map(|r| r.header("x-request-id").unwrap_or_default().to_string())
            .collect();
        ids.len() as u64
    }

    /// Once both queues are empty: each destination delivered or counted every
    /// call, with no uuid twice counted, and Redis holds the spend of every call.
    fn assert_books_balance(&self, stack: &Stack, spend_may_drop: bool) {
        let calls = self.calls(stack);
        let settled = |m: &HashMap<String, u64>, dest: &str| {
            let get = |n: &str| m.get(&format!("llm_gateway.capture_{dest}_{n}")).copied().unwrap_or(0);
            get("queue_depth") == 0 && get("sent_total") + get("dropped_total") == calls
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let m = loop {
            let m = self.envoy.metrics();
            if settled(&m, "primary") && settled(&m, "secondary") {
                break m;
            }
            assert!(Instant::now() < deadline, "queues did not settle on {calls} calls: {m:?}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let get = |n: &str| m.get(&format!("llm_gateway.{n}")).copied().unwrap_or(0);
        assert_eq!(get("events_queued_total"), calls, "one event per call");
        for (dest, sink) in [("primary", &self.primary_sink), ("secondary", &self.mirror_sink)] {
            let uuids: HashSet<String> =
                sink.events().iter().map(|e| e["uuid"].as_str().unwrap_or_default().to_string()).collect();
            let sent = get(&format!("capture_{dest}_sent_total"));
            // A batch that arrived after its timeout is sent again with the same uuids.
            assert!(uuids.len() as u64 >= sent && uuids.len() as u64 <= calls, "{dest}: {} uuids", uuids.len());
        }
        // Spend: flushed every 250 ms; wait for it to stop changing.
        let read = || {
            stack.store.command(&["GET", &budget_key(self.team)])["GET"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0u64)
        };
        let mut recorded = read();
        loop {
            std::thread::sleep(Duration::from_millis(600));
            let now = read();
            if now == recorded {
                break;
            }
            recorded = now;
        }
        let cost = get("cost_micro_usd_total");
        let dropped = get("spend_dropped_total");
        if spend_may_drop {
            assert!(recorded <= cost + calls, "spend counted twice: {recorded} > {cost}");
            assert!(recorded + calls >= cost || dropped > 0, "spend lost without a count: {recorded} < {cost}");
        } else {
            assert_eq!(dropped, 0);
            assert!(recorded.abs_diff(cost) <= calls, "recorded {recorded} micro-USD, calls cost {cost}");
        }
        // When every event reached the mirror, their costs add up to the same spend
        // (with failover, plus the estimate of attempts the provider may have billed).
        let mut by_uuid: HashMap<String, f64> = HashMap::new();
        for e in self.mirror_sink.events() {
            let p = &e["properties"];
            let cost =
                p["$ai_total_cost_usd"].as_f64().unwrap_or(0.0) + p["$ai_fallback_cost_usd"].as_f64().unwrap_or(0.0);
            by_uuid.insert(e["uuid"].as_str().unwrap_or_default().to_string(), cost);
        }
        if by_uuid.len() as u64 == calls {
            let events_micro = by_uuid.values().sum::<f64>() * 1e6;
            assert!((events_micro - cost as f64).abs() <= calls as f64, "events cost {events_micro}, metric {cost}");
        }
    }
}

#[test]
fn auth_service_faults_fail_closed_and_recover_at_once() {
    let stack = Stack::shared();
    let rig = rig(stack, "auth", 9101, json!({}));
    let _g = rig.envoy.guard();
    for (i, (name, fault)) in FAULTS.into_iter().enumerate() {
        // A key not yet cached, so the lookup happens.
        let key = format!("phx_matrix_auth_cold_{i}");
        stack.store.put_key(&key, &principal(rig.team, json!({})));
        let before = rig.envoy.metrics();
        rig.auth.set(fault);
        let resp = rig.call(&key, &format!("auth-{name}"), &[], false);
        assert_eq!(resp.status, 503, "auth {name}: {}", resp.body);
        assert_eq!(resp.json()["error"]["code"], "auth_unavailable", "auth {name}");
        assert_eq!(rig.delta(&before, "auth_unavailable_total"), 1, "auth {name}");
        rig.auth.set(Fault::None);
        // A failed lookup is not cached: the same key works as soon as the service does.
        assert_eq!(rig.call(&key, &format!("auth-{name}-after"), &[], false).status, 200, "auth {name}");
    }
    rig.assert_books_balance(stack, false);
}

#[test]
fn store_faults_fail_open_with_unknown_budget_and_count_it() {
    let stack = Stack::shared();
    let rig = rig(stack, "store", 9102, json!({"limits": {"local_admission_ms": 0}}));
    let _g = rig.envoy.guard();
    // Every request asks the store here (limits.rs tests local admission through an outage).
    // Warm the principal cache: the auth proxy is healthy throughout.
    assert_eq!(rig.call(&rig.key, "store-warm", &[], false).status, 200);
    for (name, fault) in FAULTS {
        let before = rig.envoy.metrics();
        rig.store.set(fault);
        let resp = rig.call(&rig.key, &format!("store-{name}"), &[], false);
        assert_eq!(resp.status, 200, "store {name}: {}", resp.body);
        assert_eq!(resp.header("x-posthog-budget"), Some("unknown"), "store {name}");
        assert_eq!(rig.delta(&before, "limits_unavailable_total"), 1, "store {name}");
        // Keep the fault past a spend flush, so recording meets it too.
        std::thread::sleep(Duration::from_millis(800));
        rig.store.set(Fault::None);
        let resp = rig.call(&rig.key, &format!("store-{name}-after"), &[], false);
        assert_ne!(resp.header("x-posthog-budget"), Some("unknown"), "store {name}: recovered");
    }
    assert!(rig.envoy.metric("llm_gateway.spend_dropped_total") >= 1, "record failures are counted");
    rig.assert_books_balance(stack, true);
}

#[test]
fn posthog_faults_never_reach_the_client_or_the_other_destination() {
    let stack = Stack::shared();
    let rig = rig(stack, "posthog", 9103, json!({}));
    let _g = rig.envoy.guard();
    for (dest, proxy, other) in [("primary", &rig.primary, "secondary"), ("secondary", &rig.mirror, "primary")] {
        for (name, fault) in FAULTS {
            let before = rig.envoy.metrics();
            proxy.set(fault);
            let started = Instant::now();
            for i in 0..2 {
                assert_eq!(rig.call(&rig.key, &format!("{dest}-{name}-{i}"), &[], false).status, 200);
            }
            assert!(started.elapsed() < Duration::from_secs(2), "{dest} {name}: the client waited on capture");
            let count = |n: &str| before.get(&format!("llm_gateway.capture_{n}")).copied().unwrap_or(0);
            if fault == Fault::Garbage {
                // A 2xx is PostHog's acknowledgement, whatever its body says.
                rig.wait_for_metric(&format!("capture_{dest}_sent_total"), count(&format!("{dest}_sent_total")) + 2);
                assert_eq!(rig.delta(&before, &format!("capture_{dest}_failed_total")), 0);
            } else {
                rig.wait_for_metric(
                    &format!("capture_{dest}_failed_total"),
                    count(&format!("{dest}_failed_total")) + 1,
                );
            }
            rig.wait_for_metric(&format!("capture_{other}_sent_total"), count(&format!("{other}_sent_total")) + 2);
            assert_eq!(rig.delta(&before, &format!("capture_{other}_failed_total")), 0, "{dest} {name}");
            proxy.set(Fault::None);
        }
    }
    rig.assert_books_balance(stack, false);
}

#[test]
fn provider_faults_reach_the_client_as_documented_and_are_recorded() {
    let stack = Stack::shared();
    let rig = rig(stack, "provider", 9104, json!({}));
    let _g = rig.envoy.guard();
    let call = |trace: &str, headers: &[(&str, &str)], stream: bool| {
        let before = rig.envoy.metrics();
        (rig.call(&rig.key, trace, headers, stream), before)
    };
    // Slow past providers.openai.timeout_ms (1 s): 504 in OpenAI's format.
    let (resp, before) = call("p-slow", &[("x-mock-delay-ms", "1500")], false);
    assert_eq!((resp.status, resp.json()["error"]["code"].clone()), (504, json!("upstream_timeout")));
    assert_eq!(rig.delta(&before, "upstream_failures_total"), 1);
    assert_eq!(rig.event("p-slow")["$ai_is_error"], true);
    // 5xx and 429 pass through with the provider's body and Retry-After.
    let (resp, before) = call("p-5xx", &[("x-mock-status", "500")], false);
    assert_eq!(resp.status, 500);
    assert!(resp.json()["error"]["message"].as_str().unwrap().contains("injected 500"));
    assert_eq!(rig.delta(&before, "responses_openai_5xx_total"), 1);
    let (resp, before) = call("p-429", &[("x-mock-status", "429")], false);
    assert_eq!((resp.status, resp.header("retry-after")), (429, Some("1")));
    assert_eq!(rig.delta(&before, "responses_openai_4xx_total"), 1);
    assert_eq!(rig.event("p-429")["$ai_http_status"], 429);
    // Reset before a response: 502 in OpenAI's format.
    let (resp, before) = call("p-reset", &[("x-mock-fault", "reset")], false);
    assert_eq!((resp.status, resp.json()["error"]["type"].clone()), (502, json!("server_error")));
    assert_eq!(rig.delta(&before, "upstream_failures_total"), 1);
    // A 200 with invalid JSON, and a wrong content type: passed through, priced at the fallback.
    let (resp, before) = call("p-garbage", &[("x-mock-fault", "invalid-json")], false);
    assert_eq!(resp.status, 200);
    assert!(serde_json::from_str::<Value>(&resp.body).is_err());
    assert_eq!(rig.delta(&before, "usage_missing_total"), 1);
    assert_eq!(rig.delta(&before, "cost_fallback_total"), 1);
    let (resp, before) = call("p-content-type", &[("x-mock-fault", "wrong-content-type")], false);
    assert_eq!(resp.status, 200);
    assert_eq!(rig.delta(&before, "responses_openai_2xx_total"), 1);
    // Streams: malformed SSE passes through; an error event and a reset end the stream
    // as the provider ended it, and the event says so.
    let (resp, _) = call("p-malformed", &[("x-mock-fault", "malformed-sse")], true);
    assert!(resp.status == 200 && resp.body.contains("[DONE]"));
    let (resp, _) = call("p-error-event", &[("x-mock-fault", "error-event")], true);
    assert_eq!(resp.status, 200);
    assert!(resp.body.contains("error"), "{}", resp.body);
    assert_eq!(rig.event("p-error-event")["$ai_is_error"], true);
    let before = rig.envoy.metrics();
    let cut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rig.call(&rig.key, "p-reset-mid", &[("x-mock-fault", "reset-mid-stream")], true)
    }));
    assert!(cut.map_or(true, |r| !r.body.contains("[DONE]")), "a cut stream must not look complete");
    assert_eq!(rig.event("p-reset-mid")["$ai_is_error"], true);
    assert_eq!(rig.delta(&before, "events_queued_total"), 1);
    rig.assert_books_balance(stack, false);
}

#[test]
fn provider_faults_with_a_fallback_chain_fail_over_and_the_books_balance() {
    let stack = Stack::shared();
    let overlay = json!({"failover": {
        "providers": {"openai": [{"provider": "openai"}, {"provider": "anthropic", "model": "claude-sonnet-4-5"}]},
        "first_byte_timeout_ms": 300,
    }});
    let rig = rig(stack, "failover", 9106, overlay);
    let _g = rig.envoy.guard();
    let call = |trace: &str, headers: &[(&str, &str)], stream: bool| {
        let before = rig.envoy.metrics();
        (rig.call(&rig.key, trace, headers, stream), before)
    };
    // 429, 5xx, a reset before the response, a stream slower than its first-byte
    // timeout: Anthropic answers, in OpenAI's format.
    for (trace, fault, stream) in [
        ("f-429", ("x-mock-openai-status", "429"), false),
        ("f-503", ("x-mock-openai-status", "503"), false),
        ("f-reset", ("x-mock-openai-fault", "reset"), false),
        ("f-slow", ("x-mock-openai-delay-ms", "1000"), true),
    ] {
        let (resp, before) = call(trace, &[fault], stream);
        assert_eq!(resp.status, 200, "{trace}: {}", resp.body);
        if !stream {
            assert_eq!(resp.json()["choices"][0]["message"]["content"], "Hello from mock-anthropic.", "{trace}");
        }
        let p = rig.event(trace);
        assert_eq!((p["$ai_provider"].clone(), p["$ai_attempts"].clone()), (json!("anthropic"), json!(2)), "{trace}");
        rig.wait_for_metric("failover_answered_total", 1);
        assert_eq!(rig.delta(&before, "failover_openai_to_anthropic_total"), 1, "{trace}");
    }
    assert_eq!(rig.event("f-slow")["$ai_fallback_attempts"][0]["maybe_billed"], true);
    // Every target failing: the last one's error, in OpenAI's format.
    let (resp, _) = call("f-all", &[("x-mock-openai-status", "503"), ("x-mock-anthropic-status", "529")], false);
    assert_eq!(resp.status, 529);
    let error = &resp.json()["error"];
    assert!(error["message"].as_str().unwrap().contains("injected 529"), "Anthropic's error as OpenAI's: {error}");
    assert_eq!(rig.event("f-all")["$ai_is_error"], true);
    rig.wait_for_metric("failover_exhausted_total", 1);
    // A stream cut after its first bytes: never failed over, recorded as cut.
    let cut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rig.call(&rig.key, "f-cut", &[("x-mock-openai-fault", "reset-mid-stream")], true)
    }));
    assert!(cut.map_or(true, |r| !r.body.contains("[DONE]")), "a cut stream must not look complete");
    let p = rig.event("f-cut");
    assert_eq!((p["$ai_provider"].clone(), p["$ai_attempts"].clone()), (json!("openai"), json!(1)));
    rig.assert_books_balance(stack, false);
}

#[test]
fn client_faults_forward_nothing_or_record_the_disconnect() {
    let stack = Stack::shared();
    let rig = rig(stack, "client", 9105, json!({}));
    let _g = rig.envoy.guard();
    let head = |trace: &str, extra: &str, len: usize| {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nx-api-key: {}\r\nx-test-rig: client\r\nx-posthog-trace-id: {trace}\r\n{extra}content-length: {len}\r\n\r\n",
            rig.key
        )
    };
    // Leaves mid-upload: nothing forwarded, no event.
    let mut s = TcpStream::connect(("127.0.0.1", rig.envoy.port)).unwrap();
    s.write_all(head("c-upload", "", 100_000).as_bytes()).unwrap();
    s.write_all(br#"{"model":"gpt-4o""#).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
    // Leaves mid-stream: the call was made, and its event says the client left.
    let body = chat(true);
    let mut s = TcpStream::connect(("127.0.0.1", rig.envoy.port)).unwrap();
    s.write_all(head("c-stream", "x-mock-chunk-delay-ms: 300\r\n", body.len()).as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut first = [0u8; 64];
    let _ = s.read(&mut first).unwrap();
    drop(s);
    let p = rig.event("c-stream");
    assert_eq!(p["$ai_is_error"], true);
    assert!(p["$ai_error"].as_str().unwrap().contains("client disconnected"), "{p}");
    assert_eq!(rig.calls(stack), 1, "the abandoned upload was not forwarded");
    // The worker still serves.
    assert_eq!(rig.call(&rig.key, "c-after", &[], false).status, 200);
    rig.assert_books_balance(stack, false);
}
