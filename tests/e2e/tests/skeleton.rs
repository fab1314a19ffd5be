//! Issue 2: routes, native providers, credential handling, errors and bad
//! configs, through a real Envoy loading the built filter.

use llm_gateway_e2e::calls::chat;
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

fn messages(model: &str, stream: bool) -> String {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], "stream": stream})
        .to_string()
}

fn responses(model: &str, stream: bool) -> String {
    json!({"model": model, "input": "hi", "stream": stream}).to_string()
}

/// The mock's request carrying this unique marker header.
fn upstream_request(stack: &Stack, marker: &str) -> llm_gateway_e2e::http1::Request {
    let found: Vec<_> =
        stack.mock.requests().into_iter().filter(|r| r.header("x-test-marker") == Some(marker)).collect();
    assert_eq!(found.len(), 1, "expected exactly one upstream request for {marker}");
    found.into_iter().next().unwrap()
}

fn sse_data(body: &str) -> Vec<&str> {
    body.lines().filter_map(|l| l.strip_prefix("data: ")).collect()
}

#[test]
fn every_route_reaches_its_native_provider_json_and_streaming() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let cases = [
        ("/v1/chat/completions", chat("gpt-4o-mini", false), "/v1/chat/completions", "openai"),
        ("/v1/chat/completions", chat("gemini-2.5-flash", false), "/v1beta/openai/chat/completions", "gemini"),
        ("/v1/chat/completions", chat("gemini/gemini-2.5-pro", false), "/v1beta/openai/chat/completions", "gemini"),
        ("/v1/responses", responses("gpt-5", false), "/v1/responses", "openai"),
        ("/v1/messages", messages("claude-sonnet-4-5", false), "/v1/messages", "anthropic"),
    ];
    for prefix in ["", "/array", "/posthog_code"] {
        for (path, body, upstream_path, provider) in &cases {
            for stream in [false, true] {
                let body = if stream { body.replace("\"stream\":false", "\"stream\":true") } else { body.clone() };
                let marker = format!("{prefix}{path}-{provider}-{stream}-{}", body.len());
                let resp = stack.post(&format!("{prefix}{path}"), &[("x-test-marker", &marker)], &body);
                assert_eq!(resp.status, 200, "{marker}: {}", resp.body);
                let seen = upstream_request(stack, &marker);
                assert_eq!(seen.route(), *upstream_path, "{marker}");
                // As sent or rewritten (a stream asks for usage), the body goes with its length, not chunked.
                let length = seen.body.len().to_string();
                assert_eq!(seen.header("content-length"), Some(length.as_str()), "{marker}");
                assert_eq!(seen.header("transfer-encoding"), None, "{marker}");
                let sent: Value = serde_json::from_slice(&seen.body).unwrap();
                let model = sent["model"].as_str().unwrap();
                assert!(!model.starts_with("gemini/"), "provider prefix must be stripped: {model}");
                if stream {
                    assert_eq!(resp.header("content-type"), Some("text/event-stream"), "{marker}");
                    let events = sse_data(&resp.body);
                    assert!(events.len() >= 3, "{marker}: {}", resp.body);
                    // The answer arrives in pieces ("Hello", " from", " mock-…"): reassembled, it is whole.
                    let text: String = events
                        .iter()
                        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
                        .filter_map(|e| {
                            let piece = match *path {
                                "/v1/chat/completions" => &e["choices"][0]["delta"]["content"],
                                "/v1/responses" if e["type"] == "response.output_text.delta" => &e["delta"],
                                "/v1/messages" if e["type"] == "content_block_delta" => &e["delta"]["text"],
                                _ => &Value::Null,
                            };
                            piece.as_str().map(str::to_owned)
                        })
                        .collect();
                    assert_eq!(text, format!("Hello from mock-{provider}."), "{marker}");
                } else {
                    let v = resp.json();
                    assert_eq!(v["model"], model, "{marker}");
                }
            }
        }
    }
}

#[test]
fn client_credentials_never_reach_the_provider_and_the_gateway_key_does() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let client_headers = [
        ("authorization", "Bearer phx_e2e_default_test_key_0001"),
        ("x-api-key", "phx_e2e_default_test_key_0001"),
        ("x-goog-api-key", "client-goog"),
        ("api-key", "client-azure"),
        ("cookie", "session=abc"),
        ("x-llm-gateway-cluster", "webdis"),
    ];
    for (i, (path, body, auth_header, expected)) in [
        ("/v1/chat/completions", chat("gpt-4o", false), "authorization", format!("Bearer {OPENAI_KEY}")),
        ("/v1/chat/completions", chat("gemini-2.5-flash", false), "authorization", format!("Bearer {GEMINI_KEY}")),
        ("/v1/messages", messages("claude-haiku-4-5", false), "x-api-key", ANTHROPIC_KEY.to_string()),
    ]
    .into_iter()
    .enumerate()
    {
        let marker = format!("creds-{i}");
        let mut headers = client_headers.to_vec();
        headers.push(("x-test-marker", &marker));
        let resp = stack.post(path, &headers, &body);
        assert_eq!(resp.status, 200, "{}", resp.body);
        let seen = upstream_request(stack, &marker);
        assert_eq!(seen.header(auth_header), Some(expected.as_str()));
        for (name, value) in &client_headers[..5] {
            assert!(seen.headers.iter().all(|(_, v)| !v.contains(value)), "client {name} leaked upstream");
        }
        for name in ["x-goog-api-key", "api-key", "cookie"] {
            assert_eq!(seen.header(name), None, "{name} reached the provider");
        }
        if path == "/v1/messages" {
            assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
            assert_eq!(seen.header("authorization"), None);
        } else {
            assert_eq!(seen.header("x-api-key"), None);
        }
    }
}

#[test]
fn client_anthropic_version_is_kept() {
    let stack = Stack::shared();
    let marker = "anthropic-version-kept";
    let headers = [("anthropic-version", "2023-01-01"), ("x-test-marker", marker)];
    let resp = stack.post("/v1/messages", &headers, &messages("claude-haiku-4-5", false));
    assert_eq!(resp.status, 200);
    assert_eq!(upstream_request(stack, marker).header("anthropic-version"), Some("2023-01-01"));
}

fn assert_openai_error(resp: &Response, status: u16, needle: &str) {
    assert_eq!(resp.status, status, "{}", resp.body);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    let msg = v["error"]["message"].as_str().unwrap_or_else(|| panic!("no error.message: {}", resp.body));
    assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    for key in ["type", "param", "code"] {
        assert!(v["error"].get(key).is_some(), "error.{key} missing");
    }
}

#[test]
fn gateway_errors_use_the_api_error_format() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("POST", "/v1/nothing", "{}".into(), 404, "No route"),
        ("POST", "/unknown/v1/chat/completions", chat("gpt-4o", false), 404, "llm_gateway, array, wizard"),
        ("GET", "/v1/chat/completions", String::new(), 405, "use POST"),
        ("POST", "/v1/chat/completions", String::new(), 400, "empty"),
        ("POST", "/v1/chat/completions", "{not json".into(), 400, "Invalid JSON"),
        ("POST", "/v1/chat/completions", "[]".into(), 400, "Invalid JSON"),
        ("POST", "/v1/chat/completions", r#"{"messages":[]}"#.into(), 400, "'model'"),
        ("POST", "/v1/chat/completions", r#"{"model":7,"messages":[]}"#.into(), 400, "'model'"),
        ("POST", "/v1/chat/completions", r#"{"model":"gpt-4o","messages":[],"stream":1}"#.into(), 400, "'stream'"),
        ("POST", "/v1/chat/completions", chat("llama-3-70b", false), 400, "Unknown model"),
        // A provider prefix with no model after it names no model (never an empty one upstream).
        ("POST", "/v1/chat/completions", chat("gemini/", false), 400, "Unknown model"),
        (
            "POST",
            "/v1/responses",
            json!({"model": "claude-sonnet-4-5", "input": "hi", "previous_response_id": "resp_1"}).to_string(),
            400,
            "'previous_response_id' is not supported",
        ),
        ("POST", "/v1/chat/completions", r#"{"model":"claude-sonnet-4-5","messages":[],"n":3}"#.into(), 400, "n"),
    ];
    let before = stack.mock.requests().len();
    for (method, path, body, status, needle) in cases {
        let resp = stack.request(method, path, &[], &body);
        assert_openai_error(&resp, status, needle);
        if status == 405 {
            assert_eq!(resp.header("allow"), Some("POST"));
        }
    }
    assert_eq!(stack.mock.requests().len(), before, "rejected requests must not reach the provider");
}

#[test]
fn messages_route_errors_parse_as_anthropic_errors_too() {
    let stack = Stack::shared();
    let resp = stack.post("/v1/messages", &[], &messages("llama-3", false));
    assert_openai_error(&resp, 400, "Unknown model");
    let v = resp.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let resp = stack.post("/nope/v1/messages", &[], &messages("claude-haiku-4-5", false));
    assert_eq!(resp.json()["error"]["type"], "not_found_error");
}

#[test]
fn body_over_the_limit_is_413() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let body = |model: &str, n: usize| {
        format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"{}"}}]}}"#, "a".repeat(n))
    };
    // The test config caps bodies at 1 MiB (the filter's limit); Envoy's buffer limit is 2 MiB.
    let (status, text) = post_reading_early(stack.envoy.port, "/v1/chat/completions", body("gpt-4o", 1_100_000));
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("limit of 1048576 bytes"), "{text}");
    // Over Envoy's own limit too: still an API error, in the route's format.
    let (status, text) = post_reading_early(stack.envoy.port, "/v1/messages", body("claude-haiku-4-5", 3_000_000));
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("request_too_large"), "{text}");
    // Just under the limit passes.
    assert_eq!(stack.post("/v1/chat/completions", &[], &body("gpt-4o", 1_000_000)).status, 200);
}

#[test]
fn provider_errors_pass_through_untouched() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let resp = stack.post("/v1/chat/completions", &[("x-mock-status", "429")], &chat("gpt-4o", false));
    assert_eq!(resp.status, 429);
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert!(resp.json()["error"]["message"].is_string());
    let resp = stack.post("/v1/messages", &[("x-mock-status", "529")], &messages("claude-haiku-4-5", false));
    assert_eq!(resp.status, 529);
    assert_eq!(resp.json()["error"]["type"], "overloaded_error");
}

#[test]
fn upstream_reset_is_502_and_timeout_is_504() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let resp = stack.post("/v1/chat/completions", &[("x-mock-fault", "reset")], &chat("gpt-4o", false));
    assert_openai_error(&resp, 502, "could not be reached");
    let resp = stack.post("/v1/messages", &[("x-mock-fault", "reset")], &messages("claude-haiku-4-5", false));
    assert_eq!(resp.status, 502);
    assert_eq!(resp.json()["type"], "error");

    // A provider slower than its configured timeout.
    let envoy = stack.extra_envoy("timeout", json!({"providers": {"openai": {"timeout_ms": 200}}}), 1);
    let resp = send(envoy.port, "POST", "/v1/chat/completions", &[("x-mock-delay-ms", "1500")], &chat("gpt-4o", false));
    assert_eq!(resp.status, 504, "{}", resp.body);
    assert_eq!(resp.json()["error"]["code"], "upstream_timeout");
}

#[test]
fn unreachable_provider_is_502() {
    let stack = Stack::shared();
    let dir = stack.dir.join("unreachable");
    std::fs::create_dir_all(&dir).unwrap();
    // Nothing listens on the mock port of this Envoy.
    let dead = DeadPort::new();
    let ports = Ports { mock: dead.port(), ..stack.ports() };
    let envoy = Envoy::start_with(&dir, &test_plugin_config(), ports, 1);
    let resp = send(envoy.port, "POST", "/v1/chat/completions", &[], &chat("gpt-4o", false));
    assert_eq!(resp.status, 502, "{}", envoy.log_text());
    assert_eq!(resp.json()["error"]["type"], "server_error");
    assert_eq!(envoy.metric("llm_gateway.upstream_failures_total"), 1);
}

#[test]
fn bad_configs_stop_the_plugin_with_one_line_naming_the_field() {
    let stack = Stack::shared();
    let cases = [
        (json!({"prodcts": ["a"]}), "unknown field `prodcts`"),
        (json!({"products": []}), "products: must name at least one product"),
        (json!({"providers": {"mistral": {}}}), "providers.mistral: unknown provider"),
        (json!({"providers": {"openai": {"timeout_ms": 0}}}), "providers.openai.timeout_ms"),
        (json!({"models": {"x": {"provider": "mistral"}}}), "models.x.provider"),
    ];
    for (i, (overlay, needle)) in cases.into_iter().enumerate() {
        let dir = stack.dir.join(format!("badconfig-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = test_plugin_config();
        merge(&mut config, overlay);
        let log = match Envoy::try_start(&dir, &config, stack.ports(), 1) {
            Err(log) => log,
            Ok(_) => panic!("envoy started with a bad config ({needle})"),
        };
        assert!(log.contains(needle), "log should name {needle:?}:\n{log}");
        assert!(log.contains("Failed to configure base Wasm plugin") || log.contains("Unable to create Wasm plugin"));
    }
}

#[test]
fn model_table_aliases_rewrite_the_model() {
    let stack = Stack::shared();
    let overlay = json!({"models": {"fast": {"provider": "anthropic", "model": "claude-haiku-4-5"}}});
    let envoy = stack.extra_envoy("aliases", overlay, 1);
    let resp = send(envoy.port, "POST", "/v1/messages", &[], &messages("fast", false));
    assert_eq!(resp.json()["model"], "claude-haiku-4-5");
}

/// Upstream requests carry only what the provider should see (README "What
/// reaches a provider"): never the routing header or Envoy's own headers; each
/// API family's headers only to that family, never across a translation.
#[test]
fn providers_see_only_their_own_api_familys_headers() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let client = [
        ("anthropic-version", "2023-01-01"),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
        ("openai-organization", "org-client"),
        ("openai-beta", "assistants=v2"),
        ("x-goog-user-project", "someone-elses-project"),
        ("x-amz-security-token", "client-aws-token"),
        ("x-envoy-retry-on", "5xx"),
        ("x-envoy-max-retries", "3"),
        ("x-stainless-lang", "python"),
    ];
    let bedrock = [("x-posthog-provider", "bedrock")];
    // (path, body, extra headers, family headers the provider gets)
    type Case<'a> = (&'a str, String, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 7] = [
        ("/v1/chat/completions", chat("gpt-4o", true), &[], &["openai-organization", "openai-beta"]),
        ("/v1/responses", responses("gpt-4o", false), &[], &["openai-organization", "openai-beta"]),
        ("/v1/chat/completions", chat("gemini-2.5-flash", false), &[], &[]),
        ("/v1/chat/completions", chat("claude-haiku-4-5", false), &[], &[]),
        ("/v1/messages", messages("claude-haiku-4-5", true), &[], &["anthropic-version", "anthropic-beta"]),
        ("/v1/messages", messages("gpt-4o", false), &[], &[]),
        ("/v1/messages", messages("claude-haiku-4-5", false), &bedrock, &[]),
    ];
    for (i, (path, body, extra, family)) in cases.iter().enumerate() {
        let marker = format!("family-{i}");
        let mut headers = client.to_vec();
        headers.extend_from_slice(extra);
        headers.push(("x-test-marker", &marker));
        let resp = stack.post(path, &headers, body);
        assert_eq!(resp.status, 200, "{marker}: {}", resp.body);
        let seen = upstream_request(stack, &marker);
        let names: Vec<&str> = seen.headers.iter().map(|(k, _)| k.as_str()).collect();
        for (name, value) in &client {
            if i == 3 && *name == "anthropic-version" {
                continue; // the gateway's own, below
            }
            let forwarded = family.contains(name) || *name == "x-stainless-lang";
            assert_eq!(seen.header(name), forwarded.then_some(*value), "{marker} {path}: {name} in {names:?}");
        }
        assert!(
            !names.iter().any(|n| *n == "x-llm-gateway-cluster" || n.starts_with("x-envoy-")),
            "{marker}: {names:?}"
        );
        assert!(!names.iter().any(|n| n.starts_with("x-posthog-")), "{marker}: {names:?}");
        // Anthropic always gets a version: the client's on the Messages API, the gateway's default otherwise.
        if i == 3 {
            assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"), "{marker}");
        }
    }
    // Retries were not turned on by the client's x-envoy-* headers: one request per call.
    let resp = stack.post(
        "/v1/chat/completions",
        &[
            ("x-envoy-retry-on", "5xx"),
            ("x-envoy-max-retries", "3"),
            ("x-mock-status", "503"),
            ("x-test-marker", "no-retry"),
        ],
        &chat("gpt-4o", false),
    );
    assert_eq!(resp.status, 503);
    upstream_request(stack, "no-retry");
}
