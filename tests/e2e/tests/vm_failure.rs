//! Issue 9: a trap in the filter (forced with the test-only fault-injection
//! build) under the documented `failure_policy: FAIL_RELOAD`: what clients see,
//! and that the VM recovers without restarting Envoy; and hostcalls Envoy
//! refuses, which must not trap it at all.

use std::time::{Duration, Instant};

use llm_gateway_e2e::calls;
use llm_gateway_e2e::stack::*;
use serde_json::json;

/// An Envoy of its own (one worker) loading the fault-injection build.
fn fault_envoy(stack: &Stack, name: &str) -> Envoy {
    let wasm = repo_root().join("target/wasm32-wasip1/fault/llm_gateway.wasm");
    assert!(wasm.exists(), "build it first: make test builds {}", wasm.display());
    let dir = stack.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    Envoy::try_start_with_wasm(&dir, &test_plugin_config(), stack.ports(), 1, &wasm).unwrap()
}

#[test]
fn a_trapped_vm_is_reloaded_and_serves_again() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy = fault_envoy(stack, "vm-failure");
    let body = calls::chat("gpt-4o", false);
    let call = |headers: &[(&str, &str)]| send(envoy.port, "POST", "/v1/chat/completions", headers, &body);
    assert_eq!(call(&[]).status, 200);

    let trapped = call(&[("x-llm-gateway-test-fault", "trap")]);
    println!("trapped request: {} {}", trapped.status, trapped.body);
    assert!(trapped.status >= 500, "the trapping request fails: {} {}", trapped.status, trapped.body);

    // FAIL_RELOAD: a fresh VM serves later requests (after the reload backoff).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = call(&[]);
        if r.status == 200 {
            assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from mock-openai.");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {} {}", r.status, r.body);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(envoy.stat("wasm.llm_gateway.vm_reload_success") >= 1, "{}", envoy.log_text());
}

/// The SDK's hostcall wrappers panic on statuses they do not expect, and Envoy
/// answers `BadArgument` when a header map or body is used after its phase has
/// continued. The fault build's `wrong-phase` makes such calls: request headers
/// and body read and written in the response phase, the response's in the log
/// phase. Each is refused, logged and counted; the call and its event go on,
/// and the VM keeps serving.
#[test]
fn hostcalls_envoy_refuses_neither_trap_the_vm_nor_lose_the_call() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy = fault_envoy(stack, "vm-wrong-phase");
    let body = calls::chat("gpt-4o", false);
    for i in 0..3 {
        let trace = format!("wrong-phase-{i}");
        let headers = [("x-llm-gateway-test-fault", "wrong-phase"), ("x-posthog-trace-id", trace.as_str())];
        let r = send(envoy.port, "POST", "/v1/chat/completions", &headers, &body);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from mock-openai.");
        assert!(r.header("x-late").is_none(), "the refused header write did not happen");
        let event = stack.sink.event(&trace);
        assert_eq!(event["event"], "$ai_generation", "{event}");
        assert_eq!(event["properties"]["$ai_output_tokens"], 10, "{event}");
    }
    let r = send(envoy.port, "POST", "/v1/chat/completions", &[], &body);
    assert_eq!(r.status, 200, "the VM still serves: {}", r.body);

    // Two refusals at least per call (the response header and body written in the log phase).
    assert!(envoy.metric("llm_gateway.hostcalls_failed_total") >= 6, "{}", envoy.log_text());
    let log = envoy.log_text();
    assert!(log.contains("hostcall set_map_value(response) failed: BadArgument"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(envoy.stat("wasm.llm_gateway.vm_reload_success"), 0, "{log}");
}

/// A provider's usage past i64 (here 1.5e19 prompt tokens) once wrapped
/// negative in the metric sums; Envoy refuses a counter increment that is not
/// positive, and counting that refusal while the sums were borrowed trapped the
/// VM on the next tick. Counts now saturate, and a refusal during the flush is
/// counted after it.
#[test]
fn absurd_usage_from_a_provider_neither_traps_nor_wraps_the_counters() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy = stack.extra_envoy("absurd-usage", json!({}), 1);
    let usage = json!({"prompt_tokens": 1.5e19, "completion_tokens": 10, "total_tokens": 1.5e19}).to_string();
    let r = send(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[("x-mock-usage", usage.as_str())],
        &calls::chat("gpt-4o", false),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from mock-openai.");
    // metric() waits past the tick that flushes the sums.
    assert_eq!(envoy.metric("llm_gateway.tokens_input_total"), i64::MAX as u64, "{}", envoy.log_text());
    assert_eq!(envoy.metric("llm_gateway.hostcalls_failed_total"), 0, "{}", envoy.log_text());
    let r = send(envoy.port, "POST", "/v1/chat/completions", &[], &calls::chat("gpt-4o", false));
    assert_eq!(r.status, 200, "the VM still serves: {}", r.body);
    assert_eq!(envoy.metric("llm_gateway.tokens_output_total"), 20);
}
