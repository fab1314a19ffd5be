//! Issue 20: provider failover inside Envoy. One Envoy with fallback chains
//! (README "Failover"), every provider on the mock except a Bedrock and a
//! Gemini cluster whose port refuses connections; the mock fails one target of
//! a chain by its scoped directives (`x-mock-<vendor>-status` …). Each test
//! asserts what the client gets, what each provider received, and the event.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use llm_gateway_e2e::calls::chat;
use llm_gateway_e2e::http1::Request;
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

/// Clusters whose port refuses every connection: a provider that is down.
const DOWN: [&str; 2] = ["bedrock_down", "gemini_down"];

struct Rig {
    envoy: Envoy,
    _dead: DeadPort,
}

/// Started by a thread that never exits: Envoy dies with the thread that spawned it.
fn rig() -> &'static Rig {
    static RIG: OnceLock<&'static Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rig: &'static Rig = Box::leak(Box::new(start_rig()));
            tx.send(rig).unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the failover Envoy did not start")
    })
}

fn start_rig() -> Rig {
    {
        let stack = Stack::shared();
        let dead = DeadPort::new();
        let clusters: String = DOWN.iter().map(|name| provider_cluster(name, dead.port())).collect();
        let overlay = json!({
            "providers": {"bedrock": {"cluster": "bedrock_down"}, "gemini": {"cluster": "gemini_down"}},
            "failover": {
                "models": {
                    // Anthropic, then OpenAI: the cross-format chain.
                    "claude-sonnet-4-5": [{"provider": "anthropic"}, {"provider": "openai", "model": "gpt-4o"}],
                    // Bedrock is down: Anthropic answers.
                    "claude-haiku-4-5": [{"provider": "bedrock"}, {"provider": "anthropic"}],
                    // Every target down.
                    "claude-opus-4-1": [{"provider": "bedrock"}, {"provider": "gemini", "model": "gemini-2.5-flash"}],
                },
                // OpenAI models fall back to Anthropic.
                "providers": {"openai": [{"provider": "openai"}, {"provider": "anthropic", "model": "claude-sonnet-4-5"}]},
                "first_byte_timeout_ms": 500,
                "deadline_ms": 2000,
            },
        });
        let envoy = stack.extra_envoy_with_clusters("failover", overlay, 2, &clusters);
        Rig { envoy, _dead: dead }
    }
}

fn post(path: &str, marker: &str, extra: &[(&str, &str)], body: &impl std::fmt::Display) -> Response {
    let mut headers = vec![("x-test-marker", marker), ("x-posthog-trace-id", marker)];
    headers.extend_from_slice(extra);
    send(rig().envoy.port, "POST", path, &headers, &body.to_string())
}

fn messages(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// What the mock received for a test, in order.
fn upstream(marker: &str) -> Vec<Request> {
    Stack::shared().mock.requests().into_iter().filter(|r| r.header("x-test-marker") == Some(marker)).collect()
}

fn named_events(body: &str) -> Vec<String> {
    body.lines().filter_map(|l| l.strip_prefix("event: ")).map(str::to_string).collect()
}

/// The text of an Anthropic event stream's deltas.
fn stream_text(body: &str) -> String {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|d| d["delta"]["text"].as_str().map(str::to_string))
        .collect()
}

fn metric(name: &str) -> u64 {
    rig().envoy.metric(&format!("llm_gateway.{name}"))
}

/// Metrics are counted when the call's event is queued: wait for it first.
fn wait_metric(name: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(name) < at_least {
        assert!(Instant::now() < deadline, "{name} stayed below {at_least}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn primary_down_goes_to_the_next_target() {
    let _g = rig().envoy.guard();
    let before = metric("failover_bedrock_to_anthropic_total");
    let resp = post("/v1/messages", "fo-down", &[], &messages("claude-haiku-4-5", false));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.json()["content"][0]["text"], "Hello from mock-anthropic.");
    assert!(resp.header("x-llm-gateway-target").is_none(), "the target header stays inside");
    let sent = upstream("fo-down");
    assert_eq!(sent.len(), 1, "Bedrock never answered; Anthropic got one request");
    assert_eq!(sent[0].route(), "/v1/messages");
    assert_eq!(sent[0].header("x-api-key"), Some(ANTHROPIC_KEY));
    let p = Stack::shared().sink.properties("fo-down");
    assert_eq!((p["$ai_provider"].clone(), p["$ai_model"].clone()), (json!("anthropic"), json!("claude-haiku-4-5")));
    assert_eq!((p["$ai_attempts"].clone(), p["$ai_fallback"].clone()), (json!(2), json!(true)));
    let failed = &p["$ai_fallback_attempts"];
    assert_eq!(failed[0]["provider"], "bedrock");
    assert_eq!(failed[0]["model"], "global.anthropic.claude-haiku-4-5-20251001-v1:0");
    assert!(failed[0]["http_status"].is_null());
    assert_eq!(failed[0]["error"], "connection failed or reset before a response");
    assert_eq!(p["$ai_is_error"], false);
    wait_metric("failover_bedrock_to_anthropic_total", before + 1);
}

#[test]
fn rate_limited_primary_falls_back_at_once_and_retry_after_is_recorded() {
    let _g = rig().envoy.guard();
    // OpenAI's default chain: gpt-4o, then claude-sonnet-4-5 (a Chat client on Anthropic).
    let resp = post("/v1/chat/completions", "fo-429", &[("x-mock-openai-status", "429")], &chat("gpt-4o", false));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from mock-anthropic.");
    assert!(resp.header("retry-after").is_none(), "the 429 stayed inside");
    let sent = upstream("fo-429");
    assert_eq!(sent.iter().map(|r| r.route()).collect::<Vec<_>>(), ["/v1/chat/completions", "/v1/messages"]);
    // Each attempt carries its own provider's key and only that one.
    assert_eq!(sent[0].header("authorization"), Some(format!("Bearer {OPENAI_KEY}").as_str()));
    assert_eq!(sent[1].header("x-api-key"), Some(ANTHROPIC_KEY));
    assert!(sent[1].header("authorization").is_none(), "OpenAI's key must not reach Anthropic");
    assert_eq!(serde_json::from_slice::<Value>(&sent[1].body).unwrap()["model"], "claude-sonnet-4-5");
    let p = Stack::shared().sink.properties("fo-429");
    assert_eq!(p["$ai_provider"], "anthropic");
    assert_eq!(p["$ai_model"], "claude-sonnet-4-5");
    assert_eq!(p["$ai_model_requested"], "gpt-4o");
    assert_eq!(p["$ai_fallback_attempts"][0]["http_status"], 429);
    assert_eq!(p["$ai_fallback_attempts"][0]["retry_after"], "1");
    assert!(p["$ai_total_cost_usd"].as_f64().unwrap() > 0.0, "priced as the answering model");
}

#[test]
fn overloaded_anthropic_falls_back_to_openai_in_the_clients_format() {
    let _g = rig().envoy.guard();
    let before = metric("failover_anthropic_to_openai_total");
    let overloaded = [("x-mock-anthropic-status", "529")];
    let resp = post("/v1/messages", "fo-529", &overloaded, &messages("claude-sonnet-4-5", false));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"][0]["text"], "Hello from mock-openai.");
    assert!(body["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let sent = upstream("fo-529");
    assert_eq!(sent.iter().map(|r| r.route()).collect::<Vec<_>>(), ["/v1/messages", "/v1/chat/completions"]);
    assert!(sent[1].header("x-api-key").is_none(), "Anthropic's key must not reach OpenAI");
    assert!(sent[1].header("anthropic-version").is_none(), "the gateway's default stays with Anthropic");
    let p = Stack::shared().sink.properties("fo-529");
    assert_eq!((p["$ai_provider"].clone(), p["$ai_model"].clone()), (json!("openai"), json!("gpt-4o")));
    assert_eq!(p["$ai_api_format"], "anthropic_messages");
    assert_eq!(p["$ai_fallback_attempts"][0]["http_status"], 529);
    assert!(p["$ai_input_tokens"].as_u64().unwrap() > 0, "usage read on OpenAI's wire");

    // The same, streaming: an Anthropic event stream built from OpenAI's chunks.
    let resp = post("/v1/messages", "fo-529-stream", &overloaded, &messages("claude-sonnet-4-5", true));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let events = named_events(&resp.body);
    assert_eq!(events.first().map(String::as_str), Some("message_start"), "{}", resp.body);
    assert_eq!(events.last().map(String::as_str), Some("message_stop"));
    assert_eq!(stream_text(&resp.body), "Hello from mock-openai.");
    let p = Stack::shared().sink.properties("fo-529-stream");
    assert_eq!((p["$ai_provider"].clone(), p["$ai_stream"].clone()), (json!("openai"), json!(true)));
    assert!(p["$ai_output_tokens"].as_u64().unwrap() > 0);
    wait_metric("failover_anthropic_to_openai_total", before + 2);
}

#[test]
fn a_stream_slower_than_its_first_byte_timeout_goes_to_the_next_target() {
    let _g = rig().envoy.guard();
    let slow = [("x-mock-anthropic-delay-ms", "3000")];
    let resp = post("/v1/messages", "fo-slow", &slow, &messages("claude-sonnet-4-5", true));
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(stream_text(&resp.body), "Hello from mock-openai.", "{}", resp.body);
    let p = Stack::shared().sink.properties("fo-slow");
    assert_eq!(p["$ai_provider"], "openai");
    let failed = &p["$ai_fallback_attempts"][0];
    assert_eq!(failed["provider"], "anthropic");
    assert_eq!(failed["error"], "no response headers before the attempt timeout");
    // The provider may bill an attempt it was sent: its input is estimated and counted.
    assert_eq!(failed["maybe_billed"], true);
    assert!(p["$ai_fallback_cost_usd"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_stream_cut_mid_way_is_never_failed_over() {
    let _g = rig().envoy.guard();
    let cut = [("x-mock-anthropic-fault", "reset-mid-stream")];
    let result =
        std::panic::catch_unwind(|| post("/v1/messages", "fo-cut", &cut, &messages("claude-sonnet-4-5", true)));
    // The client sees the cut (a read error or a stream without its end), as without failover.
    if let Ok(resp) = result {
        assert!(!resp.body.contains("message_stop"), "{}", resp.body);
        assert!(!stream_text(&resp.body).contains("openai"), "no second provider after bytes reached the client");
    }
    assert_eq!(upstream("fo-cut").len(), 1);
    let p = Stack::shared().sink.properties("fo-cut");
    assert_eq!((p["$ai_provider"].clone(), p["$ai_attempts"].clone()), (json!("anthropic"), json!(1)));
    assert_eq!((p["$ai_fallback"].clone(), p["$ai_is_error"].clone()), (json!(false), json!(true)));
}

#[test]
fn when_every_target_fails_the_client_gets_the_last_error_in_its_format() {
    let _g = rig().envoy.guard();
    let before = metric("failover_exhausted_total");
    let down = [("x-mock-anthropic-status", "503"), ("x-mock-openai-status", "500")];
    let resp = post("/v1/messages", "fo-all", &down, &messages("claude-sonnet-4-5", false));
    assert_eq!(resp.status, 500, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["type"], "error", "OpenAI's error in Anthropic's shape: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("injected 500"));
    assert_eq!(upstream("fo-all").len(), 2);
    let p = Stack::shared().sink.properties("fo-all");
    assert_eq!((p["$ai_provider"].clone(), p["$ai_http_status"].clone()), (json!("openai"), json!(500)));
    assert_eq!(p["$ai_is_error"], true);
    assert_eq!(p["$ai_fallback_attempts"][0]["http_status"], 503);
    wait_metric("failover_exhausted_total", before + 1);

    // Neither target reachable: Envoy's own reply, as the client's 502.
    let resp = post("/v1/chat/completions", "fo-none", &[], &chat("claude-opus-4-1", false));
    assert_eq!(resp.status, 502, "{}", resp.body);
    assert_eq!(resp.json()["error"]["code"], "upstream_unreachable");
    let p = Stack::shared().sink.properties("fo-none");
    assert_eq!((p["$ai_provider"].clone(), p["$ai_attempts"].clone()), (json!("gemini"), json!(2)));
    assert_eq!(p["$ai_fallback_attempts"][0]["provider"], "bedrock");
}

#[test]
fn client_errors_and_requests_without_a_chain_make_one_attempt() {
    let _g = rig().envoy.guard();
    let bad = [("x-mock-anthropic-status", "400")];
    let resp = post("/v1/messages", "fo-400", &bad, &messages("claude-sonnet-4-5", false));
    assert_eq!(resp.status, 400);
    assert_eq!(upstream("fo-400").len(), 1, "a 4xx fails on every target: never retried");
    let p = Stack::shared().sink.properties("fo-400");
    assert_eq!((p["$ai_attempts"].clone(), p["$ai_provider"].clone()), (json!(1), json!("anthropic")));
    // No chain: no failover properties, and a client's retry directives never reach the router.
    let retry = [("x-mock-status", "503"), ("x-envoy-retry-on", "5xx"), ("x-envoy-max-retries", "3")];
    let resp = post("/v1/messages", "fo-nochain", &retry, &messages("claude-3-5-haiku-20241022", false));
    assert_eq!(resp.status, 503);
    assert_eq!(upstream("fo-nochain").len(), 1);
    let p = Stack::shared().sink.properties("fo-nochain");
    assert!(p.get("$ai_attempts").is_none() && p.get("$ai_fallback_attempts").is_none(), "{p}");
    // Nor does it enter the clusters' upstream filter: only the failover route enables it.
    let unchained = rig().envoy.metrics().get("llm_gateway.failover_unchained_attempts_total").copied();
    assert_eq!(unchained, Some(0), "a call without a chain entered the upstream filter");
}

#[test]
fn no_attempt_starts_past_the_chain_deadline() {
    let _g = rig().envoy.guard();
    let before = metric("failover_deadline_total");
    // Anthropic answers 503 after 2.1 s, past the 2 s deadline: OpenAI is never tried.
    let late = [("x-mock-anthropic-delay-ms", "2100"), ("x-mock-anthropic-status", "503")];
    let resp = post("/v1/messages", "fo-deadline", &late, &messages("claude-sonnet-4-5", false));
    assert_eq!(resp.status, 504, "{}", resp.body);
    let body = resp.json();
    assert_eq!(
        (body["type"].clone(), body["error"]["code"].clone()),
        (json!("error"), json!("failover_deadline_exceeded"))
    );
    assert!(resp.header("x-llm-gateway-failover-refused").is_none());
    assert_eq!(upstream("fo-deadline").len(), 1);
    let p = Stack::shared().sink.properties("fo-deadline");
    assert_eq!((p["$ai_http_status"].clone(), p["$ai_attempts"].clone()), (json!(504), json!(1)));
    wait_metric("failover_deadline_total", before + 1);
}

#[test]
fn concurrent_failovers_on_both_workers_each_keep_their_own_chain() {
    let _g = rig().envoy.guard();
    let before = metric("failover_anthropic_to_openai_total");
    let overloaded = [("x-mock-anthropic-status", "529")];
    let handles: Vec<_> = (0..24)
        .map(|i| {
            std::thread::spawn(move || {
                let marker = format!("fo-many-{i}");
                let stream = i % 2 == 0;
                let resp = post("/v1/messages", &marker, &overloaded, &messages("claude-sonnet-4-5", stream));
                (marker, stream, resp)
            })
        })
        .collect();
    for h in handles {
        let (marker, stream, resp) = h.join().unwrap();
        assert_eq!(resp.status, 200, "{marker}: {}", resp.body);
        let text =
            if stream { stream_text(&resp.body) } else { resp.json()["content"][0]["text"].as_str().unwrap().into() };
        assert_eq!(text, "Hello from mock-openai.", "{marker}");
        let p = Stack::shared().sink.properties(&marker);
        assert_eq!((p["$ai_provider"].clone(), p["$ai_attempts"].clone()), (json!("openai"), json!(2)), "{marker}");
        assert_eq!(upstream(&marker).len(), 2, "{marker}");
    }
    wait_metric("failover_anthropic_to_openai_total", before + 24);
    assert_eq!(rig().envoy.stat("cluster.mock.upstream_rq_retry_overflow"), 0);
}

/// The upstream filter's ECDS name in deploy/istio/envoyfilter.yaml.
const ECDS_NAME: &str = "llm-gateway.llm_gateway_upstream";

/// The rendered config in the Istio manifests' form: the upstream filter served by
/// ECDS under its own name, disabled by default, enabled by the failover route under
/// that name. ECDS reads a file here instead of istiod.
fn ecds_form(rendered: String, dir: &std::path::Path) -> String {
    let mut envoy: Value = serde_yaml::from_str(&rendered).unwrap();
    let ecds_file = dir.join("ecds.yaml");
    let mut served = None;
    for cluster in envoy["static_resources"]["clusters"].as_array_mut().unwrap() {
        // A pointer, not indexing: indexing a mutable Value adds what is missing.
        let filters =
            "/typed_extension_protocol_options/envoy.extensions.upstreams.http.v3.HttpProtocolOptions/http_filters";
        let first = cluster.pointer_mut(&format!("{filters}/0"));
        let Some(first) = first.filter(|f| f["name"] == "llm_gateway_upstream") else {
            continue;
        };
        served = Some(first["typed_config"].take());
        *first = json!({"name": ECDS_NAME, "disabled": true, "config_discovery": {
            "config_source": {"path_config_source": {"path": ecds_file}, "resource_api_version": "V3"},
            "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}});
    }
    let resource = json!({"@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": ECDS_NAME, "typed_config": served.expect("no cluster carries the upstream filter")});
    std::fs::write(&ecds_file, json!({"version_info": "1", "resources": [resource]}).to_string()).unwrap();
    let routes = &mut envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["route_config"]["virtual_hosts"][0]["routes"];
    let failover = routes.as_array_mut().unwrap().iter_mut().find(|r| r["name"] == "failover").unwrap();
    let enabled = failover["typed_per_filter_config"]["llm_gateway_upstream"].take();
    failover["typed_per_filter_config"] = json!({ECDS_NAME: enabled});
    // A file-based ECDS subscription needs the node's identity.
    envoy["node"] = json!({"id": "e2e", "cluster": "e2e"});
    envoy.to_string()
}

#[test]
fn the_istio_form_served_by_ecds_skips_plain_calls_and_fails_over() {
    let overlay = json!({"failover": {"models": {
        "claude-sonnet-4-5": [{"provider": "anthropic"}, {"provider": "openai", "model": "gpt-4o"}]}}});
    let envoy = Stack::shared().extra_envoy_edited("failover-ecds", overlay, 1, &ecds_form);
    let _g = envoy.guard();
    let send = |marker: &str, extra: &[(&str, &str)], model: &str| {
        let mut headers = vec![("x-test-marker", marker)];
        headers.extend_from_slice(extra);
        llm_gateway_e2e::stack::send(envoy.port, "POST", "/v1/messages", &headers, &messages(model, false).to_string())
    };
    let plain = send("ecds-plain", &[], "claude-3-5-haiku-20241022");
    assert_eq!(plain.status, 200, "{}", plain.body);
    let chained = send("ecds-529", &[("x-mock-anthropic-status", "529")], "claude-sonnet-4-5");
    assert_eq!(chained.status, 200, "{}", chained.body);
    assert_eq!(chained.json()["content"][0]["text"], "Hello from mock-openai.");
    let routes: Vec<String> = upstream("ecds-529").iter().map(|r| r.route().to_string()).collect();
    assert_eq!(routes, ["/v1/messages", "/v1/chat/completions"], "the ECDS-served filter rewrote the retry");
    // Counted when the call's event is queued: wait for the failover, then read both.
    let deadline = Instant::now() + Duration::from_secs(10);
    while envoy.metric("llm_gateway.failover_anthropic_to_openai_total") < 1 {
        assert!(Instant::now() < deadline, "the failover was never counted");
    }
    let unchained = envoy.metrics().get("llm_gateway.failover_unchained_attempts_total").copied();
    assert_eq!(unchained, Some(0), "a plain call entered the upstream filter");
}
