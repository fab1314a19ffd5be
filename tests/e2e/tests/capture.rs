//! Issue 4: usage and cost from every response, `include_usage` done right,
//! and `$ai_generation` events delivered to a primary and a mirror PostHog.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use llm_gateway_e2e::sink::CaptureSink;
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

fn events_where(sink: &CaptureSink, key: &str, value: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<Value> = sink.events().into_iter().filter(|e| e["properties"][key] == value).collect();
        if found.len() >= n {
            assert_eq!(found.len(), n, "expected {n} events with {key}={value}");
            return found;
        }
        assert!(Instant::now() < deadline, "{} of {n} events with {key}={value}", found.len());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_close(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
    assert!((got - want).abs() < 1e-9, "{got} != {want}");
}

struct Case {
    path: &'static str,
    model: &'static str,
    provider: &'static str,
    usage: Value,
    input: u64,
    output: u64,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
    reasoning: Option<u64>,
    input_cost: f64,
    output_cost: f64,
}

fn cases() -> Vec<Case> {
    vec![
        // gpt-4o: $2.50 in, $1.25 cached in, $10 out per 1M; cached tokens are inside prompt_tokens.
        Case {
            path: "/v1/chat/completions",
            model: "gpt-4o",
            provider: "openai",
            usage: json!({"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
                "prompt_tokens_details": {"cached_tokens": 400}, "completion_tokens_details": {"reasoning_tokens": 50}}),
            input: 1000,
            output: 200,
            cache_read: Some(400),
            cache_creation: None,
            reasoning: Some(50),
            input_cost: 600.0 * 2.5e-6 + 400.0 * 1.25e-6,
            output_cost: 200.0 * 10e-6,
        },
        // gemini-2.5-flash through the OpenAI-compatible endpoint: $0.30 in, $2.50 out.
        Case {
            path: "/v1/chat/completions",
            model: "gemini-2.5-flash",
            provider: "gemini",
            usage: json!({"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140}),
            input: 100,
            output: 40,
            cache_read: None,
            cache_creation: None,
            reasoning: None,
            input_cost: 100.0 * 0.30e-6,
            output_cost: 40.0 * 2.5e-6,
        },
        // gpt-5 on the Responses API: $1.25 in, $10 out.
        Case {
            path: "/v1/responses",
            model: "gpt-5",
            provider: "openai",
            usage: json!({"input_tokens": 37, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 11,
                "output_tokens_details": {"reasoning_tokens": 5}, "total_tokens": 48}),
            input: 37,
            output: 11,
            cache_read: Some(0),
            cache_creation: None,
            reasoning: Some(5),
            input_cost: 37.0 * 1.25e-6,
            output_cost: 11.0 * 10e-6,
        },
        // claude-sonnet-4-5, docs/protocols/anthropic-messages.md's example: input excludes cache; 5m writes at $3.75, 1h at $6.
        Case {
            path: "/v1/messages",
            model: "claude-sonnet-4-5",
            provider: "anthropic",
            usage: json!({"input_tokens": 2048, "cache_read_input_tokens": 1800, "cache_creation_input_tokens": 248,
                "output_tokens": 503, "cache_creation": {"ephemeral_5m_input_tokens": 148, "ephemeral_1h_input_tokens": 100}}),
            input: 2048,
            output: 503,
            cache_read: Some(1800),
            cache_creation: Some(248),
            reasoning: None,
            input_cost: 2048.0 * 3e-6 + 1800.0 * 0.3e-6 + 148.0 * 3.75e-6 + 100.0 * 6e-6,
            output_cost: 503.0 * 15e-6,
        },
    ]
}

fn body_for(path: &str, model: &str, stream: bool) -> String {
    match path {
        "/v1/responses" => json!({"model": model, "input": "hi", "stream": stream}),
        "/v1/messages" => json!({"model": model, "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}),
        _ => json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
    }
    .to_string()
}

#[test]
fn every_provider_and_stream_mode_reports_exact_usage_and_cost() {
    let stack = Stack::shared();
    let _g = stack.guard();
    for case in cases() {
        for stream in [false, true] {
            let trace = format!("usage-{}-{}-{stream}", case.provider, case.path.replace('/', "_"));
            let headers = [("x-posthog-trace-id", trace.as_str()), ("x-mock-usage", &case.usage.to_string())];
            let resp = stack.post(&format!("/array{}", case.path), &headers, &body_for(case.path, case.model, stream));
            assert_eq!(resp.status, 200, "{trace}: {}", resp.body);
            let e = stack.sink.event(&trace);
            let p = &e["properties"];
            assert_eq!(e["event"], "$ai_generation");
            assert_eq!(e["distinct_id"], "owner-1", "{trace}");
            assert_eq!(p["$ai_model"], case.model);
            assert_eq!(p["$ai_provider"], case.provider);
            assert_eq!(p["$ai_product"], "array");
            assert_eq!(p["team_id"], 1);
            assert_eq!(p["$ai_stream"], stream);
            assert_eq!(p["$ai_http_status"], 200);
            assert_eq!(p["$ai_is_error"], false);
            assert_eq!(p["$ai_input_tokens"], case.input, "{trace}");
            assert_eq!(p["$ai_output_tokens"], case.output, "{trace}");
            let optional = [
                ("$ai_cache_read_input_tokens", case.cache_read),
                ("$ai_cache_creation_input_tokens", case.cache_creation),
                ("$ai_reasoning_tokens", case.reasoning),
            ];
            for (key, want) in optional {
                match want {
                    Some(n) => assert_eq!(p[key], n, "{trace} {key}"),
                    None => assert!(p.get(key).is_none(), "{trace}: {key} must be absent when not reported"),
                }
            }
            assert_close(&p["$ai_input_cost_usd"], case.input_cost);
            assert_close(&p["$ai_output_cost_usd"], case.output_cost);
            assert_close(&p["$ai_total_cost_usd"], case.input_cost + case.output_cost);
            assert_eq!(p["$groups"], json!({"instance": "https://us.posthog.com", "project": "1"}));
            assert_eq!(p["$group_1"], "https://us.posthog.com");
            assert!(p["$ai_latency"].as_f64().unwrap() >= 0.0);
            assert_eq!(p.get("$ai_time_to_first_token").is_some(), stream, "{trace}");
            assert!(p["$ai_output_choices"].to_string().contains("Hello"), "{trace}");
            assert!(p["$ai_input"].to_string().contains("hi"), "{trace}");
        }
    }
}

fn mock_direct(stack: &Stack, body: &str) -> String {
    let url = format!("http://127.0.0.1:{}/v1/chat/completions", stack.mock.port());
    ureq::post(&url)
        .set("authorization", &format!("Bearer {OPENAI_KEY}"))
        .send_string(body)
        .unwrap()
        .into_string()
        .unwrap()
}

#[test]
fn injected_usage_chunk_is_stripped_byte_for_byte_and_still_counted() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let plain =
        json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let trace = "include-usage-stripped";
    let headers = [("x-posthog-trace-id", trace), ("x-test-marker", trace)];
    let via_gateway = stack.post("/v1/chat/completions", &headers, &plain);
    assert_eq!(via_gateway.body, mock_direct(stack, &plain), "client must see exactly the stream it asked for");
    assert!(!via_gateway.body.contains("usage"));
    let upstream = stack.mock.requests().into_iter().find(|r| r.header("x-test-marker") == Some(trace)).unwrap();
    let sent: Value = serde_json::from_slice(&upstream.body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true, "the gateway asked for usage");
    let p = stack.sink.event(trace)["properties"].clone();
    assert_eq!(p["$ai_input_tokens"], 19);
    assert_eq!(p["$ai_output_tokens"], 10);

    // A client that asked for usage gets the usage chunk, untouched.
    let asked = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let resp = stack.post("/v1/chat/completions", &[("x-posthog-trace-id", "include-usage-kept")], &asked);
    assert_eq!(resp.body, mock_direct(stack, &asked));
    assert!(resp.body.contains("\"prompt_tokens\":19"));
    assert_eq!(stack.sink.event("include-usage-kept")["properties"]["$ai_input_tokens"], 19);
}

#[test]
fn mirror_gets_identical_events_with_the_same_uuid() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let trace = "mirror-identical";
    let resp = stack.post(
        "/v1/messages",
        &[("x-posthog-trace-id", trace)],
        &body_for("/v1/messages", "claude-haiku-4-5", true),
    );
    assert_eq!(resp.status, 200);
    let primary = stack.sink.event(trace);
    let mirror = stack.sink2.event(trace);
    assert_eq!(primary, mirror);
    let batch_of = |sink: &CaptureSink| {
        sink.batches().into_iter().find(|b| b.events.iter().any(|e| e["properties"]["$ai_trace_id"] == trace)).unwrap()
    };
    let (b1, b2) = (batch_of(&stack.sink), batch_of(&stack.sink2));
    assert_eq!((b1.path.as_str(), b1.api_key.as_str()), ("/i/v0/ai/batch/", "phc_primary_test"));
    assert_eq!((b2.path.as_str(), b2.api_key.as_str()), ("/batch/", "phc_mirror_test"));
}

#[test]
fn client_properties_merge_but_never_override_gateway_keys() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let before = stack.envoy.metric("llm_gateway.header_properties_rejected_total");
    let trace = "reserved-keys";
    let headers = [
        ("x-posthog-trace-id", trace),
        ("x-posthog-property-$ai_total_cost_usd", "0"),
        ("x-posthog-property-team_id", "999"),
        ("x-posthog-property-distinct_id", "attacker"),
        ("x-posthog-property-$groups", "{}"),
        ("X-PostHog-Property-Feature", "checkout\tx"),
    ];
    let resp = stack.post("/v1/chat/completions", &headers, &body_for("/v1/chat/completions", "gpt-4o", false));
    assert_eq!(resp.status, 200);
    let e = stack.sink.event(trace);
    let p = &e["properties"];
    assert_eq!(p["team_id"], 1);
    assert_eq!(e["distinct_id"], "owner-1");
    assert!(p["$ai_total_cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(p["$groups"]["project"], "1");
    assert_eq!(p["feature"], "checkoutx", "control characters are stripped");
    assert!(stack.envoy.metric("llm_gateway.header_properties_rejected_total") >= before + 4);
    let upstream = stack.mock.requests().into_iter().rev().find(|r| r.header("x-posthog-trace-id").is_some());
    assert!(upstream.is_none(), "gateway headers are not forwarded to providers");
}

#[test]
fn attribution_sources_and_trace_ids() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let chat = |extra: Value| {
        let mut b = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b.to_string()
    };
    let cases = [
        ("attr-user", chat(json!({"user": "end-user-1"})), None, "end-user-1"),
        ("attr-safety", chat(json!({"user": "u", "safety_identifier": "safe-1"})), None, "safe-1"),
        ("attr-header", chat(json!({})), Some("hdr-user-9"), "hdr-user-9"),
        ("attr-owner", chat(json!({})), None, "owner-1"),
        ("attr-bad-user", chat(json!({"user": "has spaces"})), None, "owner-1"),
    ];
    for (trace, body, header, want) in cases {
        let mut headers = vec![("x-posthog-trace-id", trace)];
        if let Some(h) = header {
            headers.push(("x-posthog-distinct-id", h));
        }
        assert_eq!(stack.post("/v1/chat/completions", &headers, &body).status, 200);
        assert_eq!(stack.sink.event(trace)["distinct_id"], want, "{trace}");
    }
    // Anthropic metadata.user_id names the end user and, as the reference gateway does, the trace (UUIDv5).
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 5, "metadata": {"user_id": "anthropic-user-42"},
        "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(stack.post("/v1/messages", &[], &body.to_string()).status, 200);
    let e = stack.sink.event("a47140d3-9e4f-5a85-98b6-f742cf277aab");
    assert_eq!(e["distinct_id"], "anthropic-user-42");
    // Without any id, each call gets a fresh UUIDv4 trace.
    let marker = "attr-fresh-trace";
    assert_eq!(
        stack.post("/v1/chat/completions", &[("x-posthog-property-marker", marker)], &chat(json!({}))).status,
        200
    );
    let e = events_where(&stack.sink, "marker", marker, 1).remove(0);
    let trace = e["properties"]["$ai_trace_id"].as_str().unwrap();
    assert_eq!(trace.len(), 36);
    assert_eq!(&trace[14..15], "4");
}

#[test]
fn interrupted_and_failed_calls_still_produce_an_event() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let messages = body_for("/v1/messages", "claude-haiku-4-5", true);
    // Provider resets mid-stream: the input usage from message_start is kept.
    let trace = "interrupted-reset";
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        stack.post("/v1/messages", &[("x-posthog-trace-id", trace), ("x-mock-fault", "reset-mid-stream")], &messages)
    }));
    let p = stack.sink.event(trace)["properties"].clone();
    assert_eq!(p["$ai_is_error"], true);
    assert_eq!(p["$ai_input_tokens"], 25);
    assert!(p["$ai_error"].as_str().unwrap().contains("did not complete"), "{p}");

    // A reset before any response: Envoy's 502, a whole reply, so an error by its status.
    let trace = "failed-reset-502";
    let resp = stack.post("/v1/messages", &[("x-posthog-trace-id", trace), ("x-mock-fault", "reset")], &messages);
    assert_eq!(resp.status, 502);
    let p = stack.sink.event(trace)["properties"].clone();
    assert_eq!((p["$ai_is_error"].clone(), p["$ai_http_status"].clone()), (json!(true), json!(502)));
    assert_eq!(p["$ai_error"], "HTTP 502", "{p}");

    // An error event mid-stream.
    let trace = "interrupted-error-event";
    stack.post("/v1/messages", &[("x-posthog-trace-id", trace), ("x-mock-fault", "error-event")], &messages);
    let p = stack.sink.event(trace)["properties"].clone();
    assert_eq!(p["$ai_is_error"], true);
    assert!(p["$ai_error"].as_str().unwrap().contains("Overloaded"), "{p}");

    // A provider error status.
    let trace = "failed-429";
    let resp = stack.post(
        "/v1/chat/completions",
        &[("x-posthog-trace-id", trace), ("x-mock-status", "429")],
        &body_for("/v1/chat/completions", "gpt-4o", false),
    );
    assert_eq!(resp.status, 429);
    let p = stack.sink.event(trace)["properties"].clone();
    assert_eq!((p["$ai_http_status"].clone(), p["$ai_is_error"].clone()), (json!(429), json!(true)));
    assert!(p.get("$ai_total_cost_usd").is_none(), "a failed call without usage costs nothing");

    // The client goes away mid-stream.
    let trace = "interrupted-client";
    let body = body_for("/v1/messages", "claude-haiku-4-5", true);
    let mut s = TcpStream::connect(("127.0.0.1", stack.envoy.port)).unwrap();
    let req = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {TEST_KEY}\r\nx-posthog-trace-id: {trace}\r\nx-mock-chunk-delay-ms: 300\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut first = [0u8; 64];
    let _ = s.read(&mut first).unwrap();
    drop(s);
    let p = stack.sink.event(trace)["properties"].clone();
    assert_eq!(p["$ai_is_error"], true);
    assert!(p["$ai_error"].as_str().unwrap().contains("client disconnected"), "{p}");
}

/// An Envoy of its own with its own two sinks, for delivery faults.
fn isolated(stack: &Stack, name: &str, overlay: Value) -> (Envoy, CaptureSink, CaptureSink) {
    let (primary, mirror) = (CaptureSink::start(), CaptureSink::start());
    let dir = stack.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = test_plugin_config();
    merge(&mut config, overlay);
    let ports = Ports { sink: primary.port(), sink2: mirror.port(), ..stack.ports() };
    (Envoy::start_with(&dir, &config, ports, 1), primary, mirror)
}

/// [`isolated`] with one event per batch and up to three batches out.
fn one_event_batches(stack: &Stack, name: &str) -> (Envoy, CaptureSink, CaptureSink) {
    isolated(stack, name, json!({"capture": {"batch_max_events": 1, "max_batches_in_flight": 3}}))
}

/// The `n` events of traces `{prefix}-0`.., each exactly once.
fn each_once(sink: &CaptureSink, prefix: &str, n: usize) {
    let delivered = sink.wait_for_events(n, Duration::from_secs(30));
    assert_eq!(delivered.len(), n, "{} of {n} events delivered", delivered.len());
    for i in 0..n {
        sink.event(&format!("{prefix}-{i}"));
    }
}

fn call(envoy: &Envoy, trace: &str) {
    let body = body_for("/v1/chat/completions", "gpt-4o", false);
    assert_eq!(send(envoy.port, "POST", "/v1/chat/completions", &[("x-posthog-trace-id", trace)], &body).status, 200);
}

#[test]
fn primary_outage_never_delays_the_mirror_and_recovers_without_loss() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let (envoy, primary, mirror) = isolated(stack, "primary-outage", json!({}));
    primary.set_down(true);
    for i in 0..5 {
        call(&envoy, &format!("outage-{i}"));
    }
    let start = Instant::now();
    for i in 0..5 {
        mirror.event(&format!("outage-{i}"));
    }
    assert!(start.elapsed() < Duration::from_secs(2), "mirror delivery waited on the primary");
    assert!(primary.events().is_empty());
    std::thread::sleep(Duration::from_millis(600));
    primary.set_down(false);
    for i in 0..5 {
        primary.event(&format!("outage-{i}"));
    }
    assert!(envoy.metric("llm_gateway.capture_primary_failed_total") >= 1);
    assert!(envoy.metric("llm_gateway.capture_primary_retried_total") >= 1);
    assert_eq!(envoy.metric("llm_gateway.capture_primary_dropped_total"), 0);
    assert_eq!(envoy.metric("llm_gateway.capture_primary_sent_total"), 5);
    assert_eq!(envoy.metric("llm_gateway.capture_secondary_sent_total"), 5);
    assert_eq!(envoy.metric("llm_gateway.capture_secondary_failed_total"), 0);
    assert_eq!(mirror.events().len(), 5, "no duplicates on the mirror");
}

#[test]
fn events_past_the_retry_budget_are_dropped_and_counted() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let (envoy, primary, mirror) = isolated(stack, "primary-drop", json!({"capture": {"max_attempts": 2}}));
    primary.fail_next(100, 503, None);
    for i in 0..3 {
        call(&envoy, &format!("drop-{i}"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while envoy.metric("llm_gateway.capture_primary_dropped_total") < 3 {
        assert!(Instant::now() < deadline, "drops not counted");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The books balance: delivered + dropped = calls, on each destination.
    let sent = envoy.metric("llm_gateway.capture_primary_sent_total");
    assert_eq!(sent + envoy.metric("llm_gateway.capture_primary_dropped_total"), 3);
    assert_eq!(primary.events().len() as u64, sent);
    assert_eq!(mirror.events().len(), 3);
    assert_eq!(envoy.metric("llm_gateway.events_queued_total"), 3);
}

#[test]
fn draining_before_stop_delivers_everything_queued() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let (envoy, primary, mirror) = isolated(stack, "drain", json!({"capture": {"flush_interval_ms": 1000}}));
    for i in 0..4 {
        call(&envoy, &format!("drain-{i}"));
    }
    let admin = format!("http://127.0.0.1:{}/drain_listeners?graceful", envoy.admin_port);
    ureq::post(&admin).call().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    drop(envoy);
    assert_eq!(primary.events().len(), 4);
    assert_eq!(mirror.events().len(), 4);
}

/// Issue 14: a batch is retried for as long as the queue has room, so an
/// outage longer than the old four attempts (here four failures in a row,
/// with `Retry-After: 1` honoured) loses no event and duplicates none.
#[test]
fn a_short_outage_loses_no_event() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let (envoy, primary, mirror) = isolated(stack, "short-outage", json!({}));
    primary.fail_next(4, 503, Some(1));
    for i in 0..3 {
        call(&envoy, &format!("short-outage-{i}"));
    }
    each_once(&primary, "short-outage", 3);
    assert_eq!(envoy.metric("llm_gateway.capture_primary_failed_total"), 4);
    assert_eq!(envoy.metric("llm_gateway.capture_primary_dropped_total"), 0);
    assert_eq!(envoy.metric("llm_gateway.capture_primary_sent_total"), 3);
    assert_eq!(mirror.events().len(), 3);
}

/// A slow PostHog gets several batches at once, never more than
/// `max_batches_in_flight`, and every event exactly once: delivery is not
/// held to one batch per round trip.
#[test]
fn a_slow_posthog_gets_several_batches_at_once() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let (envoy, primary, mirror) = one_event_batches(stack, "slow-posthog");
    primary.set_hold(Duration::from_millis(700));
    for i in 0..7 {
        call(&envoy, &format!("slow-{i}"));
    }
    each_once(&primary, "slow", 7);
    assert_eq!(primary.most_open(), 3, "batches held open at once by the slow sink");
    assert_eq!(primary.batches().len(), 7);
    assert_eq!(envoy.metric("llm_gateway.capture_primary_sent_total"), 7);
    assert_eq!(envoy.metric("llm_gateway.capture_primary_failed_total"), 0);
    assert_eq!(mirror.wait_for_events(7, Duration::from_secs(10)).len(), 7);
}

/// Batches out when PostHog starts failing are retried one at a time, never
/// all at once, and once it recovers every event arrives exactly once.
#[test]
fn a_failing_posthog_is_retried_one_batch_at_a_time() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let (envoy, primary, _mirror) = one_event_batches(stack, "failing-posthog");
    primary.set_hold(Duration::from_millis(200));
    primary.fail_next(1_000, 503, None);
    for i in 0..6 {
        call(&envoy, &format!("failing-{i}"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while primary.attempts() < 3 {
        assert!(Instant::now() < deadline, "no first wave of batches");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first wave's answers are being written; the retries wait at least 500 ms.
    std::thread::sleep(Duration::from_millis(250));
    primary.reset_most_open();
    let first_wave = primary.attempts();
    std::thread::sleep(Duration::from_millis(2_500));
    assert!(primary.attempts() >= first_wave + 2, "retried: {} sends after {first_wave}", primary.attempts());
    assert_eq!(primary.most_open(), 1, "retries to a failing PostHog, one at a time");
    primary.fail_next(0, 503, None);
    each_once(&primary, "failing", 6);
    assert_eq!(envoy.metric("llm_gateway.capture_primary_sent_total"), 6);
    assert_eq!(envoy.metric("llm_gateway.capture_primary_dropped_total"), 0);
}
