//! Issue 17: prices from the catalog, refreshed at run time through Envoy
//! (good, malformed, partial, changed, server down), the unknown-model policy
//! in all three modes, web-search cost, and prices that follow the answering model.

use std::time::{Duration, Instant};

use llm_gateway_e2e::catalog::CatalogServer;
use llm_gateway_e2e::stack::{repo_root, Envoy, Response, Stack};
use serde_json::{json, Value};

fn close(v: &Value, want: f64) -> bool {
    v.as_f64().is_some_and(|got| (got - want).abs() < 1e-9)
}

/// The built-in catalog with `gpt-4o-mini` at `input`/`output` per 1M tokens.
fn catalog(input: f64, output: f64) -> String {
    let text = std::fs::read_to_string(repo_root().join("src/pricing/catalog.json")).unwrap();
    let mut providers: Value = serde_json::from_str(&text).unwrap();
    let openai = providers.as_array_mut().unwrap().iter_mut().find(|p| p["id"] == "openai").unwrap();
    let model = openai["models"].as_array_mut().unwrap().iter_mut().find(|m| m["id"] == "gpt-4o-mini").unwrap();
    model["prices"] = json!({"input_mtok": input, "output_mtok": output});
    providers.to_string()
}

/// One million tokens in and out: the cost is input + output price.
const MILLION: &str = r#"{"prompt_tokens": 1000000, "completion_tokens": 1000000, "total_tokens": 2000000}"#;

fn chat(envoy: &Envoy, trace: &str, model: &str, usage: &str) -> Response {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let headers = [("x-posthog-trace-id", trace), ("x-mock-usage", usage)];
    llm_gateway_e2e::stack::send(envoy.port, "POST", "/v1/chat/completions", &headers, &body)
}

/// Cost of a gpt-4o-mini call of a million tokens each way on `envoy`.
fn mini_cost(stack: &Stack, envoy: &Envoy, trace: &str) -> f64 {
    let resp = chat(envoy, trace, "gpt-4o-mini", MILLION);
    assert_eq!(resp.status, 200, "{}", resp.body);
    stack.sink.event(trace)["properties"]["$ai_total_cost_usd"].as_f64().unwrap()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_catalog_is_refreshed_at_run_time_and_a_bad_one_is_refused_whole() {
    let stack = Stack::shared();
    let server = CatalogServer::start(&catalog(1.0, 2.0));
    let overlay = json!({"pricing": {"source": {"cluster": "pricing_catalog", "path": "/v2/data_slim.json",
        "refresh_interval_seconds": 1, "timeout_ms": 1000}}});
    let envoy = stack.extra_envoy_with_clusters("pricing-refresh", overlay, 2, &server.cluster("pricing_catalog"));
    let _g = envoy.guard();
    let metric = |name: &str| envoy.metric(&format!("llm_gateway.{name}"));

    // Good: both workers fetch on start and price with it (built in: 0.15 + 0.60).
    wait_for("both workers to load the catalog", Duration::from_secs(10), || metric("pricing_refresh_ok_total") >= 4);
    for i in 0..4 {
        assert!((mini_cost(stack, &envoy, &format!("refresh-good-{i}")) - 3.0).abs() < 1e-9);
    }
    assert_eq!(metric("pricing_refresh_rejected_total"), 0);

    // Malformed, then partial: refused whole and counted; the last good catalog stays.
    let good = catalog(1.0, 2.0);
    for (i, bad) in [&good[..good.len() / 2], r#"[{"id":"openai","models":[]}]"#].into_iter().enumerate() {
        let before = metric("pricing_refresh_rejected_total");
        server.serve(200, bad);
        wait_for("the bad catalog to be refused", Duration::from_secs(10), || {
            metric("pricing_refresh_rejected_total") >= before + 2
        });
        assert!((mini_cost(stack, &envoy, &format!("refresh-bad-{i}")) - 3.0).abs() < 1e-9);
    }

    // Changed: every worker swaps to it.
    server.serve(200, &catalog(2.0, 4.0));
    let mut probe = 0;
    wait_for("the changed catalog", Duration::from_secs(15), || {
        probe += 1;
        mini_cost(stack, &envoy, &format!("refresh-changed-probe-{probe}")) > 5.0
    });
    std::thread::sleep(Duration::from_millis(2500));
    for i in 0..6 {
        assert!((mini_cost(stack, &envoy, &format!("refresh-changed-{i}")) - 6.0).abs() < 1e-9, "call {i}");
    }

    // Server down, then answering 503: counted as failures; prices unchanged.
    for (i, down) in [true, false].into_iter().enumerate() {
        let before = metric("pricing_refresh_failed_total");
        server.set_down(down);
        if !down {
            server.serve(503, "unavailable");
        }
        wait_for("failed fetches", Duration::from_secs(15), || metric("pricing_refresh_failed_total") >= before + 2);
        assert!((mini_cost(stack, &envoy, &format!("refresh-down-{i}")) - 6.0).abs() < 1e-9);
    }
    assert!(server.fetches() >= 8);
    assert!(envoy.log_text().contains("pricing: catalog refused"));
}

#[test]
fn unknown_models_are_priced_by_family_by_default() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let before = stack.envoy.metric("llm_gateway.cost_fallback_opus_total");
    let body = json!({"model": "claude-opus-99", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let usage = r#"{"input_tokens": 1000000, "output_tokens": 1000000}"#;
    let headers = [("x-posthog-trace-id", "policy-family"), ("x-mock-usage", usage)];
    let resp = stack.post("/v1/messages", &headers, &body.to_string());
    assert_eq!(resp.status, 200, "{}", resp.body);
    let p = stack.sink.event("policy-family")["properties"].clone();
    assert_eq!(p["$ai_cost_fallback"], "family");
    // The most expensive Opus in the catalog: $15 in, $75 out per 1M.
    assert!(close(&p["$ai_total_cost_usd"], 90.0), "{p}");
    assert!(p["$ai_cost_model"].as_str().unwrap().contains("opus"));
    assert!(stack.envoy.metric("llm_gateway.cost_fallback_opus_total") > before);
    assert!(stack.envoy.metric("llm_gateway.cost_fallback_family_total") >= 1);
}

#[test]
fn unknown_models_cost_the_flat_fallback_when_configured() {
    let stack = Stack::shared();
    let overlay = json!({"pricing": {"unknown_model": "fallback"}, "default_fallback_cost_usd": 0.25});
    let envoy = stack.extra_envoy("pricing-fallback", overlay, 1);
    let _g = envoy.guard();
    let resp = chat(&envoy, "policy-fallback", "gpt-99-turbo", MILLION);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let p = stack.sink.event("policy-fallback")["properties"].clone();
    assert_eq!(p["$ai_cost_fallback"], "flat");
    assert!(close(&p["$ai_total_cost_usd"], 0.25), "{p}");
    assert_eq!(envoy.metric("llm_gateway.cost_fallback_gpt_total"), 1);
    assert_eq!(envoy.metric("llm_gateway.cost_fallback_total"), 1);
}

#[test]
fn unknown_models_are_refused_before_the_provider_when_configured() {
    let stack = Stack::shared();
    let envoy = stack.extra_envoy("pricing-reject", json!({"pricing": {"unknown_model": "reject"}}), 1);
    let _g = envoy.guard();
    let body = json!({"model": "claude-opus-99", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let headers = [("x-test-marker", "policy-reject")];
    let resp = llm_gateway_e2e::stack::send(envoy.port, "POST", "/v1/messages", &headers, &body.to_string());
    assert_eq!(resp.status, 400, "{}", resp.body);
    let e = resp.json();
    assert_eq!(e["type"], "error", "Anthropic's error shape on /v1/messages");
    assert_eq!(e["error"]["code"], "model_not_priced");
    assert!(e["error"]["message"].as_str().unwrap().contains("claude-opus-99"));
    assert!(
        !stack.mock.requests().iter().any(|r| r.header("x-test-marker") == Some("policy-reject")),
        "the provider was never called"
    );
    assert_eq!(envoy.metric("llm_gateway.unpriced_model_rejected_total"), 1);
    // A priced model still goes through, its dated snapshot too.
    let resp = chat(&envoy, "policy-reject-known", "gpt-4o-mini-2024-07-18", MILLION);
    assert_eq!(resp.status, 200, "{}", resp.body);
}

#[test]
fn web_searches_are_counted_and_priced() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let body = json!({"model": "claude-opus-5-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let usage = r#"{"input_tokens": 1000, "output_tokens": 100, "server_tool_use": {"web_search_requests": 3}}"#;
    for stream in [false, true] {
        let trace = format!("web-search-{stream}");
        let mut body = body.clone();
        body["stream"] = stream.into();
        let headers = [("x-posthog-trace-id", trace.as_str()), ("x-mock-usage", usage)];
        let resp = stack.post("/v1/messages", &headers, &body.to_string());
        assert_eq!(resp.status, 200, "{}", resp.body);
        let p = stack.sink.event(&trace)["properties"].clone();
        assert_eq!(p["$ai_web_search_count"], 3, "{trace}");
        assert!(close(&p["$ai_web_search_cost_usd"], 0.03), "{p}");
        // claude-opus-5-5: $4 in, $20 out per 1M, $10 per 1000 searches.
        assert!(close(&p["$ai_total_cost_usd"], 1000.0 * 4e-6 + 100.0 * 20e-6 + 0.03), "{p}");
    }
}

#[test]
fn prices_follow_the_answering_model() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let headers =
        [("x-posthog-trace-id", "answered-snapshot"), ("x-mock-usage", MILLION), ("x-mock-model", "gpt-4o-2024-05-13")];
    let resp = stack.post("/v1/chat/completions", &headers, &body);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let p = stack.sink.event("answered-snapshot")["properties"].clone();
    assert_eq!(p["$ai_model"], "gpt-4o-2024-05-13");
    assert_eq!(p["$ai_model_requested"], "gpt-4o");
    // That snapshot kept its launch price: $5 in, $15 out (the alias is $2.50 / $10).
    assert!(close(&p["$ai_total_cost_usd"], 20.0), "{p}");
    assert_eq!(p["$ai_cost_model"], "gpt-4o-2024-05-13");
}
