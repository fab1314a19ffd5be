//! Issue 9: a trap in the filter (forced with the test-only fault-injection
//! build) under the documented `failure_policy: FAIL_RELOAD`: what clients see,
//! and that the VM recovers without restarting Envoy.

use std::time::{Duration, Instant};

use llm_gateway_e2e::stack::*;
use serde_json::json;

#[test]
fn a_trapped_vm_is_reloaded_and_serves_again() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let wasm = repo_root().join("target/wasm32-wasip1/fault/llm_gateway.wasm");
    assert!(wasm.exists(), "build it first: make test builds {}", wasm.display());
    let dir = stack.dir.join("vm-failure");
    std::fs::create_dir_all(&dir).unwrap();
    let envoy = Envoy::try_start_with_wasm(&dir, &test_plugin_config(), stack.ports(), 1, &wasm).unwrap();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).to_string();
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
