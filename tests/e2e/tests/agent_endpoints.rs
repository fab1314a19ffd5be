//! What coding agents and SDKs call besides a completion, through a real
//! Envoy: token counts, model lists, the reachability probe and the
//! WebSocket attempt, each driven by the official SDK's own method where it has one.

use std::process::Command;

use llm_gateway_e2e::stack::*;
use serde_json::Value;

/// Runs Python `code` with the official SDKs against the shared stack; returns its stdout as JSON.
fn sdk(stack: &Stack, code: &str) -> Value {
    let python = repo_root().join(".venv/bin/python");
    let out = Command::new(python)
        .args(["-W", "ignore", "-c", code])
        .env("KEY", TEST_KEY)
        .env("BASE", stack.url(""))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{code}\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn count_tokens_with_the_anthropic_sdk_on_every_provider() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let events_before = stack.sink.events().len();
    let out = sdk(
        stack,
        r#"
import json, os, anthropic
c = anthropic.Anthropic(base_url=os.environ["BASE"], api_key=os.environ["KEY"])
def count(model, **kw):
    r = c.messages.count_tokens(model=model, system="be brief", messages=[{"role": "user", "content": "hello world"}], **kw)
    return r.input_tokens
raw = c.messages.with_raw_response.count_tokens(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello world"}])
print(json.dumps({
    "anthropic": count("claude-sonnet-4-6"),
    "bedrock": count("claude-sonnet-4-6", extra_headers={"x-posthog-provider": "bedrock"}),
    "openai": count("gpt-4o-mini"),
    "gemini": count("gemini-2.5-flash"),
    "estimate_header": raw.headers.get("x-posthog-token-count"),
}))
"#,
    );
    // The mock provider counts 10 + the characters of the texts: "be brief" and "hello world".
    assert_eq!(out["anthropic"], 10 + 8 + 11);
    assert_eq!(out["bedrock"], 10 + 8 + 11);
    // No provider counts for OpenAI or Gemini models: the gateway's estimate, said so in a header.
    assert!(out["openai"].as_u64().unwrap() >= 8, "{out}");
    assert!(out["gemini"].as_u64().unwrap() >= 8, "{out}");
    assert_eq!(out["estimate_header"], "estimated");
    let counts: Vec<_> =
        stack.mock.requests().into_iter().filter(|r| r.path.contains("count")).map(|r| r.path.clone()).collect();
    assert!(counts.iter().any(|p| p == "/v1/messages/count_tokens"), "{counts:?}");
    assert!(counts.iter().any(|p| p.starts_with("/model/") && p.ends_with("/count-tokens")), "{counts:?}");
    assert!(stack.envoy.metric("llm_gateway.count_tokens_total") >= 5);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(stack.sink.events().len(), events_before, "counting is not a billed call");
}

#[test]
fn model_lists_in_both_sdks_shapes() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let out = sdk(
        stack,
        r#"
import json, os, anthropic, openai
o = openai.OpenAI(base_url=os.environ["BASE"] + "/v1", api_key=os.environ["KEY"])
a = anthropic.Anthropic(base_url=os.environ["BASE"], api_key=os.environ["KEY"])
openai_ids = [m.id for m in o.models.list()]
page = a.models.list()
print(json.dumps({"openai": openai_ids, "anthropic": [m.id for m in page.data],
                  "anthropic_types": sorted({m.type for m in page.data}), "has_more": page.has_more}))
"#,
    );
    let openai: Vec<&str> = out["openai"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for id in ["gpt-4o-mini", "claude-sonnet-4-6", "gemini-2.5-flash"] {
        assert!(openai.contains(&id), "{id} missing from {openai:?}");
    }
    assert_eq!(out["anthropic"], out["openai"]);
    assert_eq!(out["anthropic_types"], serde_json::json!(["model"]));
    assert_eq!(out["has_more"], false);
    assert!(stack.mock.requests().iter().all(|r| !r.path.contains("models")), "listed without a provider call");
    let unauthenticated = stack.request("GET", "/v1/models", &[("authorization", "")], "");
    assert_eq!(unauthenticated.status, 401);
}

#[test]
fn the_probe_and_websocket_attempts_are_answered_at_once() {
    let stack = Stack::shared();
    let _g = stack.guard();
    assert_eq!(stack.request("HEAD", "/", &[], "").status, 200);
    let ws = stack.request(
        "GET",
        "/v1/responses",
        &[
            ("authorization", &format!("Bearer {TEST_KEY}")),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("openai-beta", "responses_websockets=2026-02-06"),
        ],
        "",
    );
    assert_eq!(ws.status, 426, "{}", ws.body);
    assert_eq!(ws.json()["error"]["code"], "websocket_not_supported");
    let compact = stack.post("/v1/responses/compact", &[("authorization", &format!("Bearer {TEST_KEY}"))], "{}");
    assert_eq!(compact.status, 404);
    assert_eq!(compact.json()["error"]["code"], "unsupported_endpoint");
}
