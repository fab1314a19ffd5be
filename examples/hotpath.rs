//! The filter's pure request path, timed outside Envoy, to separate the
//! gateway's own logic from the per-request host and runtime work that
//! BENCHMARKS.md measures:
//!
//! - natively: `cargo run --release --example hotpath`
//! - in V8 (Node's), as wasm: `cargo run --release --target wasm32-wasip1 --example hotpath`
//!
//! Each step also prints its heap allocations per iteration (each `alloc` and
//! `realloc`), which cost most when the caches are cold, as in Envoy between requests.
//!
//! An argument runs only the steps whose names contain it, 20 times as often:
//! `node --cpu-prof scripts/wasi-run.mjs target/wasm32-wasip1/release/examples/hotpath.wasm "header map"`
//! then shows which wasm functions that step spends its time in (V8's profiler
//! reads their names from the module's name section).

// Benchmark tooling, not filter code: a failed setup may panic.
#![allow(clippy::expect_used)]

use std::sync::OnceLock;
use std::time::Instant;

use llm_gateway::capture::event::{Generation, DEFAULT_MAX_EVENT_BYTES};
use llm_gateway::usage::Usage;
use llm_gateway::{auth, capture, config, forward, pipeline, pricing, request, routes};

/// The steps to run, when an argument names some.
static ONLY: OnceLock<Option<String>> = OnceLock::new();

#[global_allocator]
static GLOBAL: llm_gateway::alloc_count::Counting = llm_gateway::alloc_count::Counting;

fn time<T>(name: &str, mut n: u32, mut f: impl FnMut() -> T) -> f64 {
    if let Some(only) = ONLY.get_or_init(|| std::env::args().nth(1)) {
        if !name.contains(only.as_str()) {
            return 0.0;
        }
        n *= 20;
    }
    let allocs = llm_gateway::alloc_count::allocations();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(f());
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let allocs = (llm_gateway::alloc_count::allocations() - allocs) as f64 / f64::from(n);
    println!("{name:38} {us:9.2} µs {allocs:7.1} allocations");
    us
}

fn main() {
    let config = config::Config::parse(br#"{"providers":{"openai":{"cluster":"mock"}},"limits":{"enabled":false}}"#)
        .expect("config");
    let keys = forward::ProviderKeys::from_env(|_| Some("sk-test".into()));
    let filler = "x".repeat(900);
    let body = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"system","content":"{filler}"}},{{"role":"user","content":"hi"}}]}}"#
    );
    let body = body.as_bytes();
    let resp = br#"{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":230,"completion_tokens":9,"total_tokens":239}}"#;
    let route = routes::resolve("POST", "/v1/chat/completions", &config.products, false).expect("route");
    let parsed = request::parse(body, route.api).expect("parse");
    let up = forward::plan(&config, &keys, 0, route.api, &parsed, body, None).expect("plan");
    // The same call streamed, the client not asking for usage: the gateway asks and cuts it out.
    let streamed_body = String::from_utf8_lossy(body).replacen(r#""model""#, r#""stream":true,"model""#, 1);
    let streamed_req = request::parse(streamed_body.as_bytes(), route.api).expect("parse");
    let streamed =
        forward::plan(&config, &keys, 0, route.api, &streamed_req, streamed_body.as_bytes(), None).expect("plan");
    assert!(streamed.response.strip_usage_chunk);
    let events = chat_stream();
    let headers: llm_gateway::wire::header_pairs::Headers =
        (0..15).map(|i| (format!("x-header-{i}"), "value")).collect();
    // A request's header map as Envoy hands it over (an SDK's usual headers).
    let header_map = llm_gateway::wire::header_pairs::encode_pairs(&[
        (":authority", "127.0.0.1:10000"),
        (":path", "/v1/chat/completions"),
        (":method", "POST"),
        (":scheme", "http"),
        ("content-type", "application/json"),
        ("authorization", "Bearer phx_0123456789abcdef0123456789"),
        ("content-length", "1024"),
        ("user-agent", "OpenAI/Python 1.99.0"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "6f1d7c62-7d0a-4a9c-9a61-9c0e5d6a0b1f"),
        ("accept", "application/json"),
        ("x-stainless-lang", "python"),
    ]);
    let n = 20_000;
    println!("1 KB chat request, JSON response, {n} iterations each:");
    let total = [
        time("header map read (12 headers)", n, || {
            llm_gateway::wire::header_pairs::decode_pairs(&header_map).is_some()
        }),
        time("route", n, || routes::resolve("POST", "/v1/chat/completions", &config.products, false).is_ok()),
        time("credential + key hash", n, || {
            auth::credentials(Some("Bearer phx_0123456789abcdef"), None).map(|t| t.hash())
        }),
        time("request parse", n, || request::parse(body, route.api).is_ok()),
        time("upstream plan", n, || forward::plan(&config, &keys, 0, route.api, &parsed, body, None).is_ok()),
        time("response usage (JSON)", n, || {
            let mut p = pipeline::ResponsePipeline::start(up.response.clone(), 200, Some("application/json"), None, 1);
            p.feed(resp, true);
            p.finish()
        }),
        time("header properties", n, || capture::properties::header_properties(&headers)),
        time("event uuid", n, capture::properties::new_uuid),
    ]
    .iter()
    .sum::<f64>();
    println!("{:38} {total:9.2} µs", "sum");
    time("upstream plan, streamed (usage asked)", n, || {
        forward::plan(&config, &keys, 0, route.api, &streamed_req, streamed_body.as_bytes(), None).is_ok()
    });
    println!("The same call streamed, the usage the gateway asked for cut out, {} iterations:", n / 10);
    time(&format!("response stream ({} chunks, usage cut)", events.len()), n / 10, || {
        let mut p =
            pipeline::ResponsePipeline::start(streamed.response.clone(), 200, Some("text/event-stream"), None, 1);
        let out: usize = events.iter().map(|e| p.feed(e.as_bytes(), false).replace.map_or(0, |r| r.len())).sum();
        (out, p.finish())
    });
    let usage = Usage { input_tokens: 230, output_tokens: 9, cache_read_tokens: Some(100), ..Usage::default() };
    println!("price lookup and cost, {n} iterations each:");
    for model in
        ["gpt-4o-mini", "claude-sonnet-4-5-20250929", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "no-such-model"]
    {
        time(&format!("cost {model}"), n, || pricing::cost(&config.prices, model, &usage, 20_779, 0.01).total_usd);
    }
    let mut i = 0u32;
    time("cost, a new name each call (memo miss)", n, || {
        i += 1;
        pricing::cost(&config.prices, &format!("gpt-4o-mini-2024-07-{i}"), &usage, 20_779, 0.01).total_usd
    });
    time("config parse (built-in prices)", 200, || config::Config::parse(b"{}").is_ok());
    let call = Generation {
        distinct_id: "user-1".into(),
        trace_id: capture::properties::new_uuid(),
        uuid: capture::properties::new_uuid(),
        timestamp_ms: 1_764_800_000_000,
        model: "gpt-4o-mini".into(),
        provider: "openai".into(),
        product: "llm_gateway".into(),
        team_id: Some(2),
        input_tokens: Some(230),
        output_tokens: Some(9),
        input_cost_usd: Some(0.0000345),
        output_cost_usd: Some(0.0000054),
        total_cost_usd: Some(0.0000399),
        latency_s: 0.012,
        http_status: 200,
        base_url: "https://api.openai.com".into(),
        api_format: "openai_chat".into(),
        input: std::str::from_utf8(body).ok().and_then(|b| b.find("[").map(|i| b[i..b.len() - 1].to_string())),
        output_choices: Some(r#"[{"role":"assistant","content":"Hello there"}]"#.into()),
        gateway_properties: serde_json::json!({"$ai_price_source": "catalog"}).as_object().cloned().unwrap_or_default(),
        ..Generation::default()
    };
    {
        use llm_gateway::limits::{self, CheckPlan, LimitOverrides, LimitsConfig, Subject, WindowStatus};
        let lc = LimitsConfig::default();
        let subject = Subject { team_id: 2, product: "llm_gateway", end_user: "user-1" };
        println!("limits, a warm request (default windows), {n} iterations each:");
        time("applicable windows", n, || limits::applicable_windows(&lc, &LimitOverrides::default()));
        time("check plan (keys, signature)", n, || {
            CheckPlan::new(
                limits::applicable_windows(&lc, &LimitOverrides::default()),
                &subject,
                0.0025,
                None,
                1_764_800_000_000,
            )
        });
        let st = WindowStatus { limit_usd: 500.0, remaining_usd: 499.5, reset_s: 3000 };
        time("rate-limit headers", n, || limits::rate_limit_headers(&st));
    }
    // Coding agents' requests as recorded (src/translate/tests/agents), each to
    // its own provider (passed through) and to the other (translated).
    let both = config::Config::parse(
        br#"{"providers":{"openai":{"cluster":"mock"},"anthropic":{"cluster":"mock"}},"limits":{"enabled":false}}"#,
    )
    .expect("config");
    let agents = [
        ("Claude Code", "/v1/messages", include_str!("../src/translate/tests/agents/claude-code.bash.json"), "gpt-5"),
        (
            "Codex",
            "/v1/responses",
            include_str!("../src/translate/tests/agents/codex.exec_command.json"),
            "claude-sonnet-4-6",
        ),
    ];
    for (agent, path, body, other) in agents {
        let route = routes::resolve("POST", path, &both.products, false).expect("route");
        let body = body.as_bytes();
        let parsed = request::parse(body, route.api).expect("parse");
        println!("{agent} request ({:.1} KB), 5000 iterations each:", body.len() as f64 / 1024.0);
        time("request parse", 5000, || request::parse(body, route.api).is_ok());
        time("upstream plan, its own provider", 5000, || {
            forward::plan(&both, &keys, 0, route.api, &parsed, body, None).is_ok()
        });
        let translated =
            request::ParsedRequest { model: other.into(), ..request::parse(body, route.api).expect("parse") };
        time(&format!("upstream plan, translated for {other}"), 5000, || {
            forward::plan(&both, &keys, 0, route.api, &translated, body, None).is_ok()
        });
        // The answer as the bench mock streams it, read and translated back.
        let up = forward::plan(&both, &keys, 0, route.api, &translated, body, None).expect("plan");
        let events = match up.provider {
            llm_gateway::providers::Provider::Anthropic => messages_stream(),
            _ => chat_stream(),
        };
        time(&format!("answer stream ({} chunks), translated back", events.len()), 5000, || {
            let mut p = pipeline::ResponsePipeline::start(up.response.clone(), 200, Some("text/event-stream"), None, 1);
            let out: usize = events.iter().map(|e| p.feed(e.as_bytes(), false).replace.map_or(0, |r| r.len())).sum();
            (out, p.finish())
        });
    }
    println!("$ai_generation event for the 1 KB call:");
    time("event JSON (content checked, spliced)", n, || {
        call.to_json("https://us.posthog.com", DEFAULT_MAX_EVENT_BYTES)
    });
    let prompt = format!(r#"[{{"role":"system","content":"{}"}}]"#, "lorem ipsum dolor sit amet ".repeat(10_000));
    let g = Generation { input: Some(prompt.clone()), model: "gpt-4o".into(), ..Generation::default() };
    println!("$ai_generation event with a {} KB prompt:", prompt.len() / 1024);
    time("event JSON (content checked, spliced)", 200, || g.to_json("https://us.posthog.com", DEFAULT_MAX_EVENT_BYTES));
}

/// An Anthropic Messages stream as the bench mock (`bench/src/upstream.rs`, a
/// binary this example cannot link) writes it: 8 text deltas, one event a write.
fn messages_stream() -> Vec<String> {
    let mut events = vec![
        r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-6","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#.to_string(),
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_string(),
    ];
    events.extend((0..8).map(|i| {
        format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"token{i} "}}}}"#)
    }));
    events.push(r#"{"type":"content_block_stop","index":0}"#.to_string());
    events.push(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#.to_string());
    events.push(r#"{"type":"message_stop"}"#.to_string());
    events
        .into_iter()
        .map(|e| {
            let kind = e.split('"').nth(3).unwrap_or_default().to_string();
            format!("event: {kind}\ndata: {e}\n\n")
        })
        .collect()
}

/// An OpenAI Chat stream as the bench mock writes it when the gateway asks for
/// usage (`include_usage`): a role chunk, 8 content chunks and a finish chunk
/// with `"usage":null`, then the usage chunk and `[DONE]` in one write.
fn chat_stream() -> Vec<String> {
    let chunk = |delta: &str, finish: &str| {
        format!(
            r#"data: {{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-5","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}],"usage":null}}"#
        ) + "\n\n"
    };
    let mut events = vec![chunk(r#"{"role":"assistant","content":""}"#, "null")];
    events.extend((0..8).map(|i| chunk(&format!(r#"{{"content":"token{i} "}}"#), "null")));
    events.push(chunk("{}", r#""stop""#));
    events.push(
        r#"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-5","choices":[],"usage":{"prompt_tokens":25,"completion_tokens":15,"total_tokens":40}}"#.to_string()
            + "\n\ndata: [DONE]\n\n",
    );
    events
}
