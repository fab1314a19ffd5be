//! Issues 10 and 16: any model through any endpoint format. An OpenAI Chat
//! client calls Anthropic and Bedrock models, an Anthropic Messages client
//! calls OpenAI, Gemini and Bedrock models, an OpenAI Responses client calls
//! Anthropic, Gemini and Bedrock models, through Envoy, with the mock
//! answering in each provider's own wire format. Then the official OpenAI and
//! Anthropic Python SDKs, unmodified, call every provider's models through
//! the gateway, with each of their APIs.

use std::process::Command;

use llm_gateway_e2e::http1::Request;
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------- helpers

/// The request the mock received with `x-test-marker: marker`.
fn upstream(stack: &Stack, marker: &str) -> Request {
    let found: Vec<Request> =
        stack.mock.requests().into_iter().filter(|r| r.header("x-test-marker") == Some(marker)).collect();
    assert_eq!(found.len(), 1, "the mock received {} requests marked {marker}", found.len());
    found.into_iter().next().unwrap()
}

fn body_of(req: &Request) -> Value {
    serde_json::from_slice(&req.body).unwrap_or_else(|e| panic!("upstream body is not JSON ({e})"))
}

fn assert_close(v: &Value, want: f64, what: &str) {
    let got = v.as_f64().unwrap_or_else(|| panic!("{what}: not a number: {v}"));
    assert!((got - want).abs() < 1e-9, "{what}: {got} != {want}");
}

/// The JSON payloads of an SSE body's `data:` lines, `[DONE]` excluded.
fn data_lines(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("data line is not JSON ({e}): {d}")))
        .collect()
}

/// Named SSE events as (event name, data), checking that each name is its data's `type`.
fn named_events(body: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in body.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let name = block.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_else(|| panic!("unnamed: {block}"));
        let data = block.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_else(|| panic!("no data: {block}"));
        let data: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("not JSON ({e}): {data}"));
        assert_eq!(data["type"], name, "event name and type differ: {block}");
        out.push((name.to_string(), data));
    }
    out
}

// ---------------------------------------------------------------- the routes

#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    Chat,
    Messages,
    Responses,
}

impl Client {
    fn path(self) -> &'static str {
        match self {
            Client::Chat => "/v1/chat/completions",
            Client::Messages => "/v1/messages",
            Client::Responses => "/v1/responses",
        }
    }

    fn api_format(self) -> &'static str {
        match self {
            Client::Chat => "openai_chat",
            Client::Messages => "anthropic_messages",
            Client::Responses => "openai_responses",
        }
    }
}

/// Where the gateway must send the call, in which wire format.
#[derive(Clone, Copy, Debug)]
enum Upstream {
    Anthropic,
    /// The Bedrock model id in the path.
    Bedrock(&'static str),
    OpenAi,
    Gemini,
}

/// Token counts and prices for one provider usage object.
struct Usage {
    /// The provider's own usage object, sent as `x-mock-usage`.
    provider: Value,
    /// What the event reports (the provider's counts).
    input: u64,
    output: u64,
    cache_read: Option<u64>,
    cache_creation: Option<u64>,
    /// What the client sees as its input count in its own API's semantics:
    /// `prompt_tokens` (cache included) or Anthropic `input_tokens` (cache excluded).
    client_input: u64,
    client_cache_read: u64,
    input_cost: f64,
    output_cost: f64,
}

struct Route {
    name: &'static str,
    client: Client,
    model: &'static str,
    headers: &'static [(&'static str, &'static str)],
    provider: &'static str,
    upstream: Upstream,
    usage: Usage,
}

impl Route {
    /// The provider speaks Anthropic Messages (Anthropic, Bedrock), not OpenAI Chat.
    fn anthropic_wire(&self) -> bool {
        matches!(self.upstream, Upstream::Anthropic | Upstream::Bedrock(_))
    }
}

/// Anthropic usage: input excludes the 200 read and 100 written cache tokens.
fn anthropic_usage(input_price: f64, output_price: f64) -> Usage {
    Usage {
        provider: json!({"input_tokens": 1000, "cache_read_input_tokens": 200, "cache_creation_input_tokens": 100,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 300}),
        input: 1000,
        output: 300,
        cache_read: Some(200),
        cache_creation: Some(100),
        client_input: 1000,
        client_cache_read: 200,
        // Reads at 0.1x, 5-minute writes at 1.25x the input price.
        input_cost: (1000.0 + 200.0 * 0.1 + 100.0 * 1.25) * input_price * 1e-6,
        output_cost: 300.0 * output_price * 1e-6,
    }
}

fn sonnet_usage() -> Usage {
    anthropic_usage(3.0, 15.0)
}

fn haiku_usage() -> Usage {
    anthropic_usage(1.0, 5.0)
}

/// The same usage as an OpenAI client sees it: `prompt_tokens` counts the cache.
fn for_chat_client(mut usage: Usage) -> Usage {
    usage.client_input = usage.input + usage.cache_read.unwrap_or(0) + usage.cache_creation.unwrap_or(0);
    usage
}

/// gpt-4o: 400 of the 1000 prompt tokens are cache reads ($2.50 in, $1.25 cached, $10 out).
fn gpt4o_usage() -> Usage {
    Usage {
        provider: json!({"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
            "prompt_tokens_details": {"cached_tokens": 400}}),
        input: 1000,
        output: 200,
        cache_read: Some(400),
        cache_creation: None,
        client_input: 600,
        client_cache_read: 400,
        input_cost: (600.0 * 2.5 + 400.0 * 1.25) * 1e-6,
        output_cost: 200.0 * 10.0 * 1e-6,
    }
}

/// gemini-2.5-flash through the OpenAI-compatible endpoint: $0.30 in, $2.50 out.
fn gemini_usage() -> Usage {
    Usage {
        provider: json!({"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140}),
        input: 100,
        output: 40,
        cache_read: None,
        cache_creation: None,
        client_input: 100,
        client_cache_read: 0,
        input_cost: 100.0 * 0.3e-6,
        output_cost: 40.0 * 2.5e-6,
    }
}

const SONNET_ID: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const BEDROCK_HEADER: &[(&str, &str)] = &[("x-posthog-provider", "bedrock")];

/// Every translated combination, plus Messages → Bedrock.
fn routes() -> Vec<Route> {
    vec![
        Route {
            name: "chat-anthropic",
            client: Client::Chat,
            model: "claude-sonnet-4-5",
            headers: &[],
            provider: "anthropic",
            upstream: Upstream::Anthropic,
            usage: for_chat_client(sonnet_usage()),
        },
        Route {
            name: "chat-bedrock-id",
            client: Client::Chat,
            model: SONNET_ID,
            headers: &[],
            provider: "bedrock",
            upstream: Upstream::Bedrock(SONNET_ID),
            usage: for_chat_client(sonnet_usage()),
        },
        Route {
            name: "chat-bedrock-header",
            client: Client::Chat,
            model: "claude-haiku-4-5",
            headers: BEDROCK_HEADER,
            provider: "bedrock",
            upstream: Upstream::Bedrock("global.anthropic.claude-haiku-4-5-20251001-v1:0"),
            usage: for_chat_client(haiku_usage()),
        },
        Route {
            name: "messages-openai",
            client: Client::Messages,
            model: "gpt-4o",
            headers: &[],
            provider: "openai",
            upstream: Upstream::OpenAi,
            usage: gpt4o_usage(),
        },
        Route {
            name: "messages-gemini",
            client: Client::Messages,
            model: "gemini-2.5-flash",
            headers: &[],
            provider: "gemini",
            upstream: Upstream::Gemini,
            usage: gemini_usage(),
        },
        Route {
            name: "messages-bedrock-id",
            client: Client::Messages,
            model: SONNET_ID,
            headers: &[],
            provider: "bedrock",
            upstream: Upstream::Bedrock(SONNET_ID),
            usage: sonnet_usage(),
        },
        Route {
            name: "messages-bedrock-header",
            client: Client::Messages,
            model: "claude-sonnet-4-5",
            headers: BEDROCK_HEADER,
            provider: "bedrock",
            upstream: Upstream::Bedrock("global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            usage: sonnet_usage(),
        },
        Route {
            name: "responses-anthropic",
            client: Client::Responses,
            model: "claude-sonnet-4-5",
            headers: &[],
            provider: "anthropic",
            upstream: Upstream::Anthropic,
            usage: for_chat_client(sonnet_usage()),
        },
        Route {
            name: "responses-gemini",
            client: Client::Responses,
            model: "gemini-2.5-flash",
            headers: &[],
            provider: "gemini",
            upstream: Upstream::Gemini,
            usage: gemini_usage(),
        },
        Route {
            name: "responses-bedrock-id",
            client: Client::Responses,
            model: SONNET_ID,
            headers: &[],
            provider: "bedrock",
            upstream: Upstream::Bedrock(SONNET_ID),
            usage: for_chat_client(sonnet_usage()),
        },
        Route {
            name: "responses-bedrock-header",
            client: Client::Responses,
            model: "claude-haiku-4-5",
            headers: BEDROCK_HEADER,
            provider: "bedrock",
            upstream: Upstream::Bedrock("global.anthropic.claude-haiku-4-5-20251001-v1:0"),
            usage: for_chat_client(haiku_usage()),
        },
    ]
}

/// How the client asks: whole, streamed, or (Chat only) streamed with the usage chunk.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Whole,
    Stream,
    StreamWithUsage,
}

impl Mode {
    fn for_client(client: Client) -> &'static [Mode] {
        match client {
            Client::Chat => &[Mode::Whole, Mode::Stream, Mode::StreamWithUsage],
            Client::Messages | Client::Responses => &[Mode::Whole, Mode::Stream],
        }
    }

    fn streams(self) -> bool {
        self != Mode::Whole
    }
}

/// The client's request body, in its own API's shape.
fn client_body(route: &Route, mode: Mode, messages: Value, extra: Value) -> String {
    let mut body = json!({"model": route.model, "messages": messages});
    match route.client {
        Client::Messages => body["max_tokens"] = json!(64),
        // The conversation as Responses input items (messages as they are, then any other items).
        Client::Responses => body = json!({"model": route.model, "input": messages, "max_output_tokens": 64}),
        Client::Chat => {}
    }
    if mode.streams() {
        body["stream"] = json!(true);
    }
    if mode == Mode::StreamWithUsage {
        body["stream_options"] = json!({"include_usage": true});
    }
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    body.to_string()
}

fn hello() -> Value {
    json!([{"role": "user", "content": "hi"}])
}

/// Sends one call marked with `trace` (as trace id and as `x-test-marker`, which reaches the mock).
fn call(stack: &Stack, route: &Route, trace: &str, extra_headers: &[(&str, &str)], body: &str) -> Response {
    let mut headers = vec![("x-posthog-trace-id", trace), ("x-test-marker", trace)];
    headers.extend_from_slice(route.headers);
    headers.extend_from_slice(extra_headers);
    stack.post(route.client.path(), &headers, body)
}

/// The mock got the provider's shape at the provider's path, with the provider's key and no client credential.
fn assert_provider_request(req: &Request, route: &Route, stream: bool, what: &str) -> Value {
    let body = body_of(req);
    for (name, value) in &req.headers {
        assert!(!value.contains(TEST_KEY), "{what}: the client's key reached the provider in {name}");
    }
    assert!(req.header("x-posthog-provider").is_none(), "{what}: gateway headers stay in the gateway");
    match route.upstream {
        Upstream::Anthropic => {
            assert_eq!(req.route(), "/v1/messages", "{what}");
            assert_eq!(req.header("x-api-key"), Some(ANTHROPIC_KEY), "{what}");
            assert!(req.header("authorization").is_none(), "{what}");
            assert!(req.header("anthropic-version").is_some(), "{what}");
            assert_eq!(body["model"], route.model, "{what}");
            assert!(body["max_tokens"].is_u64(), "{what}: Anthropic requires max_tokens: {body}");
            assert_eq!(body.get("stream").is_some_and(|s| s == true), stream, "{what}: {body}");
            assert!(body.get("stream_options").is_none(), "{what}: {body}");
        }
        Upstream::Bedrock(id) => {
            let action = if stream { "invoke-with-response-stream" } else { "invoke" };
            assert_eq!(req.route(), format!("/model/{}/{action}", percent_encode(id)), "{what}");
            assert_eq!(req.header("authorization"), Some(format!("Bearer {BEDROCK_KEY}").as_str()), "{what}");
            assert!(req.header("x-api-key").is_none(), "{what}");
            assert_eq!(body["anthropic_version"], "bedrock-2023-05-31", "{what}: {body}");
            assert!(body.get("model").is_none() && body.get("stream").is_none(), "{what}: {body}");
            assert!(body["max_tokens"].is_u64(), "{what}: {body}");
        }
        Upstream::OpenAi | Upstream::Gemini => {
            let (path, key) = match route.upstream {
                Upstream::OpenAi => ("/v1/chat/completions", OPENAI_KEY),
                _ => ("/v1beta/openai/chat/completions", GEMINI_KEY),
            };
            assert_eq!(req.route(), path, "{what}");
            assert_eq!(req.header("authorization"), Some(format!("Bearer {key}").as_str()), "{what}");
            assert!(req.header("x-api-key").is_none(), "{what}");
            assert_eq!(body["model"], route.model, "{what}");
            assert!(body.get("max_tokens").is_none(), "{what}: {body}");
            assert_eq!(body["max_completion_tokens"], 64, "{what}: {body}");
            assert_eq!(body.get("stream").is_some_and(|s| s == true), stream, "{what}: {body}");
            if stream {
                assert_eq!(body["stream_options"]["include_usage"], true, "{what}: usage must be asked for");
            }
        }
    }
    assert!(body["messages"].is_array(), "{what}: {body}");
    body
}

fn vendor_text(route: &Route) -> String {
    let vendor = match route.upstream {
        Upstream::Anthropic => "anthropic",
        Upstream::Bedrock(_) => "bedrock",
        Upstream::OpenAi => "openai",
        Upstream::Gemini => "gemini",
    };
    format!("Hello from mock-{vendor}.")
}

/// A Chat client's answer: a `chat.completion`, or a chunk stream ending in `[DONE]`.
/// Returns (text, finish reason, usage if any, the tool calls' deltas or message).
fn read_chat(resp: &Response, route: &Route, mode: Mode, what: &str) -> (String, String, Option<Value>, Value) {
    if mode == Mode::Whole {
        assert_eq!(resp.header("content-type"), Some("application/json"), "{what}");
        let body = resp.json();
        assert_eq!(body["object"], "chat.completion", "{what}: {body}");
        assert_eq!(body["model"], route.model, "{what}");
        let choice = &body["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["message"]["role"], "assistant", "{what}");
        let text = choice["message"]["content"].as_str().unwrap_or_default().to_string();
        let finish = choice["finish_reason"].as_str().unwrap_or_default().to_string();
        return (text, finish, Some(body["usage"].clone()), choice["message"]["tool_calls"].clone());
    }
    assert_eq!(resp.header("content-type"), Some("text/event-stream"), "{what}");
    assert!(resp.body.ends_with("data: [DONE]\n\n"), "{what}: the stream must end with [DONE]:\n{}", resp.body);
    let chunks = data_lines(&resp.body);
    assert!(chunks.len() >= 3, "{what}: {}", resp.body);
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk", "{what}: {chunk}");
        assert_eq!(chunk["model"], route.model, "{what}");
        assert!(chunk["id"].is_string() && chunk["created"].is_u64(), "{what}: {chunk}");
        if mode == Mode::StreamWithUsage {
            assert!(chunk.get("usage").is_some(), "{what}: with include_usage every chunk has `usage`: {chunk}");
        } else {
            assert!(chunk.get("usage").is_none(), "{what}: usage was not asked for: {chunk}");
        }
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant", "{what}");
    let (with_choices, usage_chunks): (Vec<&Value>, Vec<&Value>) =
        chunks.iter().partition(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty()));
    let text: String = with_choices.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    let finishes: Vec<&str> = with_choices.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect();
    assert_eq!(finishes.len(), 1, "{what}: one finish_reason: {finishes:?}");
    let usage = match mode {
        Mode::StreamWithUsage => {
            assert_eq!(usage_chunks.len(), 1, "{what}: one usage chunk");
            assert_eq!(chunks.last(), usage_chunks.first().copied(), "{what}: the usage chunk comes last");
            Some(usage_chunks[0]["usage"].clone())
        }
        _ => {
            assert!(usage_chunks.is_empty(), "{what}: no usage chunk unless asked");
            None
        }
    };
    let tool_deltas: Vec<Value> = with_choices
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls").cloned())
        .flat_map(|t| t.as_array().cloned().unwrap_or_default())
        .collect();
    (text, finishes[0].to_string(), usage, Value::from(tool_deltas))
}

/// An Anthropic client's answer: a `message`, or named events from
/// `message_start` to `message_stop`. Returns (text, stop reason, usage as the
/// SDKs accumulate it, content blocks).
fn read_messages(resp: &Response, route: &Route, mode: Mode, what: &str) -> (String, String, Value, Value) {
    let text_of = |blocks: &Value| -> String {
        blocks.as_array().into_iter().flatten().filter_map(|b| b["text"].as_str()).collect()
    };
    if mode == Mode::Whole {
        assert_eq!(resp.header("content-type"), Some("application/json"), "{what}");
        let body = resp.json();
        assert_eq!(body["type"], "message", "{what}: {body}");
        assert_eq!(body["role"], "assistant", "{what}");
        if !matches!(route.upstream, Upstream::Bedrock(_)) {
            assert_eq!(body["model"], route.model, "{what}");
        }
        let stop = body["stop_reason"].as_str().unwrap_or_default().to_string();
        return (text_of(&body["content"]), stop, body["usage"].clone(), body["content"].clone());
    }
    assert_eq!(resp.header("content-type"), Some("text/event-stream"), "{what}");
    let events = named_events(&resp.body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{what}: {names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{what}: {names:?}");
    for name in ["content_block_start", "content_block_delta", "content_block_stop", "message_delta"] {
        assert!(names.contains(&name), "{what}: no {name} in {names:?}");
    }
    let start = &events[0].1["message"];
    assert_eq!(start["role"], "assistant", "{what}");
    let mut usage = start["usage"].clone();
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial_json: Vec<String> = Vec::new();
    let mut stop = String::new();
    for (name, data) in &events {
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(data["index"], blocks.len(), "{what}: blocks are numbered in order");
                blocks.push(data["content_block"].clone());
                partial_json.push(String::new());
            }
            "content_block_delta" => {
                let i = data["index"].as_u64().unwrap() as usize;
                match data["delta"]["type"].as_str() {
                    Some("text_delta") => {
                        let text = blocks[i]["text"].as_str().unwrap_or_default().to_string();
                        blocks[i]["text"] = json!(text + data["delta"]["text"].as_str().unwrap());
                    }
                    Some("input_json_delta") => {
                        partial_json[i].push_str(data["delta"]["partial_json"].as_str().unwrap())
                    }
                    other => panic!("{what}: unexpected delta {other:?}"),
                }
            }
            "message_delta" => {
                stop = data["delta"]["stop_reason"].as_str().unwrap_or_default().to_string();
                // Later usage fields replace earlier ones, as the SDKs merge them.
                for (k, v) in data["usage"].as_object().into_iter().flatten() {
                    usage[k] = v.clone();
                }
            }
            _ => {}
        }
    }
    for (block, json) in blocks.iter_mut().zip(&partial_json) {
        if block["type"] == "tool_use" {
            block["input"] = serde_json::from_str(json).unwrap_or_else(|e| panic!("{what}: tool input {json}: {e}"));
        }
    }
    let blocks = Value::from(blocks);
    (text_of(&blocks), stop, usage, blocks)
}

/// A Responses client's answer: a `response`, or the event stream from
/// `response.created` to `response.completed`, read as the SDKs and Codex do:
/// every item is added and done, and the completed response holds the items
/// the events built. Returns (text, status, usage, output items).
fn read_responses(resp: &Response, route: &Route, mode: Mode, what: &str) -> (String, String, Value, Value) {
    let text_of = |output: &Value| -> String {
        output
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["type"] == "message")
            .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["text"].as_str().map(str::to_owned))
            .collect()
    };
    let response = if mode == Mode::Whole {
        assert_eq!(resp.header("content-type"), Some("application/json"), "{what}");
        resp.json()
    } else {
        assert_eq!(resp.header("content-type"), Some("text/event-stream"), "{what}");
        let events = named_events(&resp.body);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"response.created"), "{what}: {names:?}");
        assert_eq!(names.get(1), Some(&"response.in_progress"), "{what}: {names:?}");
        assert_eq!(names.last(), Some(&"response.completed"), "{what}: {names:?}");
        let mut done: Vec<Value> = Vec::new();
        let mut deltas = String::new();
        for (i, (name, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], i, "{what}: {name}");
            match name.as_str() {
                "response.output_item.added" => assert_eq!(data["output_index"], done.len(), "{what}"),
                "response.output_item.done" => done.push(data["item"].clone()),
                "response.output_text.delta" => deltas.push_str(data["delta"].as_str().unwrap()),
                _ => {}
            }
        }
        let completed = events.last().unwrap().1["response"].clone();
        assert_eq!(completed["output"], Value::from(done), "{what}: every item arrives in output_item.done");
        assert_eq!(deltas, text_of(&completed["output"]), "{what}");
        completed
    };
    assert_eq!(response["object"], "response", "{what}: {response}");
    assert_eq!(response["model"], route.model, "{what}");
    assert!(response["id"].as_str().unwrap().starts_with("resp_"), "{what}");
    let status = response["status"].as_str().unwrap_or_default().to_string();
    (text_of(&response["output"]), status, response["usage"].clone(), response["output"].clone())
}

/// The event has the route's provider, the client's format, the provider's counts and a cost.
fn assert_event(stack: &Stack, route: &Route, trace: &str, stream: bool) -> Value {
    let e = stack.sink.event(trace);
    let p = &e["properties"];
    let u = &route.usage;
    assert_eq!(e["event"], "$ai_generation");
    assert_eq!(p["$ai_provider"], route.provider, "{trace}");
    assert_eq!(p["$ai_api_format"], route.client.api_format(), "{trace}");
    // `$ai_model` is the model that answered: the mock's Bedrock answers name the Bedrock id.
    let answered = match route.upstream {
        Upstream::Bedrock(id) => id,
        _ => route.model,
    };
    assert_eq!(p["$ai_model"], answered, "{trace}");
    if answered != route.model {
        assert_eq!(p["$ai_model_requested"], route.model, "{trace}");
    }
    assert_eq!(p["$ai_stream"], stream, "{trace}");
    assert_eq!(p["$ai_http_status"], 200, "{trace}");
    assert_eq!(p["$ai_is_error"], false, "{trace}: {p}");
    assert_eq!(p["$ai_input_tokens"], u.input, "{trace}");
    assert_eq!(p["$ai_output_tokens"], u.output, "{trace}");
    for (key, want) in
        [("$ai_cache_read_input_tokens", u.cache_read), ("$ai_cache_creation_input_tokens", u.cache_creation)]
    {
        match want {
            Some(n) => assert_eq!(p[key], n, "{trace} {key}"),
            None => assert!(p.get(key).is_none(), "{trace}: {key} was not reported by the provider"),
        }
    }
    let (input_cost, output_cost) = (p["$ai_input_cost_usd"].clone(), p["$ai_output_cost_usd"].clone());
    if route.provider == "bedrock" {
        // Priced as the first-party model; Bedrock's regional endpoints cost up
        // to 10% more (docs/protocols/bedrock.md), which a price table may reflect.
        for (got, want) in [(&input_cost, u.input_cost), (&output_cost, u.output_cost)] {
            let got = got.as_f64().unwrap_or_else(|| panic!("{trace}: no cost: {p}"));
            assert!(got >= want - 1e-12 && got <= want * 1.1 + 1e-12, "{trace}: cost {got} for {want}");
        }
    } else {
        assert_close(&input_cost, u.input_cost, trace);
        assert_close(&output_cost, u.output_cost, trace);
    }
    let total = input_cost.as_f64().unwrap() + output_cost.as_f64().unwrap();
    assert_close(&p["$ai_total_cost_usd"], total, trace);
    assert_eq!(p.get("$ai_time_to_first_token").is_some(), stream, "{trace}");
    e
}

// ---------------------------------------------------------------- tests

#[test]
fn every_translated_route_speaks_each_side_in_its_own_format() {
    let stack = Stack::shared();
    let _g = stack.guard();
    for route in routes() {
        for &mode in Mode::for_client(route.client) {
            let trace = format!("tr-{}-{mode:?}", route.name);
            let what = trace.as_str();
            let usage_header = route.usage.provider.to_string();
            let body = client_body(&route, mode, hello(), json!({}));
            let resp = call(stack, &route, &trace, &[("x-mock-usage", &usage_header)], &body);
            assert_eq!(resp.status, 200, "{what}: {}", resp.body);
            let u = &route.usage;
            match route.client {
                Client::Chat => {
                    let (text, finish, usage, _) = read_chat(&resp, &route, mode, what);
                    assert_eq!(text, vendor_text(&route), "{what}");
                    assert_eq!(finish, "stop", "{what}");
                    if let Some(usage) = usage {
                        assert_eq!(usage["prompt_tokens"], u.client_input, "{what}: {usage}");
                        assert_eq!(usage["completion_tokens"], u.output, "{what}: {usage}");
                        assert_eq!(usage["total_tokens"], u.client_input + u.output, "{what}: {usage}");
                        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], u.client_cache_read, "{what}");
                    }
                }
                Client::Messages => {
                    let (text, stop, usage, _) = read_messages(&resp, &route, mode, what);
                    assert_eq!(text, vendor_text(&route), "{what}");
                    assert_eq!(stop, "end_turn", "{what}");
                    assert_eq!(usage["input_tokens"], u.client_input, "{what}: {usage}");
                    assert_eq!(usage["output_tokens"], u.output, "{what}: {usage}");
                    let cache_read = usage["cache_read_input_tokens"].as_u64().unwrap_or(0);
                    assert_eq!(cache_read, u.client_cache_read, "{what}: {usage}");
                }
                Client::Responses => {
                    let (text, status, usage, _) = read_responses(&resp, &route, mode, what);
                    assert_eq!((text, status.as_str()), (vendor_text(&route), "completed"), "{what}");
                    // Responses semantics: input counts the cache, as OpenAI's does.
                    assert_eq!(usage["input_tokens"], u.client_input, "{what}: {usage}");
                    assert_eq!(usage["output_tokens"], u.output, "{what}: {usage}");
                    assert_eq!(usage["total_tokens"], u.client_input + u.output, "{what}: {usage}");
                    assert_eq!(usage["input_tokens_details"]["cached_tokens"], u.client_cache_read, "{what}");
                    assert_eq!(usage["output_tokens_details"]["reasoning_tokens"], 0, "{what}");
                }
            }
            let sent = assert_provider_request(&upstream(stack, &trace), &route, mode.streams(), what);
            if route.anthropic_wire() && route.client == Client::Chat {
                assert_eq!(
                    sent["max_tokens"], 32000,
                    "{what}: the model's maximum, at most 32000, when the client sets none"
                );
                assert_eq!(sent["messages"], json!([{"role": "user", "content": "hi"}]), "{what}");
            }
            let e = assert_event(stack, &route, &trace, mode.streams());
            let p = &e["properties"];
            assert!(p["$ai_output_choices"].to_string().contains(&vendor_text(&route)), "{what}: {p}");
            assert!(p["$ai_input"].to_string().contains("hi"), "{what}");
        }
    }
}

#[test]
fn tool_calls_and_results_cross_every_route() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let chat_tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let anthropic_tools = json!([{"name": "get_weather", "description": "Weather now",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let responses_tools = json!([{"type": "function", "name": "get_weather", "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let question = json!([{"role": "user", "content": "What is the weather in Paris?"}]);
    for route in routes() {
        for &mode in Mode::for_client(route.client) {
            let what = format!("tools-{}-{mode:?}", route.name);
            let tools = match route.client {
                Client::Chat => json!({"tools": chat_tools}),
                Client::Messages => json!({"tools": anthropic_tools}),
                Client::Responses => json!({"tools": responses_tools}),
            };
            // 1. The model calls the tool: the provider got the tool in its own shape.
            let trace = format!("{what}-call");
            let resp = call(stack, &route, &trace, &[], &client_body(&route, mode, question.clone(), tools.clone()));
            assert_eq!(resp.status, 200, "{what}: {}", resp.body);
            let sent = assert_provider_request(&upstream(stack, &trace), &route, mode.streams(), &what);
            if route.anthropic_wire() {
                assert_eq!(sent["tools"], anthropic_tools, "{what}: Anthropic tool shape: {sent}");
            } else {
                assert_eq!(sent["tools"], chat_tools, "{what}: OpenAI tool shape: {sent}");
            }
            // The client got the call in its own shape, and sends the result back in it.
            let (history, id) = match route.client {
                Client::Chat => {
                    let (text, finish, _, calls) = read_chat(&resp, &route, mode, &what);
                    assert_eq!((text.as_str(), finish.as_str()), ("", "tool_calls"), "{what}");
                    let id =
                        calls[0]["id"].as_str().unwrap_or_else(|| panic!("{what}: no call id: {calls}")).to_string();
                    assert_eq!(calls[0]["type"], "function", "{what}: {calls}");
                    assert_eq!(calls[0]["function"]["name"], "get_weather", "{what}: {calls}");
                    let arguments: String =
                        calls.as_array().unwrap().iter().filter_map(|c| c["function"]["arguments"].as_str()).collect();
                    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"city": "Paris"}), "{what}");
                    let call = json!({"id": id, "type": "function",
                                      "function": {"name": "get_weather", "arguments": arguments}});
                    let history = json!([question[0], {"role": "assistant", "content": null, "tool_calls": [call]},
                                         {"role": "tool", "tool_call_id": id, "content": "sunny, 21C"}]);
                    (history, id)
                }
                Client::Messages => {
                    let (text, stop, _, blocks) = read_messages(&resp, &route, mode, &what);
                    assert_eq!((text.as_str(), stop.as_str()), ("", "tool_use"), "{what}");
                    let block = &blocks[0];
                    assert_eq!(block["type"], "tool_use", "{what}: {blocks}");
                    assert_eq!(block["name"], "get_weather", "{what}");
                    assert_eq!(block["input"], json!({"city": "Paris"}), "{what}");
                    let id = block["id"].as_str().unwrap().to_string();
                    let history = json!([question[0], {"role": "assistant", "content": blocks},
                        {"role": "user", "content": [
                            {"type": "tool_result", "tool_use_id": id, "content": "sunny, 21C"}]}]);
                    (history, id)
                }
                Client::Responses => {
                    let (text, status, _, output) = read_responses(&resp, &route, mode, &what);
                    assert_eq!((text.as_str(), status.as_str()), ("", "completed"), "{what}");
                    let call = &output[0];
                    assert_eq!(
                        (call["type"].as_str(), call["name"].as_str()),
                        (Some("function_call"), Some("get_weather"))
                    );
                    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
                    assert_eq!(arguments, json!({"city": "Paris"}), "{what}");
                    let id = call["call_id"].as_str().unwrap().to_string();
                    // The client appends the output items and the call's output.
                    let mut history = question.as_array().unwrap().clone();
                    history.extend(output.as_array().unwrap().iter().cloned());
                    history.push(json!({"type": "function_call_output", "call_id": id, "output": "sunny, 21C"}));
                    (Value::from(history), id)
                }
            };
            // 2. The tool's result goes back in the provider's shape; the model answers with text.
            let trace = format!("{what}-result");
            let resp = call(stack, &route, &trace, &[], &client_body(&route, mode, history, tools));
            assert_eq!(resp.status, 200, "{what}: {}", resp.body);
            let sent = assert_provider_request(&upstream(stack, &trace), &route, mode.streams(), &what);
            let turns = sent["messages"].as_array().unwrap();
            let (assistant, result) = (&turns[turns.len() - 2], &turns[turns.len() - 1]);
            if route.anthropic_wire() {
                let tool_use = json!({"type": "tool_use", "id": id, "name": "get_weather", "input": {"city": "Paris"}});
                assert_eq!(assistant["content"].as_array().unwrap().last(), Some(&tool_use), "{what}: {sent}");
                assert_eq!(result["role"], "user", "{what}");
                assert_eq!(result["content"][0]["type"], "tool_result", "{what}: {sent}");
                assert_eq!(result["content"][0]["tool_use_id"], id.as_str(), "{what}");
            } else {
                assert_eq!(assistant["tool_calls"][0]["id"], id.as_str(), "{what}: {sent}");
                let arguments = assistant["tool_calls"][0]["function"]["arguments"].as_str().unwrap();
                assert_eq!(serde_json::from_str::<Value>(arguments).unwrap(), json!({"city": "Paris"}), "{what}");
                assert_eq!(result["role"], "tool", "{what}: {sent}");
                assert_eq!(result["tool_call_id"], id.as_str(), "{what}");
            }
            let (text, stop) = match route.client {
                Client::Chat => {
                    let (text, finish, _, _) = read_chat(&resp, &route, mode, &what);
                    (text, finish == "stop")
                }
                Client::Messages => {
                    let (text, stop, _, _) = read_messages(&resp, &route, mode, &what);
                    (text, stop == "end_turn")
                }
                Client::Responses => {
                    let (text, status, _, _) = read_responses(&resp, &route, mode, &what);
                    (text, status == "completed")
                }
            };
            assert_eq!(text, "The weather is sunny, 21C.", "{what}");
            assert!(stop, "{what}: the final answer ends the turn");
        }
    }
}

#[test]
fn provider_errors_come_back_in_the_clients_format_with_their_status() {
    let stack = Stack::shared();
    let _g = stack.guard();
    for route in routes() {
        for &mode in Mode::for_client(route.client) {
            let trace = format!("err-{}-{mode:?}", route.name);
            let what = trace.as_str();
            let body = client_body(&route, mode, hello(), json!({}));
            let resp = call(stack, &route, &trace, &[("x-mock-status", "429")], &body);
            assert_eq!(resp.status, 429, "{what}: {}", resp.body);
            assert_eq!(resp.header("content-type"), Some("application/json"), "{what}");
            assert_eq!(resp.header("retry-after"), Some("1"), "{what}: the SDKs' retries read it");
            let body = resp.json();
            let message = match route.client {
                Client::Chat => {
                    assert!(body["error"]["type"].is_string(), "{what}: OpenAI error shape: {body}");
                    assert!(body.get("type").is_none(), "{what}: {body}");
                    body["error"]["message"].clone()
                }
                Client::Messages => {
                    assert_eq!(body["type"], "error", "{what}: Anthropic error shape: {body}");
                    assert_eq!(body["error"]["type"], "rate_limit_error", "{what}: {body}");
                    body["error"]["message"].clone()
                }
                Client::Responses => {
                    assert!(body["error"]["type"].is_string(), "{what}: OpenAI error shape: {body}");
                    assert!(body.get("type").is_none(), "{what}: {body}");
                    body["error"]["message"].clone()
                }
            };
            assert!(message.as_str().unwrap_or_default().contains("injected 429"), "{what}: {body}");
            upstream(stack, &trace);
            let p = stack.sink.event(&trace)["properties"].clone();
            assert_eq!((p["$ai_http_status"].clone(), p["$ai_is_error"].clone()), (json!(429), json!(true)), "{what}");
            assert_eq!(p["$ai_provider"], route.provider, "{what}");
            assert_eq!(p["$ai_api_format"], route.client.api_format(), "{what}");
            assert!(p.get("$ai_total_cost_usd").is_none(), "{what}: a failed call without usage costs nothing");
        }
    }
}

#[test]
fn bedrock_exceptions_become_anthropic_error_types() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let route = routes().into_iter().find(|r| r.name == "messages-bedrock-id").unwrap();
    // The mock names each error by exception in `x-amzn-errortype`, as Bedrock does.
    for (status, kind) in [
        ("400", "invalid_request_error"),
        ("403", "permission_error"),
        ("404", "not_found_error"),
        ("429", "rate_limit_error"),
        ("500", "api_error"),
        ("503", "overloaded_error"),
    ] {
        for mode in [Mode::Whole, Mode::Stream] {
            let trace = format!("bedrock-exception-{status}-{mode:?}");
            let body = client_body(&route, mode, hello(), json!({}));
            let resp = call(stack, &route, &trace, &[("x-mock-status", status)], &body);
            assert_eq!(resp.status.to_string(), status, "{trace}");
            let body = resp.json();
            assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some(kind)), "{trace}");
        }
    }
}

#[test]
fn errors_inside_translated_streams_end_the_clients_stream_in_its_format() {
    let stack = Stack::shared();
    let _g = stack.guard();
    for route in routes() {
        let trace = format!("stream-err-{}", route.name);
        let what = trace.as_str();
        let body = client_body(&route, Mode::Stream, hello(), json!({}));
        let resp = call(stack, &route, &trace, &[("x-mock-fault", "error-event")], &body);
        assert_eq!(resp.status, 200, "{what}: the stream had started");
        match route.client {
            Client::Chat => {
                assert!(!resp.body.contains("[DONE]"), "{what}: a failed stream is not complete:\n{}", resp.body);
                let last = data_lines(&resp.body).pop().unwrap();
                assert!(last["error"]["message"].is_string(), "{what}: {last}");
            }
            Client::Messages => {
                let (name, data) = named_events(&resp.body).pop().unwrap();
                assert_eq!(name, "error", "{what}: {}", resp.body);
                assert!(data["error"]["type"].is_string() && data["error"]["message"].is_string(), "{what}");
                assert!(!resp.body.contains("message_stop"), "{what}");
            }
            Client::Responses => {
                let mut events = named_events(&resp.body);
                let (last, failed) = events.pop().unwrap();
                let (error, _) = events.pop().unwrap();
                assert_eq!((error.as_str(), last.as_str()), ("error", "response.failed"), "{what}: {}", resp.body);
                assert_eq!(failed["response"]["status"], "failed", "{what}");
                assert!(failed["response"]["error"]["code"].is_string(), "{what}: {failed}");
                assert!(failed["response"]["error"]["message"].is_string(), "{what}: {failed}");
                assert!(!resp.body.contains("response.completed"), "{what}");
            }
        }
        let p = stack.sink.event(&trace)["properties"].clone();
        assert_eq!(p["$ai_is_error"], true, "{what}: {p}");
        assert_eq!(p["$ai_provider"], route.provider, "{what}");
    }
}

#[test]
fn requests_translate_field_by_field() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let chat_route = &routes()[0];
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "d",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let messages = json!([
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rainy"},
    ]);
    let extra = json!({"max_completion_tokens": 300, "temperature": 0.2, "top_p": 0.9, "stop": ["END"],
        "user": "end-user-7", "parallel_tool_calls": false, "tool_choice": "required", "tools": tools});
    let trace = "fields-chat-anthropic";
    let resp = call(stack, chat_route, trace, &[], &client_body(chat_route, Mode::Whole, messages, extra));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = body_of(&upstream(stack, trace));
    assert_eq!(
        sent["system"],
        json!([{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Answer in French."}])
    );
    assert_eq!((sent["max_tokens"].clone(), sent["temperature"].clone()), (json!(300), json!(0.2)));
    assert_eq!((sent["top_p"].clone(), sent["stop_sequences"].clone()), (json!(0.9), json!(["END"])));
    assert_eq!(sent["metadata"], json!({"user_id": "end-user-7"}));
    assert_eq!(sent["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
    assert_eq!(
        sent["tools"],
        json!([{"name": "get_weather", "description": "d",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}])
    );
    let turns = sent["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "user, assistant, one user turn with both results: {sent}");
    assert_eq!(
        turns[0]["content"],
        json!([{"type": "text", "text": "What is in this image?"},
               {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
               {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}])
    );
    assert_eq!(turns[1]["role"], "assistant");
    assert_eq!(
        turns[1]["content"][1],
        json!({"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Lyon"}})
    );
    assert_eq!(turns[2]["role"], "user");
    let results: Vec<(&str, &str)> = turns[2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["tool_use_id"].as_str().unwrap(), b["type"].as_str().unwrap()))
        .collect();
    assert_eq!(results, [("call_1", "tool_result"), ("call_2", "tool_result")]);
    assert_eq!(stack.sink.event(trace)["distinct_id"], "end-user-7");

    let messages_route = &routes()[3];
    let messages = json!([
        {"role": "user", "content": [{"type": "text", "text": "What is in this image?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
            {"type": "text", "text": "And tomorrow?"}]},
    ]);
    let extra = json!({"max_tokens": 300, "temperature": 0.2, "top_p": 0.9, "stop_sequences": ["END"],
        "metadata": {"user_id": "end-user-8"},
        "system": [{"type": "text", "text": "You are terse."},
                   {"type": "text", "text": "Answer in French.", "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "tools": [{"name": "get_weather", "description": "d",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]});
    let trace = "fields-messages-openai";
    let resp = call(stack, messages_route, trace, &[], &client_body(messages_route, Mode::Whole, messages, extra));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let sent = body_of(&upstream(stack, trace));
    assert!(!sent.to_string().contains("cache_control"), "OpenAI caches by itself: {sent}");
    assert_eq!(sent["max_completion_tokens"], 300);
    assert_eq!((sent["temperature"].clone(), sent["top_p"].clone()), (json!(0.2), json!(0.9)));
    assert_eq!((sent["stop"].clone(), sent["user"].clone()), (json!(["END"]), json!("end-user-8")));
    assert_eq!((sent["tool_choice"].clone(), sent["parallel_tool_calls"].clone()), (json!("required"), json!(false)));
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "d",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
    );
    let turns = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = turns.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"], "{sent}");
    assert_eq!(turns[0]["content"], "You are terse.\n\nAnswer in French.");
    assert_eq!(
        turns[1]["content"],
        json!([{"type": "text", "text": "What is in this image?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}])
    );
    assert_eq!(turns[2]["content"], "Let me check.");
    assert_eq!(turns[2]["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(turns[3], json!({"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}));
    assert_eq!(turns[4]["content"], "And tomorrow?");
    assert_eq!(stack.sink.event(trace)["distinct_id"], "end-user-8");
}

#[test]
fn untranslatable_requests_are_refused_in_the_clients_format() {
    let stack = Stack::shared();
    let _g = stack.guard();
    // The gateway keeps no state: what would need it gets a 400 naming the field, before any provider call.
    for (model, headers) in [
        ("claude-sonnet-4-5", &[][..]),
        ("gemini-2.5-flash", &[][..]),
        (SONNET_ID, &[][..]),
        ("claude-sonnet-4-5", BEDROCK_HEADER),
    ] {
        for (field, value, needle) in [
            ("previous_response_id", json!("resp_1"), "'previous_response_id' is not supported"),
            ("store", json!(true), "'store': true is not supported"),
            ("tools", json!([{"type": "file_search", "vector_store_ids": ["vs_1"]}]), "type 'file_search'"),
        ] {
            let marker = format!("responses-{model}-{}-{field}", headers.len());
            let mut all = vec![("x-test-marker", marker.as_str())];
            all.extend_from_slice(headers);
            let mut body = json!({"model": model, "input": "hi"});
            body[field] = value;
            let resp = stack.post("/v1/responses", &all, &body.to_string());
            assert_eq!(resp.status, 400, "{marker}: {}", resp.body);
            let body = resp.json();
            assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
            assert_eq!(body["error"]["code"], "unsupported_for_provider", "{body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{marker}: {message}");
            assert!(stack.mock.requests().iter().all(|r| r.header("x-test-marker") != Some(marker.as_str())));
        }
    }
    // Features the provider's API cannot express: 400 in the client's own error format.
    let resp = stack.post(
        "/v1/chat/completions",
        &[],
        &json!({"model": "claude-sonnet-4-5", "n": 2, "messages": hello()}).to_string(),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.json()["error"]["message"].as_str().unwrap().contains("'n'"), "{}", resp.body);
    let resp = stack.post(
        "/v1/messages",
        &[],
        &json!({"model": "gpt-4o", "max_tokens": 9, "messages": hello(),
                "tools": [{"type": "web_search_20250305", "name": "web_search"}]})
        .to_string(),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    let body = resp.json();
    assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some("invalid_request_error")));
    // A model Bedrock has no id for, sent to Bedrock by the header.
    let resp = stack.post(
        "/v1/messages",
        BEDROCK_HEADER,
        &json!({"model": "claude-unknown-9", "max_tokens": 9, "messages": hello()}).to_string(),
    );
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert!(resp.json()["error"]["message"].as_str().unwrap().contains("Bedrock"), "{}", resp.body);
}

/// A Chat client's tool calls, from a message's `tool_calls` or from stream
/// deltas (grouped by `index`, or, where a provider leaves it out, a delta
/// with an `id` starting the next call): (id, name, parsed arguments).
fn chat_calls(calls: &Value) -> Vec<(String, String, Value)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for call in calls.as_array().into_iter().flatten() {
        let slot = match call["index"].as_u64() {
            Some(i) => i as usize,
            None if call["id"].is_string() => out.len(),
            None => out.len().saturating_sub(1),
        };
        if out.len() <= slot {
            out.resize(slot + 1, Default::default());
        }
        let entry = &mut out[slot];
        if let Some(id) = call["id"].as_str() {
            entry.0 = id.to_string();
        }
        if let Some(name) = call["function"]["name"].as_str() {
            entry.1 = name.to_string();
        }
        entry.2.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
    }
    out.into_iter()
        .map(|(id, name, args)| {
            let args = serde_json::from_str(&args).unwrap_or_else(|e| panic!("arguments {args:?}: {e}"));
            (id, name, args)
        })
        .collect()
}

fn two_tools(client: Client) -> Value {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
    match client {
        Client::Chat => json!({"tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": schema}},
            {"type": "function", "function": {"name": "get_time", "parameters": schema}}]}),
        Client::Messages => json!({"tools": [
            {"name": "get_weather", "input_schema": schema}, {"name": "get_time", "input_schema": schema}]}),
        Client::Responses => json!({"tools": [
            {"type": "function", "name": "get_weather", "parameters": schema},
            {"type": "function", "name": "get_time", "parameters": schema}]}),
    }
}

#[test]
fn text_then_parallel_calls_survive_translation_even_when_cut_into_small_pieces() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let question = json!([{"role": "user", "content": "Weather and time in Paris?"}]);
    let want = [("get_weather", json!({"city": "Paris"})), ("get_time", json!({"city": "Lyon"}))];
    for route in routes() {
        for &mode in Mode::for_client(route.client) {
            // Every SSE event and event-stream frame arrives in 7-byte pieces.
            let cut = [("x-mock-tool-calls", "all"), ("x-mock-chunk-bytes", "7"), ("x-mock-chunk-delay-ms", "1")];
            let trace = format!("parallel-{}-{mode:?}", route.name);
            let what = trace.as_str();
            let body = client_body(&route, mode, question.clone(), two_tools(route.client));
            let resp = call(stack, &route, &trace, &cut, &body);
            assert_eq!(resp.status, 200, "{what}: {}", resp.body);
            let calls: Vec<(String, String, Value)> = match route.client {
                Client::Chat => {
                    let (text, finish, _, calls) = read_chat(&resp, &route, mode, what);
                    assert_eq!((text.as_str(), finish.as_str()), ("Let me check.", "tool_calls"), "{what}");
                    chat_calls(&calls)
                }
                Client::Messages => {
                    let (text, stop, _, blocks) = read_messages(&resp, &route, mode, what);
                    assert_eq!((text.as_str(), stop.as_str()), ("Let me check.", "tool_use"), "{what}");
                    assert_eq!(blocks[0]["type"], "text", "{what}: the text comes first: {blocks}");
                    let blocks = &blocks.as_array().unwrap()[1..];
                    assert!(blocks.iter().all(|b| b["type"] == "tool_use"), "{what}: {blocks:?}");
                    blocks
                        .iter()
                        .map(|b| {
                            (
                                b["id"].as_str().unwrap().to_string(),
                                b["name"].as_str().unwrap().into(),
                                b["input"].clone(),
                            )
                        })
                        .collect()
                }
                Client::Responses => {
                    let (text, status, _, output) = read_responses(&resp, &route, mode, what);
                    assert_eq!((text.as_str(), status.as_str()), ("Let me check.", "completed"), "{what}");
                    assert_eq!(output[0]["type"], "message", "{what}: the text comes first: {output}");
                    let items = &output.as_array().unwrap()[1..];
                    assert!(items.iter().all(|i| i["type"] == "function_call"), "{what}: {items:?}");
                    items
                        .iter()
                        .map(|i| {
                            let args = serde_json::from_str(i["arguments"].as_str().unwrap()).unwrap();
                            (i["call_id"].as_str().unwrap().to_string(), i["name"].as_str().unwrap().into(), args)
                        })
                        .collect()
                }
            };
            let got: Vec<(&str, Value)> = calls.iter().map(|(_, name, args)| (name.as_str(), args.clone())).collect();
            assert_eq!(got, want, "{what}");
            assert!(calls.iter().all(|(id, _, _)| !id.is_empty()) && calls[0].0 != calls[1].0, "{what}: {calls:?}");
            let p = stack.sink.event(&trace)["properties"].clone();
            assert_eq!((p["$ai_is_error"].clone(), p["$ai_provider"].clone()), (json!(false), json!(route.provider)));
            assert!(p["$ai_output_tokens"].as_u64() > Some(0), "{what}: usage read from the cut stream: {p}");
        }
    }
}

/// Request bodies recorded from Codex CLI 0.171 and Claude Code 2.1.332 (long
/// strings cut), sent as the clients send them through Envoy to every
/// provider behind a translation: each client gets a complete stream in its
/// own format, and each call its event.
#[test]
fn what_codex_and_claude_code_send_reaches_every_provider() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let codex = [
        ("codex-hi", include_str!("../../../src/translate/tests/agents/codex.gpt-5.json")),
        ("codex-tool-result", include_str!("../../../src/translate/tests/agents/codex.exec_command.json")),
        ("codex-apply-patch", include_str!("../../../src/translate/tests/agents/codex.apply_patch.json")),
    ];
    let claude_code = [
        ("cc-hi", include_str!("../../../src/translate/tests/agents/claude-code.gpt-5.json")),
        ("cc-tool-result", include_str!("../../../src/translate/tests/agents/claude-code.bash.json")),
        ("cc-tool-search", include_str!("../../../src/translate/tests/agents/claude-code.toolsearch.json")),
    ];
    let route = |client, model: &'static str, headers, provider, upstream| Route {
        name: "agent",
        client,
        model,
        headers,
        provider,
        upstream,
        usage: gemini_usage(),
    };
    let codex_routes = [
        route(Client::Responses, "claude-sonnet-4-6", &[][..], "anthropic", Upstream::Anthropic),
        route(Client::Responses, "gemini-2.5-flash", &[][..], "gemini", Upstream::Gemini),
        route(Client::Responses, "claude-haiku-4-5", BEDROCK_HEADER, "bedrock", Upstream::Bedrock("")),
    ];
    let codex_headers =
        [("originator", "codex_exec"), ("user-agent", "codex_exec/0.171.0"), ("accept", "text/event-stream")];
    for (name, body) in codex {
        for r in &codex_routes {
            let mut body: Value = serde_json::from_str(body).unwrap();
            body["model"] = json!(r.model);
            let trace = format!("{name}-{}", r.model);
            let resp = call(stack, r, &trace, &codex_headers, &body.to_string());
            assert_eq!(resp.status, 200, "{trace}: {}", resp.body);
            let (_, status, usage, output) = read_responses(&resp, r, Mode::Stream, &trace);
            assert_eq!(status, "completed", "{trace}");
            assert!(!output.as_array().unwrap().is_empty(), "{trace}: {output}");
            assert!(usage["total_tokens"].as_u64() > Some(0), "{trace}: {usage}");
            let p = stack.sink.event(&trace)["properties"].clone();
            assert_eq!(
                (p["$ai_provider"].as_str(), p["$ai_api_format"].as_str()),
                (Some(r.provider), Some("openai_responses"))
            );
            assert_eq!(p["$ai_is_error"], false, "{trace}: {p}");
        }
    }
    let cc_routes = [
        route(Client::Messages, "gpt-5", &[][..], "openai", Upstream::OpenAi),
        route(Client::Messages, "gemini-2.5-flash", &[][..], "gemini", Upstream::Gemini),
    ];
    let cc_headers = [
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27"),
        ("x-app", "cli"),
        ("user-agent", "claude-cli/2.1.332 (external, sdk-cli)"),
    ];
    for (name, body) in claude_code {
        for r in &cc_routes {
            let mut body: Value = serde_json::from_str(body).unwrap();
            body["model"] = json!(r.model);
            let in_place = body["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "system").count();
            let trace = format!("{name}-{}", r.model);
            let mut headers = vec![("x-posthog-trace-id", trace.as_str()), ("x-test-marker", trace.as_str())];
            headers.extend_from_slice(&cc_headers);
            // Claude Code's own path.
            let resp = stack.post("/v1/messages?beta=true", &headers, &body.to_string());
            assert_eq!(resp.status, 200, "{trace}: {}", resp.body);
            let (_, stop, _, _) = read_messages(&resp, r, Mode::Stream, &trace);
            assert!(!stop.is_empty(), "{trace}");
            let sent = body_of(&upstream(stack, &trace));
            let roles: Vec<&str> =
                sent["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
            let systems = roles.iter().filter(|r| **r == "system").count();
            // Gemini's endpoint keeps only a conversation's last system message: all in one, first.
            let want = if r.provider == "gemini" { 1 } else { 1 + in_place };
            assert_eq!(systems, want, "{trace}: the system prompt, and system messages in place: {roles:?}");
            assert!(!sent.to_string().contains("cache_control"), "{trace}");
            let p = stack.sink.event(&trace)["properties"].clone();
            assert_eq!(
                (p["$ai_provider"].as_str(), p["$ai_api_format"].as_str()),
                (Some(r.provider), Some("anthropic_messages"))
            );
        }
    }
    // On Bedrock, only the beta flags Bedrock takes, in the body under its names.
    let (_, body) = claude_code[0];
    let trace = "cc-hi-bedrock";
    let mut headers = vec![("x-posthog-trace-id", trace), ("x-test-marker", trace), ("x-posthog-provider", "bedrock")];
    headers.extend_from_slice(&cc_headers);
    let mut body: Value = serde_json::from_str(body).unwrap();
    body["model"] = json!("claude-sonnet-4-5");
    let resp = stack.post("/v1/messages?beta=true", &headers, &body.to_string());
    assert_eq!(resp.status, 200, "{trace}: {}", resp.body);
    let request = upstream(stack, trace);
    let sent = body_of(&request);
    assert_eq!(sent["anthropic_beta"], json!(["context-management-2025-06-27"]), "{trace}");
    assert!(request.header("anthropic-beta").is_none(), "{trace}: no header for Bedrock");
    assert_eq!(stack.sink.event(trace)["properties"]["$ai_provider"], "bedrock");
}

#[test]
fn gemini_tool_call_streams_reach_anthropic_clients_as_tool_use() {
    let stack = Stack::shared();
    let _g = stack.guard();
    // Gemini streams each call whole, without `index`, and finishes with "stop".
    let route = routes().into_iter().find(|r| r.name == "messages-gemini").unwrap();
    let trace = "gemini-quirks-messages";
    let body = client_body(&route, Mode::Stream, hello(), two_tools(Client::Messages));
    let quirks = [("x-mock-quirks", "gemini"), ("x-mock-tool-calls", "all")];
    let resp = call(stack, &route, trace, &quirks, &body);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let (text, stop, _, blocks) = read_messages(&resp, &route, Mode::Stream, trace);
    assert_eq!((text.as_str(), stop.as_str()), ("Let me check.", "tool_use"), "{}", resp.body);
    let inputs: Vec<(&str, &Value)> =
        blocks.as_array().unwrap()[1..].iter().map(|b| (b["name"].as_str().unwrap(), &b["input"])).collect();
    assert_eq!(inputs, [("get_weather", &json!({"city": "Paris"})), ("get_time", &json!({"city": "Lyon"}))]);
}

/// Gemini streams tool calls without `index` and ends them with
/// `finish_reason: "stop"` (googleapis/python-genai#2868); without the
/// gateway's fix the OpenAI SDK's stream helper raises a TypeError and agent
/// loops waiting for `tool_calls` stop.
#[test]
fn gemini_tool_call_streams_reach_openai_clients_in_openai_shape() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let body = json!({"model": "gemini-2.5-flash", "stream": true, "messages": hello(),
                      "tools": two_tools(Client::Chat)["tools"]});
    let headers = [("x-mock-quirks", "gemini"), ("x-mock-tool-calls", "all")];
    let resp = stack.post("/v1/chat/completions", &headers, &body.to_string());
    assert_eq!(resp.status, 200, "{}", resp.body);
    let chunks = data_lines(&resp.body);
    let deltas: Vec<&Value> =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array()).flatten().collect();
    assert_eq!(deltas.len(), 2, "{}", resp.body);
    // OpenAI requires `index` on every streamed tool call delta.
    assert!(deltas.iter().all(|d| d["index"].is_u64()), "tool call deltas without index: {deltas:?}");
    let finish: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect();
    // A turn that calls tools finishes with "tool_calls".
    assert_eq!(finish, ["tool_calls"], "{}", resp.body);
}

#[test]
fn save_mode_upgrades_translated_anthropic_bodies_and_skips_bedrock() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let key = "phx_translation_save_mode";
    stack.store.put_key(key, &json!({"team_id": 9, "scopes": ["llm_gateway:read"], "cost_controls": true}));
    let eph = json!({"type": "ephemeral"});
    let chat = json!({"model": "claude-sonnet-4-6", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "sys", "cache_control": eph}]},
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": eph}]}]});
    let messages = json!({"model": "claude-sonnet-4-6", "max_tokens": 5,
        "system": [{"type": "text", "text": "sys", "cache_control": eph}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": eph}]}]});
    // (client path, body, provider header, provider path, the breakpoints' TTL at the provider)
    let on_bedrock = "/model/global.anthropic.claude-sonnet-4-6/invoke";
    let cases = [
        ("/posthog_code/v1/chat/completions", &chat, None, "/v1/messages", Some("1h")),
        ("/posthog_code/v1/chat/completions", &chat, Some("bedrock"), on_bedrock, None),
        ("/posthog_code/v1/messages", &messages, Some("bedrock"), on_bedrock, None),
    ];
    for (i, (path, body, provider, upstream_path, ttl)) in cases.into_iter().enumerate() {
        let marker = format!("save-mode-translated-{i}");
        let mut headers = vec![("x-api-key", key), ("x-test-marker", marker.as_str()), ("x-posthog-trace-id", &marker)];
        headers.extend(provider.map(|p| ("x-posthog-provider", p)));
        let resp = stack.post(path, &headers, &body.to_string());
        assert_eq!(resp.status, 200, "{marker}: {}", resp.body);
        let req = upstream(stack, &marker);
        assert_eq!(req.route(), upstream_path, "{marker}");
        let sent = body_of(&req);
        assert_eq!(sent["system"][0]["cache_control"]["ttl"].as_str(), ttl, "{marker}: {sent}");
        assert_eq!(sent["messages"][0]["content"][0]["cache_control"]["ttl"].as_str(), ttl, "{marker}: {sent}");
        let p = stack.sink.event(&marker)["properties"].clone();
        match ttl {
            Some(_) => assert_eq!(
                (p["$ai_save_mode"].clone(), p["$ai_cache_ttl_upgraded_breakpoints"].clone()),
                (json!(true), json!(2))
            ),
            None => assert_eq!(
                (p["$ai_save_mode"].clone(), p["$ai_save_mode_reason"].clone()),
                (json!(false), json!("bedrock_skip"))
            ),
        }
    }
}

// ---------------------------------------------------------------- official SDKs

/// What every SDK script below uses: `case` runs one case into the summary
/// `out` (an exception is reported, not raised); `headers` marks its trace,
/// under the script's `TRACE_PREFIX`.
const SDK_HARNESS: &str = r#"
out = {}

def case(name, fn):
    try:
        out[name] = fn()
    except Exception as e:
        out[name] = {"exception": type(e).__name__, "message": str(e)[:500]}

def headers(extra, name):
    return {**extra, "x-posthog-trace-id": TRACE_PREFIX + name}
"#;

/// Runs one of the SDK scripts below against the gateway; returns its JSON summary.
fn run_sdk_script(stack: &Stack, script: &str) -> Value {
    let python = repo_root().join(".venv/bin/python");
    let out = Command::new(&python)
        .args(["-W", "ignore", "-c", &format!("{SDK_HARNESS}{script}")])
        .env("GATEWAY_URL", stack.url(""))
        .env("KEY", TEST_KEY)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {stdout}"))
}

/// The cases of an SDK summary that raised, with the exception, so one run names every failure.
fn failures(summary: &Value) -> Vec<String> {
    summary
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.get("exception").is_some())
        .map(|(k, v)| format!("{k}: {v}"))
        .collect()
}

/// Each provider's models, under the summary's key prefix: (key, greeting vendor, `$ai_provider`).
const SDK_PROVIDERS: [(&str, &str, &str); 5] = [
    ("openai", "openai", "openai"),
    ("gemini", "gemini", "gemini"),
    ("anthropic", "anthropic", "anthropic"),
    ("bedrock", "bedrock", "bedrock"),
    ("bedrock_header", "bedrock", "bedrock"),
];

#[test]
fn the_openai_sdk_calls_every_providers_models() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let s = run_sdk_script(stack, OPENAI_SDK_SCRIPT);
    assert_eq!(failures(&s), Vec::<String>::new(), "{s}");
    for (key, vendor, provider) in SDK_PROVIDERS {
        let hello = format!("Hello from mock-{vendor}.");
        let case = |name: &str| s[format!("{key}-{name}")].clone();
        let plain = case("plain");
        assert_eq!(
            (plain["object"].as_str(), plain["text"].as_str(), plain["finish"].as_str()),
            (Some("chat.completion"), Some(hello.as_str()), Some("stop")),
            "{key}: {plain}"
        );
        assert!(plain["prompt_tokens"].as_u64() > Some(0), "{key}: {plain}");
        for (name, usage_chunks) in [("stream", 0), ("stream-usage", 1)] {
            let stream = case(name);
            assert_eq!(stream["objects"], json!(["chat.completion.chunk"]), "{key}: {stream}");
            assert_eq!(stream["text"], hello.as_str(), "{key}: {stream}");
            assert_eq!(stream["finish"], json!(["stop"]), "{key}: {stream}");
            assert_eq!(stream["usage"].as_array().map(Vec::len), Some(usage_chunks), "{key} {name}: {stream}");
        }
        for name in ["tools", "tools-stream"] {
            let tools = case(name);
            assert_eq!(tools["finish"], "tool_calls", "{key} {name}: {tools}");
            assert_eq!(tools["tool"], "get_weather", "{key} {name}: {tools}");
            assert_eq!(tools["arguments"], json!({"city": "Paris"}), "{key} {name}: {tools}");
            assert_eq!(tools["text"], "The weather is sunny, 21C.", "{key} {name}: {tools}");
        }
        let limited = case("429");
        assert_eq!(limited["status"], 429, "{key}: RateLimitError expected: {limited}");
        assert!(limited["message"].as_str().unwrap_or_default().contains("injected 429"), "{key}: {limited}");
        // The gateway recorded each call with the provider and the client's format.
        let p = stack.sink.event(&format!("sdk-openai-{key}-tools-stream-result"))["properties"].clone();
        assert_eq!((p["$ai_provider"].as_str(), p["$ai_api_format"].as_str()), (Some(provider), Some("openai_chat")));
        assert!(p["$ai_total_cost_usd"].as_f64() > Some(0.0), "{key}: {p}");
    }
}

#[test]
fn the_anthropic_sdk_calls_every_providers_models() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let s = run_sdk_script(stack, ANTHROPIC_SDK_SCRIPT);
    assert_eq!(failures(&s), Vec::<String>::new(), "{s}");
    for (key, vendor, provider) in SDK_PROVIDERS {
        let hello = format!("Hello from mock-{vendor}.");
        let case = |name: &str| s[format!("{key}-{name}")].clone();
        let plain = case("plain");
        assert_eq!(
            (plain["type"].as_str(), plain["text"].as_str(), plain["stop"].as_str()),
            (Some("message"), Some(hello.as_str()), Some("end_turn")),
            "{key}: {plain}"
        );
        assert!(plain["usage"]["input"].as_u64() > Some(0) && plain["usage"]["output"].as_u64() > Some(0), "{plain}");
        let stream = case("stream");
        assert_eq!(
            (stream["text"].as_str(), stream["final_text"].as_str()),
            (Some(&*hello), Some(&*hello)),
            "{stream}"
        );
        assert_eq!(stream["stop"], "end_turn", "{key}: {stream}");
        assert_eq!(stream["usage"], plain["usage"], "{key}: streamed usage as the SDK accumulates it");
        let raw = case("raw-stream");
        assert_eq!(raw, json!({"first": "message_start", "last": "message_stop", "text": hello}), "{key}");
        for name in ["tools", "tools-stream"] {
            let tools = case(name);
            assert_eq!(tools["stop"], "tool_use", "{key} {name}: {tools}");
            assert_eq!(tools["tool"], "get_weather", "{key} {name}: {tools}");
            assert_eq!(tools["input"], json!({"city": "Paris"}), "{key} {name}: {tools}");
            assert_eq!(tools["text"], "The weather is sunny, 21C.", "{key} {name}: {tools}");
            assert_eq!(tools["final_stop"], "end_turn", "{key} {name}: {tools}");
        }
        let limited = case("429");
        assert_eq!(limited["status"], 429, "{key}: RateLimitError expected: {limited}");
        assert_eq!(limited["type"], "rate_limit_error", "{key}: {limited}");
        let p = stack.sink.event(&format!("sdk-anthropic-{key}-tools-stream-result"))["properties"].clone();
        let want = (Some(provider), Some("anthropic_messages"));
        assert_eq!((p["$ai_provider"].as_str(), p["$ai_api_format"].as_str()), want, "{key}");
        assert!(p["$ai_total_cost_usd"].as_f64() > Some(0.0), "{key}: {p}");
    }
}

#[test]
fn the_openai_sdk_responses_api_calls_every_providers_models() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let s = run_sdk_script(stack, RESPONSES_SDK_SCRIPT);
    assert_eq!(failures(&s), Vec::<String>::new(), "{s}");
    for (key, vendor, provider) in SDK_PROVIDERS {
        let hello = format!("Hello from mock-{vendor}.");
        let case = |name: &str| s[format!("{key}-{name}")].clone();
        let plain = case("plain");
        assert_eq!(
            (plain["object"].as_str(), plain["status"].as_str(), plain["text"].as_str()),
            (Some("response"), Some("completed"), Some(hello.as_str())),
            "{key}: {plain}"
        );
        assert!(plain["input_tokens"].as_u64() > Some(0) && plain["output_tokens"].as_u64() > Some(0), "{plain}");
        let stream = case("stream");
        assert_eq!(
            (stream["first"].as_str(), stream["last"].as_str(), stream["in_order"].as_bool()),
            (Some("response.created"), Some("response.completed"), Some(true)),
            "{key}: {stream}"
        );
        assert_eq!(
            (stream["text"].as_str(), stream["final_text"].as_str()),
            (Some(&*hello), Some(&*hello)),
            "{stream}"
        );
        assert_eq!(stream["usage"], json!({"input": plain["input_tokens"], "output": plain["output_tokens"]}), "{key}");
        let helper = case("helper");
        assert_eq!(helper, json!({"text": hello, "final_text": hello, "status": "completed"}), "{key}");
        let limited = case("429");
        assert_eq!(limited["status"], 429, "{key}: RateLimitError expected: {limited}");
        if provider == "openai" {
            continue; // the mock's Responses API answers with text only
        }
        for name in ["tools", "tools-stream"] {
            let tools = case(name);
            assert_eq!(tools["tool"], "get_weather", "{key} {name}: {tools}");
            assert_eq!(tools["arguments"], json!({"city": "Paris"}), "{key} {name}: {tools}");
            assert_eq!(tools["text"], "The weather is sunny, 21C.", "{key} {name}: {tools}");
            assert_eq!(tools["final_status"], "completed", "{key} {name}: {tools}");
        }
        let p = stack.sink.event(&format!("sdk-responses-{key}-tools-stream-result"))["properties"].clone();
        let want = (Some(provider), Some("openai_responses"));
        assert_eq!((p["$ai_provider"].as_str(), p["$ai_api_format"].as_str()), want, "{key}");
        assert!(p["$ai_total_cost_usd"].as_f64() > Some(0.0), "{key}: {p}");
        assert!(p["$ai_input_tokens"].as_u64() > Some(0), "{key}: {p}");
    }
}

/// The OpenAI SDK against the gateway: each provider's model whole, streamed
/// (with and without the usage chunk), a tool round trip whole and streamed
/// (the SDK's `chat.completions.stream` helper accumulates the deltas), and a
/// provider 429. Every case reports; an exception is reported, not raised.
const OPENAI_SDK_SCRIPT: &str = r#"
import json, os
import openai

client = openai.OpenAI(base_url=os.environ["GATEWAY_URL"] + "/v1", api_key=os.environ["KEY"], max_retries=0, timeout=30)
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
MODELS = {
    "openai": ("gpt-4o-mini", {}),
    "gemini": ("gemini-2.5-flash", {}),
    "anthropic": ("claude-sonnet-4-5", {}),
    "bedrock": ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", {}),
    "bedrock_header": ("claude-haiku-4-5", {"x-posthog-provider": "bedrock"}),
}
TRACE_PREFIX = "sdk-openai-"

for provider, (model, extra) in MODELS.items():
    ask = [{"role": "user", "content": "Hello"}]

    def plain(name=provider + "-plain"):
        r = client.chat.completions.create(model=model, messages=ask, extra_headers=headers(extra, name))
        c = r.choices[0]
        return {"object": r.object, "model": r.model, "text": c.message.content, "finish": c.finish_reason,
                "prompt_tokens": r.usage.prompt_tokens, "completion_tokens": r.usage.completion_tokens}

    def streamed(usage, name):
        chunks = list(client.chat.completions.create(
            model=model, messages=ask, stream=True, extra_headers=headers(extra, name),
            **({"stream_options": {"include_usage": True}} if usage else {})))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        usages = [c.usage.model_dump(exclude_none=True) for c in chunks if c.usage]
        return {"objects": sorted({c.object for c in chunks}), "text": text, "finish": finish, "usage": usages}

    def tools_plain(name=provider + "-tools"):
        msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
        first = client.chat.completions.create(model=model, messages=msgs, tools=TOOLS,
                                               extra_headers=headers(extra, name + "-call"))
        msg = first.choices[0].message
        call = msg.tool_calls[0]
        msgs.append(msg)  # the SDK's own message object, as its docs show
        msgs.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
        final = client.chat.completions.create(model=model, messages=msgs, tools=TOOLS,
                                               extra_headers=headers(extra, name + "-result"))
        return {"finish": first.choices[0].finish_reason, "tool": call.function.name,
                "arguments": json.loads(call.function.arguments), "id": call.id,
                "text": final.choices[0].message.content, "final_finish": final.choices[0].finish_reason}

    def tools_stream(name=provider + "-tools-stream"):
        msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
        with client.chat.completions.stream(model=model, messages=msgs, tools=TOOLS,
                                            extra_headers=headers(extra, name + "-call")) as s:
            first = s.get_final_completion()
        call = first.choices[0].message.tool_calls[0]
        msgs.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function",
             "function": {"name": call.function.name, "arguments": call.function.arguments}}]})
        msgs.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
        chunks = list(client.chat.completions.create(model=model, messages=msgs, tools=TOOLS, stream=True,
                                                     extra_headers=headers(extra, name + "-result")))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return {"finish": first.choices[0].finish_reason, "tool": call.function.name,
                "arguments": json.loads(call.function.arguments), "text": text}

    def rate_limited():
        try:
            client.chat.completions.create(model=model, messages=ask, extra_headers={**extra, "x-mock-status": "429"})
        except openai.RateLimitError as e:
            return {"status": e.status_code, "message": e.message, "type": (e.body or {}).get("type")}
        return {"status": 200}

    case(provider + "-plain", plain)
    case(provider + "-stream", lambda: streamed(False, provider + "-stream"))
    case(provider + "-stream-usage", lambda: streamed(True, provider + "-stream-usage"))
    case(provider + "-tools", tools_plain)
    case(provider + "-tools-stream", tools_stream)
    case(provider + "-429", rate_limited)

print(json.dumps(out, sort_keys=True))
"#;

/// The OpenAI SDK's Responses API against the gateway: each provider's model
/// whole, as raw stream events (`create(stream=True)`), through the SDK's
/// `responses.stream` helper (which needs every item added before its deltas
/// and the completed response), a function-call round trip whole and
/// streamed (the client appends the output items and the call's output, as
/// OpenAI's guide shows), and a provider 429.
const RESPONSES_SDK_SCRIPT: &str = r#"
import json, os
import openai

client = openai.OpenAI(base_url=os.environ["GATEWAY_URL"] + "/v1", api_key=os.environ["KEY"], max_retries=0, timeout=30)
TOOLS = [{"type": "function", "name": "get_weather", "description": "Current weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
MODELS = {
    "openai": ("gpt-4o-mini", {}),
    "gemini": ("gemini-2.5-flash", {}),
    "anthropic": ("claude-sonnet-4-5", {}),
    "bedrock": ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", {}),
    "bedrock_header": ("claude-haiku-4-5", {"x-posthog-provider": "bedrock"}),
}
TRACE_PREFIX = "sdk-responses-"

for provider, (model, extra) in MODELS.items():
    def plain(name=provider + "-plain"):
        r = client.responses.create(model=model, input="Hello", max_output_tokens=256, store=False,
                                    extra_headers=headers(extra, name))
        return {"object": r.object, "model": r.model, "status": r.status, "text": r.output_text,
                "input_tokens": r.usage.input_tokens, "output_tokens": r.usage.output_tokens}

    def streamed(name=provider + "-stream"):
        events = list(client.responses.create(model=model, input="Hello", stream=True,
                                              extra_headers=headers(extra, name)))
        done = events[-1].response
        return {"first": events[0].type, "last": events[-1].type,
                "in_order": [e.sequence_number for e in events] == list(range(len(events))),
                "text": "".join(e.delta for e in events if e.type == "response.output_text.delta"),
                "final_text": done.output_text,
                "usage": {"input": done.usage.input_tokens, "output": done.usage.output_tokens}}

    def helper(name=provider + "-helper"):
        with client.responses.stream(model=model, input="Hello", extra_headers=headers(extra, name)) as s:
            text = "".join(e.delta for e in s if e.type == "response.output_text.delta")
            final = s.get_final_response()
        return {"text": text, "final_text": final.output_text, "status": final.status}

    def tools(stream, name):
        question = [{"role": "user", "content": "What is the weather in Paris?"}]
        def ask(items, suffix):
            if stream:
                with client.responses.stream(model=model, input=items, tools=TOOLS,
                                             extra_headers=headers(extra, name + suffix)) as s:
                    return s.get_final_response()
            return client.responses.create(model=model, input=items, tools=TOOLS,
                                           extra_headers=headers(extra, name + suffix))
        first = ask(question, "-call")
        call = next(i for i in first.output if i.type == "function_call")
        history = question + list(first.output) + [
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}]
        final = ask(history, "-result")
        return {"tool": call.name, "arguments": json.loads(call.arguments), "text": final.output_text,
                "final_status": final.status}

    def rate_limited():
        try:
            client.responses.create(model=model, input="Hello", extra_headers={**extra, "x-mock-status": "429"})
        except openai.RateLimitError as e:
            return {"status": e.status_code, "message": e.message}
        return {"status": 200}

    case(provider + "-plain", plain)
    case(provider + "-stream", streamed)
    case(provider + "-helper", helper)
    case(provider + "-429", rate_limited)
    if provider != "openai":
        case(provider + "-tools", lambda: tools(False, provider + "-tools"))
        case(provider + "-tools-stream", lambda: tools(True, provider + "-tools-stream"))

print(json.dumps(out, sort_keys=True))
"#;

/// The Anthropic SDK against the gateway: each provider's model whole,
/// streamed through the SDK's `messages.stream` helper (which checks the event
/// order and accumulates the message) and as raw events, a tool round trip
/// whole and streamed, and a provider 429.
const ANTHROPIC_SDK_SCRIPT: &str = r#"
import json, os
import anthropic

client = anthropic.Anthropic(base_url=os.environ["GATEWAY_URL"], api_key=os.environ["KEY"], max_retries=0, timeout=30)
TOOLS = [{"name": "get_weather", "description": "Current weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
MODELS = {
    "anthropic": ("claude-sonnet-4-5", {}),
    "openai": ("gpt-4o", {}),
    "gemini": ("gemini-2.5-flash", {}),
    "bedrock": ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", {}),
    "bedrock_header": ("claude-haiku-4-5", {"x-posthog-provider": "bedrock"}),
}
TRACE_PREFIX = "sdk-anthropic-"

def text_of(message):
    return "".join(b.text for b in message.content if b.type == "text")

def usage_of(message):
    return {"input": message.usage.input_tokens, "output": message.usage.output_tokens}

for provider, (model, extra) in MODELS.items():
    ask = [{"role": "user", "content": "Hello"}]
    question = [{"role": "user", "content": "What is the weather in Paris?"}]

    def plain(name=provider + "-plain"):
        m = client.messages.create(model=model, max_tokens=256, messages=ask, extra_headers=headers(extra, name))
        return {"type": m.type, "role": m.role, "model": m.model, "text": text_of(m), "stop": m.stop_reason,
                "usage": usage_of(m)}

    def streamed(name=provider + "-stream"):
        with client.messages.stream(model=model, max_tokens=256, messages=ask,
                                    extra_headers=headers(extra, name)) as s:
            text = "".join(s.text_stream)
            m = s.get_final_message()
        return {"text": text, "final_text": text_of(m), "stop": m.stop_reason, "usage": usage_of(m)}

    def raw_stream(name=provider + "-raw-stream"):
        events = list(client.messages.create(model=model, max_tokens=256, messages=ask, stream=True,
                                             extra_headers=headers(extra, name)))
        return {"first": events[0].type, "last": events[-1].type,
                "text": "".join(e.delta.text for e in events
                                if e.type == "content_block_delta" and e.delta.type == "text_delta")}

    def tools_plain(name=provider + "-tools"):
        first = client.messages.create(model=model, max_tokens=256, messages=question, tools=TOOLS,
                                       extra_headers=headers(extra, name + "-call"))
        use = next(b for b in first.content if b.type == "tool_use")
        msgs = question + [{"role": "assistant", "content": first.content},
                           {"role": "user", "content": [
                               {"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21C"}]}]
        final = client.messages.create(model=model, max_tokens=256, messages=msgs, tools=TOOLS,
                                       extra_headers=headers(extra, name + "-result"))
        return {"stop": first.stop_reason, "tool": use.name, "input": use.input, "id": use.id,
                "text": text_of(final), "final_stop": final.stop_reason}

    def tools_stream(name=provider + "-tools-stream"):
        with client.messages.stream(model=model, max_tokens=256, messages=question, tools=TOOLS,
                                    extra_headers=headers(extra, name + "-call")) as s:
            first = s.get_final_message()
        use = next(b for b in first.content if b.type == "tool_use")
        msgs = question + [{"role": "assistant", "content": first.content},
                           {"role": "user", "content": [
                               {"type": "tool_result", "tool_use_id": use.id,
                                "content": [{"type": "text", "text": "sunny, 21C"}]}]}]
        with client.messages.stream(model=model, max_tokens=256, messages=msgs, tools=TOOLS,
                                    extra_headers=headers(extra, name + "-result")) as s:
            final = s.get_final_message()
        return {"stop": first.stop_reason, "tool": use.name, "input": use.input, "text": text_of(final),
                "final_stop": final.stop_reason}

    def rate_limited():
        try:
            client.messages.create(model=model, max_tokens=256, messages=ask,
                                   extra_headers={**extra, "x-mock-status": "429"})
        except anthropic.RateLimitError as e:
            return {"status": e.status_code, "message": e.message, "type": (e.body or {}).get("error", {}).get("type")}
        return {"status": 200}

    case(provider + "-plain", plain)
    case(provider + "-stream", streamed)
    case(provider + "-raw-stream", raw_stream)
    case(provider + "-tools", tools_plain)
    case(provider + "-tools-stream", tools_stream)
    case(provider + "-429", rate_limited)

print(json.dumps(out, sort_keys=True))
"#;
