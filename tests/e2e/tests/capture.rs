//! Issue 4: usage and cost from every response, `include_usage` done right,
//! and `$ai_generation` events delivered to a primary and a mirror PostHog.

use std::time::Duration;

use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

fn wait_event(sink: &llm_gateway_e2e::sink::CaptureSink, trace: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<Value> =
            sink.events().into_iter().filter(|e| e["properties"]["$ai_trace_id"] == trace).collect();
        if let Some(e) = found.first() {
            assert_eq!(found.len(), 1, "one event per call for {trace}");
            return e.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no event for trace {trace}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn explore() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let usage = json!({"input_tokens": 2048, "cache_read_input_tokens": 1800, "cache_creation_input_tokens": 248, "output_tokens": 503, "cache_creation": {"ephemeral_5m_input_tokens": 148, "ephemeral_1h_input_tokens": 100}});
    let r = stack.post(
        "/posthog_code/v1/messages",
        &[("x-posthog-trace-id", "t-explore"), ("x-mock-usage", &usage.to_string())],
        &body.to_string(),
    );
    assert_eq!(r.status, 200);
    let e = wait_event(&stack.sink, "t-explore");
    println!("{}", serde_json::to_string_pretty(&e).unwrap());
    let body = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = stack.post("/v1/chat/completions", &[("x-posthog-trace-id", "t-explore2")], &body.to_string());
    println!("{}", r.body);
    let e = wait_event(&stack.sink2, "t-explore2");
    println!("{}", serde_json::to_string_pretty(&e).unwrap());
}
