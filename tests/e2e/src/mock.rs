//! Mock LLM provider. It answers like OpenAI Chat Completions, Gemini's
//! OpenAI-compatible endpoint, the OpenAI Responses API, Anthropic Messages
//! and Bedrock InvokeModel (Claude), in each one's own wire format
//! (PROTOCOLS.md A–E), and records every request it receives.
//!
//! Answers are deterministic: the text is "Hello from mock-<provider>.", the
//! `model` echoes the request, and usage is fixed unless a test sets it.
//! Request headers steer it:
//!
//! - `x-mock-usage: {json}`: the provider's own usage object, returned
//!   verbatim (Anthropic streams split it: `output_tokens` goes in the final
//!   `message_delta`, the rest in `message_start`).
//! - `x-mock-status: <code>`: that status with the provider's error body
//!   (and `retry-after: 1` on 429), once the key check has passed.
//! - `x-mock-delay-ms: <n>`: sleep before answering.
//! - `x-mock-chunk-delay-ms: <n>`: sleep between streamed chunks.
//! - `x-mock-fault: <fault>`: `reset` (RST before any response),
//!   `reset-mid-stream` (RST after the head and two events, or half a JSON
//!   body), `invalid-json` (truncated JSON body), `error-event` (the
//!   provider's in-stream error after two events), `malformed-sse` (garbage
//!   lines among the events), `wrong-content-type` (`text/plain`).
//!
//! An unparsable directive gets a 400 naming it, so a typo in a test fails
//! loudly instead of silently testing the happy path.

use crate::http1::{lock, Request, Responder, Server};
use serde_json::{json, Value};
use std::io;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The provider keys the mock accepts.
#[derive(Clone, Debug)]
pub struct ProviderKeys {
    pub openai: String,
    pub anthropic: String,
    pub gemini: String,
    pub bedrock: String,
}

impl ProviderKeys {
    /// The keys the gateway itself is given: `LLM_GATEWAY_OPENAI_API_KEY`,
    /// `LLM_GATEWAY_ANTHROPIC_API_KEY`, `LLM_GATEWAY_GEMINI_API_KEY` and
    /// `LLM_GATEWAY_BEDROCK_API_KEY`, each `"mock-key"` when unset.
    pub fn from_env() -> ProviderKeys {
        let key = |provider: &str| {
            std::env::var(format!("LLM_GATEWAY_{provider}_API_KEY")).unwrap_or_else(|_| "mock-key".into())
        };
        ProviderKeys {
            openai: key("OPENAI"),
            anthropic: key("ANTHROPIC"),
            gemini: key("GEMINI"),
            bedrock: key("BEDROCK"),
        }
    }
}

/// A running mock provider on 127.0.0.1.
pub struct MockProvider {
    server: Server,
    log: Arc<Mutex<Vec<Request>>>,
}

impl MockProvider {
    #[allow(clippy::expect_used)] // test infrastructure: no port is a setup failure
    pub fn start(keys: ProviderKeys) -> MockProvider {
        Self::start_on(0, keys).expect("bind 127.0.0.1:0")
    }

    /// Serves on a fixed port (0 picks a free one).
    pub fn start_on(port: u16, keys: ProviderKeys) -> io::Result<MockProvider> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let recorded = log.clone();
        let server = Server::start_on(port, move |req, res| {
            lock(&recorded).push(req.clone());
            // A write error means the peer left; there is no one to tell.
            let _ = handle(&keys, &req, res);
        })?;
        Ok(MockProvider { server, log })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.log).clone()
    }

    pub fn clear(&self) {
        lock(&self.log).clear();
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Api {
    OpenAi,
    Gemini,
    Responses,
    Anthropic,
    Bedrock,
}

impl Api {
    fn route(req: &Request) -> Option<Api> {
        if req.method != "POST" {
            return None;
        }
        match req.route() {
            "/v1/chat/completions" => Some(Api::OpenAi),
            "/v1beta/openai/chat/completions" => Some(Api::Gemini),
            "/v1/responses" => Some(Api::Responses),
            "/v1/messages" => Some(Api::Anthropic),
            path if path.starts_with("/model/") && path.ends_with("/invoke") => Some(Api::Bedrock),
            _ => None,
        }
    }

    fn vendor(self) -> &'static str {
        match self {
            Api::OpenAi | Api::Responses => "openai",
            Api::Gemini => "gemini",
            Api::Anthropic => "anthropic",
            Api::Bedrock => "bedrock",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    Reset,
    ResetMidStream,
    InvalidJson,
    ErrorEvent,
    MalformedSse,
    WrongContentType,
}

#[derive(Default)]
struct Directives {
    status: Option<u16>,
    delay: Duration,
    chunk_delay: Duration,
    fault: Option<Fault>,
    usage: Option<Value>,
}

impl Directives {
    fn parse(req: &Request) -> Result<Directives, String> {
        let bad = |name: &str| format!("mock: unusable {name} header");
        let millis = |name: &str| match req.header(name) {
            None => Ok(Duration::ZERO),
            Some(v) => v.parse().map(Duration::from_millis).map_err(|_| bad(name)),
        };
        let status = match req.header("x-mock-status") {
            None => None,
            Some(v) => Some(v.parse().ok().filter(|s| (100..600).contains(s)).ok_or_else(|| bad("x-mock-status"))?),
        };
        let fault = match req.header("x-mock-fault") {
            None => None,
            Some("reset") => Some(Fault::Reset),
            Some("reset-mid-stream") => Some(Fault::ResetMidStream),
            Some("invalid-json") => Some(Fault::InvalidJson),
            Some("error-event") => Some(Fault::ErrorEvent),
            Some("malformed-sse") => Some(Fault::MalformedSse),
            Some("wrong-content-type") => Some(Fault::WrongContentType),
            Some(_) => return Err(bad("x-mock-fault")),
        };
        let usage = match req.header("x-mock-usage") {
            None => None,
            Some(v) => Some(serde_json::from_str(v).ok().filter(Value::is_object).ok_or_else(|| bad("x-mock-usage"))?),
        };
        Ok(Directives {
            status,
            delay: millis("x-mock-delay-ms")?,
            chunk_delay: millis("x-mock-chunk-delay-ms")?,
            fault,
            usage,
        })
    }
}

fn handle(keys: &ProviderKeys, req: &Request, res: &mut Responder) -> io::Result<()> {
    let route = Api::route(req);
    // Errors before routing is known are answered in OpenAI's shape.
    let api = route.unwrap_or(Api::OpenAi);
    let mut d = match Directives::parse(req) {
        Ok(d) => d,
        Err(message) => return send_error(res, api, 400, &message),
    };
    thread::sleep(d.delay);
    if d.fault == Some(Fault::Reset) {
        res.reset();
        return Ok(());
    }
    if route.is_none() {
        return send_error(res, api, 404, &format!("Unknown request URL: {} {}.", req.method, req.route()));
    }
    if let Err((status, message)) = check_auth(keys, api, req) {
        return send_error(res, api, status, message);
    }
    if let Some(status) = d.status {
        return send_error(res, api, status, &format!("mock: injected {status} (x-mock-status)"));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return send_error(res, api, 400, "We could not parse the JSON body of your request.");
    };
    let model = match api {
        // Bedrock names the model in the path, not the body.
        Api::Bedrock if body["anthropic_version"].is_string() => bedrock_model(req.route()),
        Api::Bedrock => {
            return send_error(res, api, 400, "Malformed input request: required key [anthropic_version] not found")
        }
        _ => match body["model"].as_str() {
            Some(model) => model.to_owned(),
            None => return send_error(res, api, 400, "model: Field required"),
        },
    };
    let usage = d.usage.take().unwrap_or_else(|| default_usage(api));
    let parts = ["Hello".to_owned(), " from".to_owned(), format!(" mock-{}.", api.vendor())];
    // Bedrock streams use AWS event-stream framing on another path; not mocked.
    if body["stream"] == true && api != Api::Bedrock {
        let include_usage = body["stream_options"]["include_usage"] == true;
        let events = match api {
            Api::OpenAi | Api::Gemini => chat_stream(&model, &parts, &usage, include_usage),
            Api::Responses => responses_stream(&model, &parts, &usage),
            Api::Anthropic | Api::Bedrock => messages_stream(&model, &parts, &usage),
        };
        send_stream(res, api, &events, &d)
    } else {
        let text = parts.concat();
        let body = match api {
            Api::OpenAi | Api::Gemini => chat_json(&model, &text, &usage),
            Api::Responses => responses_json(&model, &text, &usage),
            Api::Anthropic | Api::Bedrock => messages_json(&model, &text, &usage),
        };
        send_json(res, api, &body, &d)
    }
}

fn check_auth(keys: &ProviderKeys, api: Api, req: &Request) -> Result<(), (u16, &'static str)> {
    let bearer = |key: &str| req.header("authorization") == Some(format!("Bearer {key}").as_str());
    match api {
        Api::OpenAi | Api::Responses if !bearer(&keys.openai) => Err((401, "Incorrect API key provided.")),
        Api::Gemini if !bearer(&keys.gemini) => Err((401, "API key not valid. Please pass a valid API key.")),
        Api::Bedrock if !bearer(&keys.bedrock) => Err((403, "Authentication failed: invalid API key.")),
        Api::Anthropic if req.header("x-api-key") != Some(keys.anthropic.as_str()) => Err((401, "invalid x-api-key")),
        Api::Anthropic if req.header("anthropic-version").is_none() => {
            Err((400, "anthropic-version: header is required"))
        }
        _ => Ok(()),
    }
}

/// The model of `/model/{id}/invoke`; clients percent-encode the `:` and `/`
/// of versioned IDs and ARNs.
fn bedrock_model(path: &str) -> String {
    let id = path.trim_start_matches("/model/").trim_end_matches("/invoke");
    let mut out = Vec::with_capacity(id.len());
    let mut rest = id.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        let hex = tail.get(..2).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match hex.filter(|_| byte == b'%') {
            Some(decoded) => {
                out.push(decoded);
                rest = tail.get(2..).unwrap_or_default();
            }
            None => {
                out.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn default_usage(api: Api) -> Value {
    match api {
        Api::OpenAi => json!({
            "prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }),
        Api::Gemini => json!({"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}),
        Api::Responses => json!({
            "input_tokens": 37, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 11, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 48,
        }),
        Api::Anthropic | Api::Bedrock => json!({
            "input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 15, "service_tier": "standard",
        }),
    }
}

/// A fixed timestamp keeps responses byte-for-byte reproducible.
const CREATED: u64 = 1_741_569_952;

fn chat_json(model: &str, text: &str, usage: &Value) -> Value {
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null, "annotations": []},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": usage, "service_tier": "default", "system_fingerprint": "fp_mock",
    })
}

fn responses_json(model: &str, text: &str, usage: &Value) -> Value {
    response_object(model, "completed", json!([output_message(text)]), usage.clone())
}

fn response_object(model: &str, status: &str, output: Value, usage: Value) -> Value {
    json!({"id": "resp_mock", "object": "response", "created_at": CREATED, "status": status,
           "model": model, "output": output, "usage": usage})
}

fn output_message(text: &str) -> Value {
    json!({"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

fn messages_json(model: &str, text: &str, usage: &Value) -> Value {
    json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null, "usage": usage,
    })
}

/// Data-only SSE. With `include_usage`, every chunk carries `"usage": null`
/// and a last chunk with empty `choices` carries the usage; without it the
/// key is absent, as documented.
fn chat_stream(model: &str, parts: &[String], usage: &Value, include_usage: bool) -> Vec<Vec<u8>> {
    let chunk = |choices: Value| {
        let mut chunk = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED,
                               "model": model, "system_fingerprint": "fp_mock", "choices": choices});
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    };
    let choice = |delta: Value, finish: Value| {
        chunk(json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]))
    };
    let mut events = vec![data(&choice(json!({"role": "assistant", "content": ""}), Value::Null))];
    events.extend(parts.iter().map(|p| data(&choice(json!({"content": p}), Value::Null))));
    events.push(data(&choice(json!({}), json!("stop"))));
    if include_usage {
        let mut last = chunk(json!([]));
        last["usage"] = usage.clone();
        events.push(data(&last));
    }
    events.push(b"data: [DONE]\n\n".to_vec());
    events
}

/// Named-event SSE; the spec's example ends at `response.completed`, no
/// `[DONE]`.
fn responses_stream(model: &str, parts: &[String], usage: &Value) -> Vec<Vec<u8>> {
    let pending = response_object(model, "in_progress", json!([]), Value::Null);
    let mut bodies = vec![
        json!({"type": "response.created", "response": pending}),
        json!({"type": "response.in_progress", "response": pending}),
    ];
    bodies.extend(parts.iter().map(|p| {
        json!({"type": "response.output_text.delta", "item_id": "msg_mock", "output_index": 0,
               "content_index": 0, "delta": p, "logprobs": []})
    }));
    bodies.push(json!({"type": "response.completed", "response": responses_json(model, &parts.concat(), usage)}));
    bodies
        .into_iter()
        .enumerate()
        .map(|(seq, mut body)| {
            body["sequence_number"] = json!(seq);
            named(&body)
        })
        .collect()
}

/// Named-event SSE as in the Anthropic streaming docs. `message_start`
/// reports the input side and a placeholder `output_tokens: 1`; the
/// cumulative output count arrives in `message_delta`, so a gateway that
/// adds the two instead of taking the last gets a visibly wrong total.
fn messages_stream(model: &str, parts: &[String], usage: &Value) -> Vec<Vec<u8>> {
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let output_tokens = usage.get("output_tokens").cloned().unwrap_or(json!(0));
    let mut bodies = vec![
        json!({"type": "message_start", "message": {
            "id": "msg_mock", "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": null, "stop_sequence": null, "usage": start_usage}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
    ];
    bodies.extend(
        parts
            .iter()
            .map(|p| json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})),
    );
    bodies.extend([
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": output_tokens}}),
        json!({"type": "message_stop"}),
    ]);
    bodies.iter().map(named).collect()
}

fn data(body: &Value) -> Vec<u8> {
    format!("data: {body}\n\n").into_bytes()
}

/// An event named after its body's `type`, as Anthropic and Responses do.
fn named(body: &Value) -> Vec<u8> {
    let name = body["type"].as_str().unwrap_or_default();
    format!("event: {name}\ndata: {body}\n\n").into_bytes()
}

/// The error a provider sends inside a stream that had started well.
fn error_event(api: Api) -> Vec<u8> {
    match api {
        Api::Anthropic | Api::Bedrock => {
            named(&json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
        }
        // It follows the first two events, numbered 0 and 1.
        Api::Responses => named(&json!({"type": "error", "code": "server_error", "param": null,
                                        "message": "The server had an error while processing your request.",
                                        "sequence_number": 2})),
        Api::OpenAi | Api::Gemini => data(&openai_error(500, "The server had an error while processing your request.")),
    }
}

/// Lines no SSE parser should trip on: an unknown field, a data line that is
/// not JSON, a comment and a stray CR-only line ending.
const GARBAGE: &[u8] = b"this is not sse\n\ndata: {\"truncated\": \n\n: comment\n\nfoo: bar\r\r\n";

fn content_type(d: &Directives, wanted: &'static str) -> &'static str {
    if d.fault == Some(Fault::WrongContentType) {
        "text/plain"
    } else {
        wanted
    }
}

/// Anthropic stamps every response with a request id.
fn headers(api: Api, content_type: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut headers = vec![("content-type", content_type)];
    if api == Api::Anthropic {
        headers.push(("request-id", "req_mock"));
    }
    headers
}

/// Each event is its own chunk, so the gateway sees the stream as it would
/// from the network; faults strike after the second event.
fn send_stream(res: &mut Responder, api: Api, events: &[Vec<u8>], d: &Directives) -> io::Result<()> {
    let mut headers = headers(api, content_type(d, "text/event-stream"));
    headers.push(("cache-control", "no-cache"));
    let mut body = res.start_chunked(200, &headers)?;
    body.set_gap(d.chunk_delay);
    for (i, event) in events.iter().enumerate() {
        match d.fault {
            Some(Fault::ResetMidStream) if i == 2 => {
                body.reset();
                return Ok(());
            }
            Some(Fault::ErrorEvent) if i == 2 => {
                body.chunk(&error_event(api))?;
                return body.finish();
            }
            Some(Fault::MalformedSse) if i == 1 || i + 1 == events.len() => body.chunk(GARBAGE)?,
            _ => {}
        }
        body.chunk(event)?;
    }
    body.finish()
}

fn send_json(res: &mut Responder, api: Api, body: &Value, d: &Directives) -> io::Result<()> {
    let bytes = body.to_string().into_bytes();
    let (head, _) = bytes.split_at(bytes.len() / 2);
    let headers = headers(api, content_type(d, "application/json"));
    match d.fault {
        Some(Fault::InvalidJson) => res.send(200, &headers, head),
        Some(Fault::ResetMidStream) => {
            let mut body = res.start_chunked(200, &headers)?;
            body.chunk(head)?;
            body.reset();
            Ok(())
        }
        _ => res.send(200, &headers, &bytes),
    }
}

fn send_error(res: &mut Responder, api: Api, status: u16, message: &str) -> io::Result<()> {
    let mut headers = headers(api, "application/json");
    if status == 429 {
        headers.push(("retry-after", "1"));
    }
    let body = match api {
        Api::OpenAi | Api::Gemini | Api::Responses => openai_error(status, message),
        Api::Anthropic => {
            json!({"type": "error", "error": {"type": anthropic_error_type(status), "message": message},
                                 "request_id": "req_mock"})
        }
        Api::Bedrock => {
            headers.push(("x-amzn-errortype", bedrock_error_type(status)));
            json!({"message": message})
        }
    };
    res.send(status, &headers, body.to_string().as_bytes())
}

/// Only `invalid_request_error`, `server_error` and `rate_limit_exceeded`
/// are in OpenAI's spec; the per-status choice is the commonly observed one.
fn openai_error(status: u16, message: &str) -> Value {
    let (kind, code) = match status {
        401 => ("invalid_request_error", json!("invalid_api_key")),
        429 => ("requests", json!("rate_limit_exceeded")),
        500.. => ("server_error", Value::Null),
        _ => ("invalid_request_error", Value::Null),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// Per Anthropic's error docs: unlisted 4xx are `invalid_request_error`.
fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500.. => "api_error",
        _ => "invalid_request_error",
    }
}

fn bedrock_error_type(status: u16) -> &'static str {
    match status {
        401 | 403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        500.. => "InternalServerException",
        _ => "ValidationException",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock() -> MockProvider {
        MockProvider::start(ProviderKeys {
            openai: "sk-o".into(),
            anthropic: "sk-a".into(),
            gemini: "sk-g".into(),
            bedrock: "sk-b".into(),
        })
    }

    /// Status, content type and body of a POST, whatever the status.
    fn post(mock: &MockProvider, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
        let mut req = ureq::post(&format!("http://127.0.0.1:{}{path}", mock.port()));
        for (name, value) in headers {
            req = req.set(name, value);
        }
        let res = match req.send_string(body) {
            Ok(res) | Err(ureq::Error::Status(_, res)) => res,
            Err(e) => panic!("transport error: {e}"),
        };
        (res.status(), res.content_type().to_owned(), res.into_string().unwrap())
    }

    const OPENAI: &[(&str, &str)] = &[("authorization", "Bearer sk-o")];
    const ANTHROPIC: &[(&str, &str)] = &[("x-api-key", "sk-a"), ("anthropic-version", "2023-06-01")];

    /// The JSON payloads of a stream's `data:` lines, `[DONE]` excluded.
    fn payloads(stream: &str) -> Vec<Value> {
        stream
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    #[test]
    fn openai_json_echoes_model_with_default_usage() {
        let mock = mock();
        let (status, ctype, body) = post(&mock, "/v1/chat/completions", OPENAI, r#"{"model":"gpt-4o","messages":[]}"#);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((status, ctype.as_str()), (200, "application/json"));
        assert_eq!(body["model"], "gpt-4o");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello from mock-openai.");
        assert_eq!(body["usage"]["prompt_tokens"], 19);
        assert_eq!(mock.requests().len(), 1);
        mock.clear();
        assert!(mock.requests().is_empty());
    }

    #[test]
    fn wrong_key_unknown_route_and_bad_json_get_provider_errors() {
        let mock = mock();
        let bad_key = [("authorization", "Bearer nope")];
        let (status, _, body) = post(&mock, "/v1/chat/completions", &bad_key, r#"{"model":"m"}"#);
        assert_eq!(status, 401);
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], "invalid_api_key");
        assert_eq!(post(&mock, "/v1/nothing", OPENAI, "{}").0, 404);
        let (status, _, body) = post(&mock, "/v1/messages", ANTHROPIC, "{not json");
        assert_eq!(status, 400);
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["type"], "invalid_request_error");
        let no_version = [("x-api-key", "sk-a")];
        assert_eq!(post(&mock, "/v1/messages", &no_version, r#"{"model":"m"}"#).0, 400);
    }

    #[test]
    fn status_directive_uses_the_provider_error_shape() {
        let mock = mock();
        let headers = [ANTHROPIC, &[("x-mock-status", "429")]].concat();
        let res = ureq::post(&format!("http://127.0.0.1:{}/v1/messages", mock.port()))
            .set("x-api-key", "sk-a")
            .set("anthropic-version", "2023-06-01")
            .set("x-mock-status", "429")
            .send_string(r#"{"model":"claude-sonnet-4-5"}"#);
        let Err(ureq::Error::Status(429, res)) = res else { panic!("expected 429") };
        assert_eq!(res.header("retry-after"), Some("1"));
        let body: Value = res.into_json().unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "rate_limit_error");
        assert_eq!(post(&mock, "/v1/messages", &headers, "{}").0, 429, "status wins over body checks");
    }

    #[test]
    fn openai_stream_adds_usage_chunk_only_when_asked() {
        let mock = mock();
        let path = "/v1/chat/completions";
        let ask = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}"#;
        let (status, ctype, stream) = post(&mock, path, OPENAI, ask);
        assert_eq!((status, ctype.as_str()), (200, "text/event-stream"));
        assert!(stream.ends_with("data: [DONE]\n\n"));
        let chunks = payloads(&stream);
        let (last, rest) = chunks.split_last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["total_tokens"], 29);
        assert!(rest.iter().all(|c| c["usage"].is_null() && c.get("usage").is_some()));
        let text: String = rest.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "Hello from mock-openai.");

        let (_, _, stream) = post(&mock, path, OPENAI, r#"{"model":"gpt-4o","stream":true}"#);
        assert!(payloads(&stream).iter().all(|c| c.get("usage").is_none()));
    }

    #[test]
    fn anthropic_stream_splits_overridden_usage() {
        let mock = mock();
        let usage = concat!(
            r#"{"input_tokens":3,"cache_read_input_tokens":1800,"cache_creation_input_tokens":248,"#,
            r#""cache_creation":{"ephemeral_5m_input_tokens":148,"ephemeral_1h_input_tokens":100},"output_tokens":503}"#
        );
        let headers = [ANTHROPIC, &[("x-mock-usage", usage)]].concat();
        let (_, _, stream) = post(&mock, "/v1/messages", &headers, r#"{"model":"claude-sonnet-4-5","stream":true}"#);
        let names: Vec<&str> = stream.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(names.first(), Some(&"message_start"));
        assert_eq!(names.last(), Some(&"message_stop"));
        assert!(names.contains(&"ping"));
        let events = payloads(&stream);
        let start = &events[0]["message"]["usage"];
        assert_eq!(start["cache_creation"]["ephemeral_1h_input_tokens"], 100);
        assert_eq!(start["output_tokens"], 1);
        let delta = events.iter().find(|e| e["type"] == "message_delta").unwrap();
        assert_eq!(delta["usage"], json!({"output_tokens": 503}));
    }

    #[test]
    fn responses_stream_ends_with_completed_usage() {
        let mock = mock();
        let (_, _, stream) = post(&mock, "/v1/responses", OPENAI, r#"{"model":"gpt-5","input":"hi","stream":true}"#);
        let events = payloads(&stream);
        assert_eq!(events[0]["type"], "response.created");
        assert!(events[0]["response"]["usage"].is_null());
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.completed");
        assert_eq!(last["response"]["usage"]["total_tokens"], 48);
        assert_eq!(last["sequence_number"], events.len() - 1);
    }

    #[test]
    fn stream_events_leave_one_by_one() {
        use std::io::BufRead;
        use std::time::Instant;
        let mock = mock();
        let started = Instant::now();
        let res = ureq::post(&format!("http://127.0.0.1:{}/v1/messages", mock.port()))
            .set("x-api-key", "sk-a")
            .set("anthropic-version", "2023-06-01")
            .set("x-mock-chunk-delay-ms", "100")
            .send_string(r#"{"model":"m","stream":true}"#)
            .unwrap();
        let mut lines = std::io::BufReader::new(res.into_reader()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "event: message_start");
        let first = started.elapsed();
        let last = lines.map(Result::unwrap).filter(|l| !l.is_empty()).last();
        assert_eq!(last.unwrap(), r#"data: {"type":"message_stop"}"#);
        // Nine events with 100 ms between them: the first must not wait for the rest.
        assert!(first < Duration::from_millis(300) && started.elapsed() >= Duration::from_millis(800));
    }

    #[test]
    fn chunked_request_body_is_read_and_recorded() {
        let mock = mock();
        let body = br#"{"model":"gemini-2.5-flash","messages":[]}"#;
        let res = ureq::post(&format!("http://127.0.0.1:{}/v1beta/openai/chat/completions", mock.port()))
            .set("authorization", "Bearer sk-g")
            .send(&body[..])
            .unwrap();
        let json: Value = res.into_json().unwrap();
        assert_eq!(json["model"], "gemini-2.5-flash");
        assert_eq!(json["choices"][0]["message"]["content"], "Hello from mock-gemini.");
        let seen = mock.requests();
        assert_eq!(seen[0].header("transfer-encoding"), Some("chunked"));
        assert_eq!(seen[0].body, body);
    }

    #[test]
    fn faults_break_the_response_as_asked() {
        let mock = mock();
        let url = format!("http://127.0.0.1:{}/v1/chat/completions", mock.port());
        let call = |fault: &str, body: &str| {
            ureq::post(&url)
                .set("authorization", "Bearer sk-o")
                .set("x-mock-fault", fault)
                .send_string(body)
                .map_err(Box::new)
        };
        assert!(matches!(call("reset", "{}").map_err(|e| *e), Err(ureq::Error::Transport(_))));
        let stream = r#"{"model":"m","stream":true}"#;
        // The reset may beat the client to the head: either way the body never completes.
        let broken = call("reset-mid-stream", stream).map_or(true, |res| res.into_string().is_err());
        assert!(broken);
        let text = call("error-event", stream).unwrap().into_string().unwrap();
        assert_eq!(payloads(&text).last().unwrap()["error"]["type"], "server_error");
        let text = call("malformed-sse", stream).unwrap().into_string().unwrap();
        assert!(text.contains("this is not sse") && text.ends_with("data: [DONE]\n\n"));
        let res = call("invalid-json", r#"{"model":"m"}"#).unwrap();
        assert!(res.into_json::<Value>().is_err());
        assert_eq!(call("wrong-content-type", r#"{"model":"m"}"#).unwrap().content_type(), "text/plain");
        assert_eq!(call("no-such-fault", "{}").unwrap_err().kind(), ureq::ErrorKind::HTTP);
    }

    #[test]
    fn bedrock_invoke_answers_in_anthropic_shape() {
        let mock = mock();
        let headers = [("authorization", "Bearer sk-b")];
        let path = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke";
        let (status, _, body) = post(&mock, path, &headers, r#"{"anthropic_version":"bedrock-2023-05-31"}"#);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body["model"], "us.anthropic.claude-sonnet-4-5-20250929-v1:0");
        assert_eq!(body["usage"]["input_tokens"], 25);
    }
}
