//! Issue 6: Save Mode's 1-hour cache TTL upgrade, gated per product and team,
//! observed at the provider and in the event.

use llm_gateway_e2e::stack::*;
use serde_json::json;

/// A Messages body with breakpoints on a tool, a system block and a message block.
fn body(marker: &str) -> String {
    format!(
        r#"{{"model":"claude-sonnet-4-6","max_tokens":64,"tools":[{{"name":"t","input_schema":{{"type":"object"}},"cache_control":{{"type":"ephemeral"}}}}],"system":[{{"type":"text","text":"sys {marker}","cache_control":{{"type":"ephemeral"}}}}],"messages":[{{"role":"user","content":[{{"type":"text","text":"hi","cache_control": {{"type": "ephemeral"}}}}]}}]}}"#
    )
}

fn upgraded(marker: &str) -> String {
    body(marker)
        .replace(r#"{"type":"ephemeral"}"#, r#"{"type":"ephemeral","ttl":"1h"}"#)
        .replace(r#"{"type": "ephemeral"}"#, r#"{"type": "ephemeral","ttl":"1h"}"#)
}

fn upstream_body(stack: &Stack, marker: &str) -> String {
    let r = stack.mock.requests().into_iter().find(|r| r.header("x-test-marker") == Some(marker)).unwrap();
    String::from_utf8(r.body).unwrap()
}

fn call(stack: &Stack, key: &str, path: &str, marker: &str, extra: &[(&str, &str)], body: &str) -> u16 {
    let mut headers = vec![("x-api-key", key), ("x-test-marker", marker), ("x-posthog-trace-id", marker)];
    headers.extend_from_slice(extra);
    stack.post(path, &headers, body).status
}

#[test]
fn opted_in_team_on_an_idle_prone_product_gets_one_hour_breakpoints() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let key = "phx_save_mode_opted_in";
    stack.store.put_key(key, &json!({"team_id": 5, "scopes": ["llm_gateway:read"], "cost_controls": true}));
    let m = "save-on";
    assert_eq!(call(stack, key, "/posthog_code/v1/messages", m, &[], &body(m)), 200);
    assert_eq!(upstream_body(stack, m), upgraded(m), "only the three breakpoints gain ttl 1h");
    let p = stack.sink.properties(m);
    assert_eq!(p["$ai_save_mode"], true);
    assert_eq!(p["$ai_save_mode_reason"], "principal");
    assert_eq!(p["$ai_cache_ttl_upgraded_breakpoints"], 3);

    // The same team on a product not configured for cost controls: byte-identical.
    let m = "save-off-product";
    assert_eq!(call(stack, key, "/wizard/v1/messages", m, &[], &body(m)), 200);
    assert_eq!(upstream_body(stack, m), body(m));
    let p = stack.sink.properties(m);
    assert_eq!((p["$ai_save_mode"].clone(), p["$ai_save_mode_reason"].clone()), (json!(false), json!("disabled")));

    // Nothing to upgrade: forwarded as sent.
    let m = "save-nothing";
    let plain = json!({"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    assert_eq!(call(stack, key, "/posthog_code/v1/messages", m, &[], &plain), 200);
    assert_eq!(upstream_body(stack, m), plain);
}

#[test]
fn teams_that_did_not_opt_in_are_untouched_and_the_header_needs_permission() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let key = "phx_save_mode_not_opted";
    stack.store.put_key(key, &json!({"team_id": 6, "scopes": ["llm_gateway:read"]}));
    let m = "save-not-opted";
    let on = [("x-posthog-save-mode", "on")];
    assert_eq!(call(stack, key, "/posthog_code/v1/messages", m, &on, &body(m)), 200);
    assert_eq!(upstream_body(stack, m), body(m), "the header alone is not honoured by default");
    let p = stack.sink.properties(m);
    assert_eq!(p["$ai_save_mode_reason"], "not_opted_in");
    assert_eq!(p["$ai_save_mode_requested"], true);

    // With header access open to teams that did not opt out, the header turns it on.
    let envoy = stack.extra_envoy("save-header", json!({"cost_controls": {"header_access": "unless_opted_out"}}), 1);
    let m = "save-header";
    let headers = [("x-api-key", key), ("x-test-marker", m), ("x-posthog-save-mode", "on")];
    assert_eq!(send(envoy.port, "POST", "/slack_app/v1/messages", &headers, &body(m)).status, 200);
    assert_eq!(upstream_body(stack, m), upgraded(m));
    // A team that opted out is never switched on by the header.
    let out = "phx_save_mode_opted_out";
    stack.store.put_key(out, &json!({"team_id": 7, "scopes": ["llm_gateway:read"], "cost_controls": false}));
    let m = "save-opted-out";
    let headers = [("x-api-key", out), ("x-test-marker", m), ("x-posthog-save-mode", "on")];
    assert_eq!(send(envoy.port, "POST", "/slack_app/v1/messages", &headers, &body(m)).status, 200);
    assert_eq!(upstream_body(stack, m), body(m));
}

#[test]
fn a_short_ttl_before_an_upgradable_breakpoint_leaves_the_request_as_it_was() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let key = "phx_save_mode_order";
    stack.store.put_key(key, &json!({"team_id": 8, "scopes": ["llm_gateway:read"], "cost_controls": true}));
    let m = "save-order";
    let b = body(m).replacen(r#"{"type":"ephemeral"}"#, r#"{"type":"ephemeral","ttl":"5m"}"#, 1);
    assert_eq!(call(stack, key, "/posthog_code/v1/messages", m, &[], &b), 200);
    assert_eq!(upstream_body(stack, m), b);
    let p = stack.sink.properties(m);
    assert_eq!(p["$ai_save_mode"], true);
    assert!(p["$ai_cache_ttl_upgrade_skipped"].as_str().unwrap().contains("5m"), "{p}");
}
