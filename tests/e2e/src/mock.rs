//! Mock LLM provider. It answers like OpenAI Chat Completions, Gemini's
//! OpenAI-compatible endpoint, the OpenAI Responses API, Anthropic Messages,
//! Bedrock InvokeModel and InvokeModelWithResponseStream (Claude; the
//! stream in AWS event-stream framing) and Azure OpenAI (Chat and Responses,
//! on the v1 and the deployment-based paths), in each one's own wire format
//! (docs/protocols/), and records every request it receives.
//!
//! Credentials are checked as each provider checks them: Bearer keys, Anthropic's
//! `x-api-key`, Azure's `api-key`, and on Bedrock either a Bearer API key or an
//! AWS SigV4 signature, verified against the IAM credentials the mock was given
//! (`crate::sigv4`; a wrong secret gets Bedrock's 403 `InvalidSignatureException`).
//! Azure's chat streams begin with its `prompt_filter_results` chunk (empty
//! `choices`, empty `model`), as Azure sends it.
//!
//! Answers are deterministic: the text is "Hello from mock-<provider>.", the
//! `model` echoes the request, and usage is fixed unless a test sets it.
//! Chat, Gemini, Messages and Bedrock requests can also run a tool round trip:
//!
//! - a request with `tools` whose last message is a user turn that is not a
//!   tool result gets a call of the FIRST tool with arguments
//!   `{"city": "Paris"}` (`finish_reason: "tool_calls"` /
//!   `stop_reason: "tool_use"`; streams send the arguments in fragments);
//! - a request whose last message is a tool result (OpenAI `role: "tool"`,
//!   or an Anthropic user turn with a `tool_result` block) gets the text
//!   "The weather is <the result's text>.".
//!
//! Request headers steer it:
//!
//! - `x-mock-usage: {json}`: the provider's own usage object, returned
//!   verbatim (Anthropic streams split it: `output_tokens` goes in the final
//!   `message_delta`, the rest in `message_start`).
//! - `x-mock-model: <id>`: answer as this model (the response's `model`).
//! - `x-mock-status: <code>`: that status with the provider's error body
//!   (and `retry-after: 1` on 429), once the key check has passed.
//! - `x-mock-retry-after: <value>`: the `retry-after` sent with that status
//!   instead (seconds or an HTTP date, passed as given).
//! - `x-mock-delay-ms: <n>`: sleep before answering.
//! - `x-mock-chunk-delay-ms: <n>`: sleep between streamed chunks.
//! - `x-mock-chunk-bytes: <n>`: send each streamed event (or a JSON body) in
//!   HTTP chunks of n bytes, so SSE events and event-stream frames arrive cut
//!   at arbitrary points (with a chunk delay, one by one).
//! - `x-mock-quirks: gemini`: on Gemini's endpoint, stream tool calls as
//!   Gemini really does: each call whole in one delta without `index`, and
//!   `finish_reason: "stop"` at the end.
//! - `x-mock-tool-calls: all`: call every tool (the i-th with the city Paris,
//!   Lyon, Nice, Lille, …), after the text "Let me check.", instead of only
//!   the first.
//! - `x-mock-hold: end | last`: keep a stream open, sending nothing, until
//!   the peer closes the connection (at most 10 s): `end` after the last
//!   event (the terminal one), `last` before it. As a real client closes on
//!   its terminal event, `end` makes the client the one that ends the call;
//!   `last` lets a client leave one event before the end.
//! - `x-mock-fault: <fault>`: `reset` (RST before any response),
//!   `reset-mid-stream` (RST after the head and two events, or half a JSON
//!   body), `invalid-json` (truncated JSON body), `error-event` (the
//!   provider's in-stream error after two events; a `serviceUnavailableException`
//!   message in Bedrock's event stream), `malformed-sse` (garbage lines among
//!   the events; in Bedrock's event stream, messages of an unknown event
//!   type), `wrong-content-type` (`text/plain`).
//!
//! Each directive also comes scoped to one provider API, `x-mock-<vendor>-<name>`
//! (vendor `openai`, `gemini`, `anthropic` or `bedrock`; e.g.
//! `x-mock-anthropic-status: 529`), which wins over the unscoped one there and
//! is ignored elsewhere: a failover test fails one target of a chain.
//!
//! An unparsable directive gets a 400 naming it, so a typo in a test fails
//! loudly instead of silently testing the happy path.
//!
//! Clients that cannot send headers per request (Claude Code, Codex) steer it
//! from the prompt: a line `x-mock-<name>: <value>` in a user message's text
//! (anywhere in the conversation, so it holds for every turn) acts as that
//! header when the header is absent, for `usage`, `tool-calls`, `quirks` and
//! these two, which exist only there:
//!
//! - `x-mock-call: <tool> <json arguments>`: call that tool (it must be among
//!   the request's tools) with those arguments, on any API, the Responses API
//!   included (a `function_call` item); once the latest turn is that call's
//!   result, answer "Tool said: <quote>", where the quote is the result's
//!   first line containing [`TOOL_OUTPUT_MARK`], from the mark on (the whole
//!   result when no line has it).
//! - `x-mock-reasoning: <text>`: reason first, as the provider shows it: a
//!   `reasoning` item with that summary and opaque `encrypted_content`
//!   (Responses), or a `thinking` block with a signature (Anthropic, Bedrock).
//!   Chat Completions has no reasoning content, only the usage's count.
//!
//! `x-mock-tool-calls: none` (header or prompt) answers with the greeting even
//! when the request offers tools.

use crate::http1::{lock, Chunked, Request, Responder, Server};
use crate::sigv4::{self, AwsCredentials};
use serde_json::{json, Value};
use std::io;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The provider keys the mock accepts; each field may list several, comma-separated.
#[derive(Clone, Debug)]
pub struct ProviderKeys {
    pub openai: String,
    pub anthropic: String,
    pub gemini: String,
    pub bedrock: String,
    pub azure: String,
    /// IAM credentials for SigV4-signed Bedrock requests (none: they are refused).
    pub aws: Option<AwsCredentials>,
}

/// The region the mock's Bedrock signs for.
pub const AWS_REGION: &str = "us-east-1";

impl ProviderKeys {
    /// The keys the gateway itself is given: `LLM_GATEWAY_OPENAI_API_KEY`,
    /// `LLM_GATEWAY_ANTHROPIC_API_KEY`, `LLM_GATEWAY_GEMINI_API_KEY`,
    /// `LLM_GATEWAY_BEDROCK_API_KEY` and `LLM_GATEWAY_AZURE_API_KEY` (every key
    /// of a comma-separated pool), each `"mock-key"` when unset.
    pub fn from_env() -> ProviderKeys {
        let key = |provider: &str| {
            let value = std::env::var(format!("LLM_GATEWAY_{provider}_API_KEY")).unwrap_or_default();
            if value.split(',').all(|k| k.trim().is_empty()) {
                "mock-key".to_string()
            } else {
                value
            }
        };
        ProviderKeys {
            openai: key("OPENAI"),
            anthropic: key("ANTHROPIC"),
            gemini: key("GEMINI"),
            bedrock: key("BEDROCK"),
            azure: key("AZURE"),
            aws: None,
        }
    }
}

/// A running mock provider on 127.0.0.1.
pub struct MockProvider {
    server: Server,
    log: Arc<Mutex<Vec<Request>>>,
    holds: Holds,
}

/// How each held stream ended, by the request's `x-test-marker`: true when
/// the peer closed the connection, false when the hold ran out.
type Holds = Arc<Mutex<Vec<(String, bool)>>>;

impl MockProvider {
    #[allow(clippy::expect_used)] // test infrastructure: no port is a setup failure
    pub fn start(keys: ProviderKeys) -> MockProvider {
        Self::start_on(0, keys).expect("bind 127.0.0.1:0")
    }

    /// Serves on a fixed port (0 picks a free one).
    pub fn start_on(port: u16, keys: ProviderKeys) -> io::Result<MockProvider> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let recorded = log.clone();
        let holds = Holds::default();
        let held = holds.clone();
        let server = Server::start_on(port, move |req, res| {
            crate::record::request("mock", &req);
            lock(&recorded).push(req.clone());
            // A write error means the peer left; there is no one to tell.
            let _ = handle(&keys, &req, res, &held);
        })?;
        Ok(MockProvider { server, log, holds })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.log).clone()
    }

    /// Whether the held stream of the request marked `marker` (`x-test-marker`)
    /// ended because the peer closed the connection (Some(true)) or because the
    /// hold ran out (Some(false)); None if no such stream was held. Waits for a
    /// hold still running (the peer's close reaches the mock after the peer left).
    pub fn hold_outcome(&self, marker: &str) -> Option<bool> {
        let deadline = std::time::Instant::now() + HOLD_MAX + Duration::from_secs(5);
        loop {
            let found = lock(&self.holds).iter().rev().find(|(m, _)| m == marker).map(|(_, closed)| *closed);
            if found.is_some() || std::time::Instant::now() >= deadline {
                return found;
            }
            thread::sleep(Duration::from_millis(20));
        }
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
    /// Azure OpenAI's Chat Completions (v1 or deployment-based paths).
    Azure,
    /// Azure OpenAI's Responses API.
    AzureResponses,
}

impl Api {
    fn route(req: &Request) -> Option<Api> {
        if req.method != "POST" {
            return None;
        }
        // Azure's deployment-based paths need an api-version; its v1 paths do not.
        let api_version =
            req.path.split_once('?').is_some_and(|(_, q)| q.split('&').any(|p| p.starts_with("api-version=")));
        match req.route() {
            "/openai/v1/chat/completions" => Some(Api::Azure),
            "/openai/v1/responses" => Some(Api::AzureResponses),
            "/openai/responses" if api_version => Some(Api::AzureResponses),
            path if api_version && azure_deployment(path).is_some() => Some(Api::Azure),
            "/v1/chat/completions" => Some(Api::OpenAi),
            "/v1beta/openai/chat/completions" => Some(Api::Gemini),
            "/v1/responses" => Some(Api::Responses),
            "/v1/messages" => Some(Api::Anthropic),
            path if path.starts_with("/model/")
                && (path.ends_with("/invoke") || path.ends_with("/invoke-with-response-stream")) =>
            {
                Some(Api::Bedrock)
            }
            _ => None,
        }
    }

    fn vendor(self) -> &'static str {
        match self {
            Api::OpenAi | Api::Responses => "openai",
            Api::Gemini => "gemini",
            Api::Anthropic => "anthropic",
            Api::Bedrock => "bedrock",
            Api::Azure | Api::AzureResponses => "azure",
        }
    }

    /// The wire format: Azure speaks OpenAI's.
    fn format(self) -> Api {
        match self {
            Api::Azure => Api::OpenAi,
            Api::AzureResponses => Api::Responses,
            api => api,
        }
    }
}

/// The deployment of `/openai/deployments/{deployment}/chat/completions`.
fn azure_deployment(path: &str) -> Option<&str> {
    path.strip_prefix("/openai/deployments/")?.strip_suffix("/chat/completions").filter(|d| !d.contains('/'))
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
    /// Call every tool (after some text), not only the first.
    all_tools: bool,
    /// Split each event (or a JSON body) into HTTP chunks of this many bytes.
    chunk_bytes: Option<usize>,
    /// Stream tool calls as Gemini's OpenAI-compatible endpoint does.
    gemini_quirks: bool,
    /// Keep the stream open until the peer leaves: after the last event, or before it.
    hold: Option<Hold>,
    /// Never call a tool (`x-mock-tool-calls: none`).
    no_tools: bool,
    /// `x-mock-call` (prompt only): this tool, with these JSON arguments.
    call: Option<(String, String)>,
    /// `x-mock-reasoning` (prompt only): the reasoning summary or thinking text.
    reasoning: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Hold {
    End,
    Last,
}

/// The longest a held stream waits for its peer to leave.
const HOLD_MAX: Duration = Duration::from_secs(10);

/// A directive header's value: the one scoped to `vendor`, else the unscoped one.
fn directive<'r>(req: &'r Request, vendor: &str, name: &str) -> Option<&'r str> {
    let scoped = name.replacen("x-mock-", &format!("x-mock-{vendor}-"), 1);
    req.header(&scoped).or_else(|| req.header(name))
}

impl Directives {
    fn parse(req: &Request, vendor: &str) -> Result<Directives, String> {
        let bad = |name: &str| format!("mock: unusable {name} header");
        let header = |name: &str| directive(req, vendor, name);
        let millis = |name: &str| match header(name) {
            None => Ok(Duration::ZERO),
            Some(v) => v.parse().map(Duration::from_millis).map_err(|_| bad(name)),
        };
        let status = match header("x-mock-status") {
            None => None,
            Some(v) => Some(v.parse().ok().filter(|s| (100..600).contains(s)).ok_or_else(|| bad("x-mock-status"))?),
        };
        let fault = match header("x-mock-fault") {
            None => None,
            Some("reset") => Some(Fault::Reset),
            Some("reset-mid-stream") => Some(Fault::ResetMidStream),
            Some("invalid-json") => Some(Fault::InvalidJson),
            Some("error-event") => Some(Fault::ErrorEvent),
            Some("malformed-sse") => Some(Fault::MalformedSse),
            Some("wrong-content-type") => Some(Fault::WrongContentType),
            Some(_) => return Err(bad("x-mock-fault")),
        };
        let usage = match header("x-mock-usage") {
            None => None,
            Some(v) => Some(serde_json::from_str(v).ok().filter(Value::is_object).ok_or_else(|| bad("x-mock-usage"))?),
        };
        let (all_tools, no_tools) = match header("x-mock-tool-calls") {
            None | Some("first") => (false, false),
            Some("all") => (true, false),
            Some("none") => (false, true),
            Some(_) => return Err(bad("x-mock-tool-calls")),
        };
        let chunk_bytes = match header("x-mock-chunk-bytes") {
            None => None,
            Some(v) => Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| bad("x-mock-chunk-bytes"))?),
        };
        let gemini_quirks = match header("x-mock-quirks") {
            None => false,
            Some("gemini") => true,
            Some(_) => return Err(bad("x-mock-quirks")),
        };
        let hold = match req.header("x-mock-hold") {
            None => None,
            Some("end") => Some(Hold::End),
            Some("last") => Some(Hold::Last),
            Some(_) => return Err(bad("x-mock-hold")),
        };
        Ok(Directives {
            hold,
            gemini_quirks,
            status,
            delay: millis("x-mock-delay-ms")?,
            chunk_delay: millis("x-mock-chunk-delay-ms")?,
            fault,
            usage,
            all_tools,
            no_tools,
            chunk_bytes,
            call: None,
            reasoning: None,
        })
    }

    /// Adds the `x-mock-*` lines of the conversation's user text (see the
    /// module docs); a header sent with the request wins over its line.
    fn add_prompt(&mut self, req: &Request, api: Api, body: &Value) -> Result<(), String> {
        for line in user_texts(api, body).iter().flat_map(|text| text.lines()) {
            let Some((name, value)) = line.trim().strip_prefix("x-mock-").and_then(|l| l.split_once(':')) else {
                continue;
            };
            let value = value.trim();
            let bad = || format!("mock: unusable x-mock-{name} line in the prompt");
            if req.header(&format!("x-mock-{name}")).is_some() {
                continue;
            }
            match name {
                "usage" => {
                    self.usage = Some(serde_json::from_str(value).ok().filter(Value::is_object).ok_or_else(bad)?);
                }
                "tool-calls" => {
                    (self.all_tools, self.no_tools) = match value {
                        "first" => (false, false),
                        "all" => (true, false),
                        "none" => (false, true),
                        _ => return Err(bad()),
                    }
                }
                "quirks" if value == "gemini" => self.gemini_quirks = true,
                "call" => {
                    let (tool, arguments) = value.split_once(char::is_whitespace).ok_or_else(bad)?;
                    let arguments: Value =
                        serde_json::from_str(arguments.trim()).ok().filter(Value::is_object).ok_or_else(bad)?;
                    self.call = Some((tool.to_owned(), arguments.to_string()));
                }
                "reasoning" if !value.is_empty() => self.reasoning = Some(value.to_owned()),
                _ => return Err(bad()),
            }
        }
        Ok(())
    }
}

/// The text a user wrote, in every user message of the conversation (not
/// tool results): Chat and Anthropic `messages`, Responses `input`.
fn user_texts(api: Api, body: &Value) -> Vec<String> {
    if api == Api::Responses {
        if let Some(input) = body["input"].as_str() {
            return vec![input.to_owned()];
        }
    }
    let turns = match api {
        Api::Responses => &body["input"],
        _ => &body["messages"],
    };
    let turns = turns.as_array().map(Vec::as_slice).unwrap_or_default();
    turns.iter().filter(|turn| turn["role"] == "user").map(|turn| text_of(&turn["content"])).collect()
}

fn handle(keys: &ProviderKeys, req: &Request, res: &mut Responder, holds: &Holds) -> io::Result<()> {
    if req.method == "POST" && req.route() == "/v1/messages/count_tokens" {
        return count_tokens(keys, Api::Anthropic, req, res);
    }
    if req.method == "POST" && req.route().starts_with("/model/") && req.route().ends_with("/count-tokens") {
        return count_tokens(keys, Api::Bedrock, req, res);
    }
    let route = Api::route(req);
    // Errors before routing is known are answered in OpenAI's shape.
    let api = route.unwrap_or(Api::OpenAi);
    let mut d = match Directives::parse(req, api.vendor()) {
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
    if let Err(refused) = check_auth(keys, api, req) {
        return refused.send(res, api);
    }
    if let Some(status) = d.status {
        let message = format!("mock: injected {status} (x-mock-status)");
        return send_error_typed(res, api, status, &message, None, req.header("x-mock-retry-after"));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return send_error(res, api, 400, "We could not parse the JSON body of your request.");
    };
    let model = match api {
        // Bedrock names the model in the path and streams by operation; its
        // schema refuses the Messages API's `model` and `stream`.
        Api::Bedrock if !body["anthropic_version"].is_string() => {
            return send_error(res, api, 400, "Malformed input request: required key [anthropic_version] not found")
        }
        // Bedrock knows only some of Anthropic's beta flags; Claude Code's own is not one of them.
        Api::Bedrock
            if body["anthropic_beta"]
                .as_array()
                .is_some_and(|b| b.iter().any(|f| f.as_str().is_none_or(|f| f.starts_with("claude-code-")))) =>
        {
            return send_error(res, api, 400, "invalid beta flag")
        }
        Api::Bedrock => match ["model", "stream"].into_iter().find(|key| body.get(key).is_some()) {
            Some(key) => {
                let message = format!(
                    "Malformed input request: #: extraneous key [{key}] is not permitted, \
                     please reformat your input and try again."
                );
                return send_error(res, api, 400, &message);
            }
            None => bedrock_model(req.route()),
        },
        // A deployment-based path names the deployment; Azure answers with its model.
        Api::Azure if azure_deployment(req.route()).is_some() => {
            azure_deployment(req.route()).unwrap_or_default().to_owned()
        }
        _ => match body["model"].as_str() {
            Some(model) => model.to_owned(),
            None => return send_error(res, api, 400, "model: Field required"),
        },
    };
    // The model the provider says answered: a dated snapshot of the one asked for, say.
    let model = directive(req, api.vendor(), "x-mock-model").map_or(model, str::to_owned);
    if let Err(message) = d.add_prompt(req, api.format(), &body) {
        return send_error(res, api, 400, &message);
    }
    let usage = d.usage.take().unwrap_or_else(|| default_usage(api.format()));
    let answer = match Answer::for_request(api.format(), &body, &d) {
        Ok(answer) => answer,
        Err(message) => return send_error(res, api, 400, &message),
    };
    let reasoning = d.reasoning.as_deref();
    // Bedrock streams by operation (path), not by a body field.
    let stream = match api {
        Api::Bedrock => req.route().ends_with("/invoke-with-response-stream"),
        _ => body["stream"] == true,
    };
    if stream {
        let include_usage = body["stream_options"]["include_usage"] == true;
        let events = match api {
            Api::OpenAi => chat_stream(api, &model, &answer, &usage, include_usage, false),
            Api::Azure => {
                let mut events = vec![data(&azure_prompt_filter_chunk())];
                events.extend(chat_stream(api, &model, &answer, &usage, include_usage, false));
                events
            }
            Api::Gemini => chat_stream(api, &model, &answer, &usage, include_usage, d.gemini_quirks),
            Api::Responses | Api::AzureResponses => responses_stream(api, &model, &answer, reasoning, &usage),
            Api::Anthropic => messages_stream(api, &model, &answer, reasoning, &usage).iter().map(named).collect(),
            Api::Bedrock => bedrock_stream(&model, &answer, reasoning, &usage),
        };
        let closed = send_stream(res, api, &events, &d)?;
        if let Some(closed) = closed {
            lock(holds).push((req.header("x-test-marker").unwrap_or_default().to_owned(), closed));
        }
        Ok(())
    } else {
        let body = match api {
            Api::OpenAi | Api::Gemini | Api::Azure => chat_json(api, &model, &answer, &usage),
            Api::Responses | Api::AzureResponses => responses_json(api, &model, &answer, reasoning, &usage),
            Api::Anthropic | Api::Bedrock => messages_json(api, &model, &answer, reasoning, &usage),
        };
        send_json(res, api, &body, &d)
    }
}

/// What the mock says, decided by the conversation it was sent.
#[derive(Clone, Debug, PartialEq)]
enum Answer {
    /// The greeting, "Hello from mock-<provider>.".
    Hello,
    /// "The weather is <result>.", after a tool result.
    Weather(String),
    /// Calls of the named tools, the i-th with `arguments[i]` ([`tool_arguments`]`(i)`
    /// unless `x-mock-call` named them), after the text [`PREAMBLE`] when `preamble`.
    ToolCalls { preamble: bool, names: Vec<String>, arguments: Vec<String> },
    /// "Tool said: <quote>", after the result of an `x-mock-call`.
    ToolSaid(String),
}

/// What "Tool said: …" quotes from an `x-mock-call`'s result: the first line
/// with this mark, from the mark on.
pub const TOOL_OUTPUT_MARK: &str = "tool-output:";

/// The arguments of the (first) mocked tool call.
pub const TOOL_ARGUMENTS: &str = r#"{"city": "Paris"}"#;
/// The text before the calls of `x-mock-tool-calls: all`.
pub const PREAMBLE: &str = "Let me check.";
const CITIES: [&str; 4] = ["Paris", "Lyon", "Nice", "Lille"];

/// The arguments of the i-th call: `{"city": "Paris"}`, then Lyon, Nice, Lille.
pub fn tool_arguments(i: usize) -> String {
    format!(r#"{{"city": "{}"}}"#, CITIES[i % CITIES.len()])
}

/// Arguments as streams send them: in fragments that are not JSON alone.
fn argument_parts(arguments: &str) -> Vec<String> {
    let (head, tail) = arguments.split_at(7.min(arguments.len()));
    let (middle, tail) = tail.split_at(6.min(tail.len()));
    vec![head.to_owned(), middle.to_owned(), tail.to_owned()]
}

/// OpenAI's and Anthropic's ids of the i-th call.
fn call_id(i: usize) -> String {
    format!("call_mock_{}", i + 1)
}

fn tool_use_id(i: usize) -> String {
    format!("toolu_mock_{}", i + 1)
}

impl Answer {
    /// Only Chat (OpenAI, Gemini), Messages and Bedrock requests run tools
    /// by default; the Responses API gets the greeting unless `x-mock-call`.
    fn for_request(api: Api, body: &Value, d: &Directives) -> Result<Answer, String> {
        if let Some((name, arguments)) = &d.call {
            return match latest_tool_result(api, body) {
                Some(result) => Ok(Answer::ToolSaid(quote(&result))),
                None if offered_tools(api, body).contains(&name.as_str()) => Ok(Answer::ToolCalls {
                    preamble: false,
                    names: vec![name.clone()],
                    arguments: vec![arguments.clone()],
                }),
                None => Err(format!("mock: x-mock-call names {name}, which is not among the request's tools")),
            };
        }
        if d.no_tools {
            return Ok(Answer::Hello);
        }
        Ok(Self::by_default(api, body, d.all_tools))
    }

    fn by_default(api: Api, body: &Value, all_tools: bool) -> Answer {
        let Some(last) = body["messages"].as_array().and_then(|m| m.last()) else {
            return Answer::Hello;
        };
        let tools = body["tools"].as_array().map(Vec::as_slice).unwrap_or_default();
        let (result, names): (_, Vec<&str>) = match api {
            Api::OpenAi | Api::Gemini => (
                (last["role"] == "tool").then(|| text_of(&last["content"])),
                tools.iter().filter_map(|t| t["function"]["name"].as_str()).collect(),
            ),
            Api::Anthropic | Api::Bedrock => (
                last["content"]
                    .as_array()
                    .filter(|_| last["role"] == "user")
                    .and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_result"))
                    .map(|block| text_of(&block["content"])),
                tools.iter().filter_map(|t| t["name"].as_str()).collect(),
            ),
            Api::Responses | Api::Azure | Api::AzureResponses => (None, Vec::new()),
        };
        match (result, names.split_first()) {
            (Some(result), _) => Answer::Weather(result),
            (None, Some((first, _))) if last["role"] == "user" => {
                let names = if all_tools { names.clone() } else { vec![*first] };
                let arguments = (0..names.len()).map(tool_arguments).collect();
                Answer::ToolCalls {
                    preamble: all_tools,
                    names: names.into_iter().map(str::to_owned).collect(),
                    arguments,
                }
            }
            _ => Answer::Hello,
        }
    }

    /// The text in the pieces a stream sends.
    fn text_parts(&self, api: Api) -> Vec<String> {
        match self {
            Answer::Hello => vec!["Hello".into(), " from".into(), format!(" mock-{}.", api.vendor())],
            Answer::Weather(result) => vec!["The weather".into(), " is ".into(), result.clone(), ".".into()],
            Answer::ToolCalls { preamble: true, .. } => vec![PREAMBLE.into()],
            Answer::ToolCalls { preamble: false, .. } => Vec::new(),
            Answer::ToolSaid(quote) => vec!["Tool said: ".into(), quote.clone()],
        }
    }

    fn tool_names(&self) -> &[String] {
        match self {
            Answer::ToolCalls { names, .. } => names,
            _ => &[],
        }
    }

    /// The JSON arguments of the i-th call.
    fn arguments(&self, i: usize) -> String {
        match self {
            Answer::ToolCalls { arguments, .. } => arguments.get(i).cloned().unwrap_or_else(|| tool_arguments(i)),
            _ => tool_arguments(i),
        }
    }
}

/// The names of the tools a request offers (functions, for the OpenAI APIs).
fn offered_tools(api: Api, body: &Value) -> Vec<&str> {
    let tools = body["tools"].as_array().map(Vec::as_slice).unwrap_or_default();
    tools
        .iter()
        .filter_map(|t| match api {
            Api::OpenAi | Api::Gemini | Api::Azure => t["function"]["name"].as_str(),
            Api::Anthropic | Api::Bedrock | Api::Responses | Api::AzureResponses => t["name"].as_str(),
        })
        .collect()
}

/// The text of the tool result the conversation ends with, if it does:
/// a Chat `tool` message, an Anthropic user turn with a `tool_result` block,
/// a Responses `function_call_output` or `custom_tool_call_output` item.
fn latest_tool_result(api: Api, body: &Value) -> Option<String> {
    let turns = match api {
        Api::Responses | Api::AzureResponses => &body["input"],
        _ => &body["messages"],
    };
    let last = turns.as_array()?.last()?;
    match api {
        Api::OpenAi | Api::Gemini | Api::Azure => (last["role"] == "tool").then(|| text_of(&last["content"])),
        Api::Anthropic | Api::Bedrock => last["content"]
            .as_array()
            .filter(|_| last["role"] == "user")?
            .iter()
            .find(|b| b["type"] == "tool_result")
            .map(|b| text_of(&b["content"])),
        Api::Responses | Api::AzureResponses => {
            matches!(last["type"].as_str(), Some("function_call_output" | "custom_tool_call_output"))
                .then(|| text_of(&last["output"]))
        }
    }
}

/// The first line of a tool result with [`TOOL_OUTPUT_MARK`], from the mark
/// on; the whole result when none has it.
fn quote(result: &str) -> String {
    result
        .lines()
        .find_map(|line| line.find(TOOL_OUTPUT_MARK).map(|at| line[at..].trim_end().to_owned()))
        .unwrap_or_else(|| result.to_owned())
}

/// The text of a string content or of an array of text parts or blocks.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
        _ => String::new(),
    }
}

/// A request the provider refuses before reading it: status, message, and
/// for Bedrock the `x-amzn-errortype`.
struct Refused {
    status: u16,
    message: String,
    aws_type: Option<&'static str>,
}

impl Refused {
    fn new(status: u16, message: &str) -> Refused {
        Refused { status, message: message.to_owned(), aws_type: None }
    }

    fn send(self, res: &mut Responder, api: Api) -> io::Result<()> {
        send_error_typed(res, api, self.status, &self.message, self.aws_type, None)
    }
}

/// Whether `presented` is one of `accepted`'s comma-separated keys.
fn accepts(accepted: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| accepted.split(',').map(str::trim).any(|k| !k.is_empty() && k == p))
}

fn check_auth(keys: &ProviderKeys, api: Api, req: &Request) -> Result<(), Refused> {
    let bearer = |key: &str| accepts(key, req.header("authorization").and_then(|a| a.strip_prefix("Bearer ")));
    let signed = req.header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 "));
    match api {
        Api::Bedrock if signed => {
            let Some(aws) = &keys.aws else {
                let message = "The security token included in the request is invalid.";
                return Err(Refused { aws_type: Some("UnrecognizedClientException"), ..Refused::new(403, message) });
            };
            sigv4::verify(aws, AWS_REGION, &req.method, &req.path, &req.headers, &req.body).map_err(|r| Refused {
                status: 403,
                message: r.message,
                aws_type: Some(r.error_type),
            })
        }
        Api::OpenAi | Api::Responses if !bearer(&keys.openai) => Err(Refused::new(401, "Incorrect API key provided.")),
        Api::Gemini if !bearer(&keys.gemini) => {
            Err(Refused::new(401, "API key not valid. Please pass a valid API key."))
        }
        Api::Bedrock if !bearer(&keys.bedrock) => Err(Refused::new(403, "Authentication failed: invalid API key.")),
        Api::Azure | Api::AzureResponses if !accepts(&keys.azure, req.header("api-key")) => Err(Refused::new(
            401,
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key \
             for an active subscription and use a correct regional API endpoint for your resource.",
        )),
        Api::Anthropic if !accepts(&keys.anthropic, req.header("x-api-key")) => {
            Err(Refused::new(401, "invalid x-api-key"))
        }
        Api::Anthropic if req.header("anthropic-version").is_none() => {
            Err(Refused::new(400, "anthropic-version: header is required"))
        }
        _ => Ok(()),
    }
}

/// The first chunk of an Azure chat stream: the prompt's content-filter
/// results, with no choices and an empty model.
fn azure_prompt_filter_chunk() -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
           "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {
               "hate": safe, "self_harm": safe, "sexual": safe, "violence": safe}}]})
}

/// The model of `/model/{id}/invoke[-with-response-stream]`; clients
/// percent-encode the `:` and `/` of versioned IDs and ARNs.
fn bedrock_model(path: &str) -> String {
    let id = path.trim_start_matches("/model/");
    let id = id.strip_suffix("/invoke-with-response-stream").or_else(|| id.strip_suffix("/invoke")).unwrap_or(id);
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
    match api.format() {
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
        Api::Anthropic | Api::Bedrock | Api::Azure | Api::AzureResponses => json!({
            "input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 15, "service_tier": "standard",
        }),
    }
}

/// A fixed timestamp keeps responses byte-for-byte reproducible.
const CREATED: u64 = 1_741_569_952;

fn chat_json(api: Api, model: &str, answer: &Answer, usage: &Value) -> Value {
    let text = answer.text_parts(api).concat();
    let mut message = json!({"role": "assistant", "content": text, "refusal": null, "annotations": []});
    let mut finish = "stop";
    if !answer.tool_names().is_empty() {
        let calls: Vec<Value> = answer
            .tool_names()
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let function = json!({"name": name, "arguments": answer.arguments(i)});
                json!({"id": call_id(i), "type": "function", "function": function})
            })
            .collect();
        if text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = json!(calls);
        finish = "tool_calls";
    }
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage, "service_tier": "default", "system_fingerprint": "fp_mock",
    })
}

/// The output items of a Responses answer: the reasoning, the message (when
/// there is text or no call), then the function calls.
fn response_items(api: Api, answer: &Answer, reasoning: Option<&str>) -> Vec<Value> {
    let mut items = Vec::new();
    if let Some(summary) = reasoning {
        items.push(json!({"id": "rs_mock", "type": "reasoning",
                          "summary": [{"type": "summary_text", "text": summary}],
                          "encrypted_content": ENCRYPTED_REASONING}));
    }
    let text = answer.text_parts(api).concat();
    if !text.is_empty() || answer.tool_names().is_empty() {
        items.push(output_message(&text));
    }
    for (i, name) in answer.tool_names().iter().enumerate() {
        items.push(json!({"id": format!("fc_mock_{}", i + 1), "type": "function_call", "status": "completed",
                          "arguments": answer.arguments(i), "call_id": call_id(i), "name": name}));
    }
    items
}

fn responses_json(api: Api, model: &str, answer: &Answer, reasoning: Option<&str>, usage: &Value) -> Value {
    response_object(model, "completed", json!(response_items(api, answer, reasoning)), usage.clone())
}

/// The `encrypted_content` of a mocked reasoning item: opaque, as OpenAI's is.
pub const ENCRYPTED_REASONING: &str = "gAAAAABmock-encrypted-reasoning";
/// The signature of a mocked thinking block, which clients must send back.
pub const SIGNATURE: &str = "bW9jay1zaWduYXR1cmU=";

fn response_object(model: &str, status: &str, output: Value, usage: Value) -> Value {
    json!({"id": "resp_mock", "object": "response", "created_at": CREATED, "status": status,
           "model": model, "output": output, "usage": usage})
}

fn output_message(text: &str) -> Value {
    json!({"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

fn messages_json(api: Api, model: &str, answer: &Answer, reasoning: Option<&str>, usage: &Value) -> Value {
    let text = answer.text_parts(api).concat();
    let mut content: Vec<Value> = Vec::new();
    if let Some(thinking) = reasoning {
        content.push(json!({"type": "thinking", "thinking": thinking, "signature": SIGNATURE}));
    }
    if !text.is_empty() || answer.tool_names().is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    content.extend(answer.tool_names().iter().enumerate().map(|(i, name)| {
        let input = serde_json::from_str::<Value>(&answer.arguments(i)).unwrap_or_default();
        json!({"type": "tool_use", "id": tool_use_id(i), "name": name, "input": input})
    }));
    let stop = if answer.tool_names().is_empty() { "end_turn" } else { "tool_use" };
    json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop, "stop_sequence": null, "usage": usage,
    })
}

/// Data-only SSE. With `include_usage`, every chunk carries `"usage": null`
/// and a last chunk with empty `choices` carries the usage; without it the
/// key is absent, as documented.
/// With `gemini_quirks`, tool calls stream as Gemini's OpenAI-compatible
/// endpoint sends them: each call whole in one delta without an `index`, and
/// the stream finishes with `stop`, not `tool_calls` (googleapis/python-genai
/// issue 2868, open-webui/computer issue 224).
fn chat_stream(
    api: Api,
    model: &str,
    answer: &Answer,
    usage: &Value,
    include_usage: bool,
    gemini_quirks: bool,
) -> Vec<Vec<u8>> {
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
    let mut events = Vec::new();
    let text = answer.text_parts(api);
    if !text.is_empty() || answer.tool_names().is_empty() {
        events.push(data(&choice(json!({"role": "assistant", "content": ""}), Value::Null)));
        events.extend(text.iter().map(|p| data(&choice(json!({"content": p}), Value::Null))));
    }
    // As OpenAI streams calls: one after another, each with its id and name
    // first and empty arguments, then argument fragments under its index.
    for (i, name) in answer.tool_names().iter().enumerate() {
        if gemini_quirks {
            let call = json!({"id": format!("function-call-{}", i + 1), "type": "function",
                              "function": {"name": name, "arguments": answer.arguments(i)}});
            let mut delta = json!({"tool_calls": [call]});
            if events.is_empty() {
                delta["role"] = json!("assistant");
            }
            events.push(data(&choice(delta, Value::Null)));
            continue;
        }
        let call = json!({"index": i, "id": call_id(i), "type": "function",
                          "function": {"name": name, "arguments": ""}});
        let mut first = json!({"tool_calls": [call]});
        if events.is_empty() {
            first = json!({"role": "assistant", "content": null, "tool_calls": [call], "refusal": null});
        }
        events.push(data(&choice(first, Value::Null)));
        events.extend(
            argument_parts(&answer.arguments(i)).iter().map(|p| {
                data(&choice(json!({"tool_calls": [{"index": i, "function": {"arguments": p}}]}), Value::Null))
            }),
        );
    }
    let finish = if answer.tool_names().is_empty() || gemini_quirks { "stop" } else { "tool_calls" };
    events.push(data(&choice(json!({}), json!(finish))));
    if include_usage {
        let mut last = chunk(json!([]));
        last["usage"] = usage.clone();
        events.push(data(&last));
    }
    events.push(b"data: [DONE]\n\n".to_vec());
    events
}

/// Named-event SSE as the Responses API streams: the response created and in
/// progress; then per output item its `output_item.added`, its own events
/// and its `output_item.done` (a message: the text part added, the text
/// deltas, the text and part done; a function call: argument deltas and
/// done; reasoning: a summary part with its text deltas); then
/// `response.completed` with the whole output and the usage. The spec's
/// example ends there, no `[DONE]`.
fn responses_stream(api: Api, model: &str, answer: &Answer, reasoning: Option<&str>, usage: &Value) -> Vec<Vec<u8>> {
    let pending = response_object(model, "in_progress", json!([]), Value::Null);
    let mut bodies = vec![
        json!({"type": "response.created", "response": pending}),
        json!({"type": "response.in_progress", "response": pending}),
    ];
    for (index, item) in response_items(api, answer, reasoning).into_iter().enumerate() {
        let id = item["id"].clone();
        let at = |mut body: Value| {
            body["item_id"] = id.clone();
            body["output_index"] = json!(index);
            body
        };
        let mut adding = item.clone();
        match item["type"].as_str() {
            Some("reasoning") => {
                adding = json!({"id": id, "type": "reasoning", "summary": []});
            }
            Some("function_call") => {
                adding["status"] = json!("in_progress");
                adding["arguments"] = json!("");
            }
            _ => {
                adding["status"] = json!("in_progress");
                adding["content"] = json!([]);
            }
        }
        bodies.push(json!({"type": "response.output_item.added", "output_index": index, "item": adding}));
        match item["type"].as_str() {
            Some("reasoning") => {
                let text = item["summary"][0]["text"].clone();
                let part = |text: &Value| json!({"type": "summary_text", "text": text});
                bodies.extend([
                    at(json!({"type": "response.reasoning_summary_part.added", "summary_index": 0,
                              "part": part(&json!(""))})),
                    at(json!({"type": "response.reasoning_summary_text.delta", "summary_index": 0, "delta": text})),
                    at(json!({"type": "response.reasoning_summary_text.done", "summary_index": 0, "text": text})),
                    at(json!({"type": "response.reasoning_summary_part.done", "summary_index": 0,
                              "part": part(&text)})),
                ]);
            }
            Some("function_call") => {
                let arguments = item["arguments"].as_str().unwrap_or_default();
                bodies.extend(
                    argument_parts(arguments)
                        .into_iter()
                        .map(|p| at(json!({"type": "response.function_call_arguments.delta", "delta": p}))),
                );
                bodies.push(at(json!({"type": "response.function_call_arguments.done", "arguments": arguments})));
            }
            _ => {
                let text = item["content"][0]["text"].as_str().unwrap_or_default();
                let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
                bodies.push(at(json!({"type": "response.content_part.added", "content_index": 0, "part": part("")})));
                bodies.extend(answer.text_parts(Api::Responses).iter().map(|p| {
                    at(json!({"type": "response.output_text.delta", "content_index": 0, "delta": p, "logprobs": []}))
                }));
                bodies.extend([
                    at(json!({"type": "response.output_text.done", "content_index": 0, "text": text,
                              "logprobs": []})),
                    at(json!({"type": "response.content_part.done", "content_index": 0, "part": part(text)})),
                ]);
            }
        }
        bodies.push(json!({"type": "response.output_item.done", "output_index": index, "item": item}));
    }
    bodies
        .push(json!({"type": "response.completed", "response": responses_json(api, model, answer, reasoning, usage)}));
    bodies
        .into_iter()
        .enumerate()
        .map(|(seq, mut body)| {
            body["sequence_number"] = json!(seq);
            named(&body)
        })
        .collect()
}

/// The events of an Anthropic stream (named-event SSE, as in the Anthropic
/// streaming docs). `message_start` reports the input side and a placeholder
/// `output_tokens: 1`; the cumulative output count arrives in
/// `message_delta`, so a gateway that adds the two instead of taking the last
/// gets a visibly wrong total. A tool call streams as a `tool_use` block
/// whose input arrives in `input_json_delta` fragments, the first one empty
/// as Anthropic sends it.
fn messages_stream(api: Api, model: &str, answer: &Answer, reasoning: Option<&str>, usage: &Value) -> Vec<Value> {
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let output_tokens = usage.get("output_tokens").cloned().unwrap_or(json!(0));
    // Each content block: its start and its deltas.
    let mut blocks: Vec<(Value, Vec<Value>)> = Vec::new();
    // Thinking streams its text, then its signature.
    if let Some(thinking) = reasoning {
        let deltas = vec![
            json!({"type": "thinking_delta", "thinking": thinking}),
            json!({"type": "signature_delta", "signature": SIGNATURE}),
        ];
        blocks.push((json!({"type": "thinking", "thinking": "", "signature": ""}), deltas));
    }
    let text = answer.text_parts(api);
    if !text.is_empty() || answer.tool_names().is_empty() {
        let deltas = text.iter().map(|p| json!({"type": "text_delta", "text": p})).collect();
        blocks.push((json!({"type": "text", "text": ""}), deltas));
    }
    for (i, name) in answer.tool_names().iter().enumerate() {
        let fragments = std::iter::once(String::new()).chain(argument_parts(&answer.arguments(i)));
        blocks.push((
            json!({"type": "tool_use", "id": tool_use_id(i), "name": name, "input": {}}),
            fragments.map(|p| json!({"type": "input_json_delta", "partial_json": p})).collect(),
        ));
    }
    let stop = if answer.tool_names().is_empty() { "end_turn" } else { "tool_use" };
    let mut bodies = vec![json!({"type": "message_start", "message": {
        "id": "msg_mock", "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": null, "stop_sequence": null, "usage": start_usage}})];
    for (index, (block, deltas)) in blocks.into_iter().enumerate() {
        bodies.push(json!({"type": "content_block_start", "index": index, "content_block": block}));
        if index == 0 {
            bodies.push(json!({"type": "ping"}));
        }
        bodies.extend(
            deltas.into_iter().map(|delta| json!({"type": "content_block_delta", "index": index, "delta": delta})),
        );
        bodies.push(json!({"type": "content_block_stop", "index": index}));
    }
    bodies.extend([
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
               "usage": {"output_tokens": output_tokens}}),
        json!({"type": "message_stop"}),
    ]);
    bodies
}

/// InvokeModelWithResponseStream: each Anthropic stream event, base64 in the
/// `bytes` of a `chunk` event message, with the random-length `p` padding
/// Bedrock adds; `message_stop` carries Bedrock's invocation metrics.
fn bedrock_stream(model: &str, answer: &Answer, reasoning: Option<&str>, usage: &Value) -> Vec<Vec<u8>> {
    let mut bodies = messages_stream(Api::Bedrock, model, answer, reasoning, usage);
    if let Some(stop) = bodies.last_mut() {
        stop["amazon-bedrock-invocationMetrics"] = json!({
            "inputTokenCount": usage.get("input_tokens").cloned().unwrap_or(json!(0)),
            "outputTokenCount": usage.get("output_tokens").cloned().unwrap_or(json!(0)),
            "invocationLatency": 420, "firstByteLatency": 180,
        });
    }
    bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let payload = json!({"bytes": base64(body.to_string().as_bytes()), "p": &"abcdefghijklmnop"[..i % 16]});
            event_stream_message(
                &[(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")],
                payload.to_string().as_bytes(),
            )
        })
        .collect()
}

/// One AWS event-stream message: total length, headers length, prelude CRC,
/// string headers (type 7), payload, message CRC; integers big-endian.
fn event_stream_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::new();
    for (name, value) in headers {
        encoded.push(name.len() as u8);
        encoded.extend_from_slice(name.as_bytes());
        encoded.push(7);
        encoded.extend_from_slice(&(value.len() as u16).to_be_bytes());
        encoded.extend_from_slice(value.as_bytes());
    }
    let total = 12 + encoded.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&encoded);
    out.extend_from_slice(payload);
    let message_crc = crc32(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Standard base64 (RFC 4648 alphabet) with `=` padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [group[0], group.get(1).copied().unwrap_or(0), group.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 back to bytes; `None` on anything else.
fn unbase64(text: &[u8]) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text: Vec<u8> = text.iter().copied().take_while(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text {
        acc = acc << 6 | ALPHABET.iter().position(|a| *a == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xFF) as u8);
        }
    }
    Some(out)
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
    match api.format() {
        Api::Anthropic => {
            named(&json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
        }
        // Bedrock reports in-stream errors as exception messages.
        Api::Bedrock => event_stream_message(
            &[
                (":exception-type", "serviceUnavailableException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            json!({"message": "Overloaded"}).to_string().as_bytes(),
        ),
        // It follows the first two events, numbered 0 and 1.
        Api::Responses => named(&json!({"type": "error", "code": "server_error", "param": null,
                                        "message": "The server had an error while processing your request.",
                                        "sequence_number": 2})),
        Api::OpenAi | Api::Gemini | Api::Azure | Api::AzureResponses => {
            data(&openai_error(500, "The server had an error while processing your request."))
        }
    }
}

/// Lines no SSE parser should trip on: an unknown field, a data line that is
/// not JSON, a comment and a stray CR-only line ending.
const GARBAGE: &[u8] = b"this is not sse\n\ndata: {\"truncated\": \n\n: comment\n\nfoo: bar\r\r\n";

/// What a stream decoder should skip: [`GARBAGE`] for SSE; for Bedrock's
/// event stream, a well-framed message of an event type no decoder knows.
fn garbage(api: Api) -> Vec<u8> {
    match api {
        Api::Bedrock => event_stream_message(
            &[(":event-type", "mockUnknownEvent"), (":content-type", "application/json"), (":message-type", "event")],
            b"{\"not\": \"a chunk\"}",
        ),
        _ => GARBAGE.to_vec(),
    }
}

fn content_type(d: &Directives, wanted: &'static str) -> &'static str {
    if d.fault == Some(Fault::WrongContentType) {
        "text/plain"
    } else {
        wanted
    }
}

/// Anthropic and Bedrock stamp every response with a request id.
fn headers(api: Api, content_type: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut headers = vec![("content-type", content_type)];
    match api {
        Api::Anthropic => headers.push(("request-id", "req_mock")),
        Api::Bedrock => headers.push(("x-amzn-requestid", "00000000-0000-4000-8000-000000000000")),
        _ => {}
    }
    headers
}

/// Each event is its own chunk, so the gateway sees the stream as it would
/// from the network; faults strike after the second event.
/// Returns, for a held stream, whether the peer closed it during the hold.
fn send_stream(res: &mut Responder, api: Api, events: &[Vec<u8>], d: &Directives) -> io::Result<Option<bool>> {
    let mut headers = match api {
        Api::Bedrock => {
            let mut headers = headers(api, content_type(d, "application/vnd.amazon.eventstream"));
            headers.push(("x-amzn-bedrock-content-type", "application/json"));
            headers
        }
        _ => headers(api, content_type(d, "text/event-stream")),
    };
    headers.push(("cache-control", "no-cache"));
    let mut body = res.start_chunked(200, &headers)?;
    body.set_gap(d.chunk_delay);
    for (i, event) in events.iter().enumerate() {
        match d.fault {
            Some(Fault::ResetMidStream) if i == 2 => {
                body.reset();
                return Ok(None);
            }
            Some(Fault::ErrorEvent) if i == 2 => {
                pieces(&mut body, &error_event(api), d.chunk_bytes)?;
                return body.finish().map(|()| None);
            }
            Some(Fault::MalformedSse) if i == 1 || i + 1 == events.len() => {
                pieces(&mut body, &garbage(api), d.chunk_bytes)?
            }
            _ => {}
        }
        if d.hold == Some(Hold::Last) && i + 1 == events.len() {
            if body.wait_for_peer_close(HOLD_MAX) {
                return Ok(Some(true));
            }
            pieces(&mut body, event, d.chunk_bytes)?;
            return body.finish().map(|()| Some(false));
        }
        match pieces(&mut body, event, d.chunk_bytes) {
            // A client that left before the hold (its close reached the mock while
            // the events before the held one were still being written) closed it too.
            Err(_) if d.hold.is_some() => return Ok(Some(true)),
            r => r?,
        }
    }
    if d.hold == Some(Hold::End) {
        if body.wait_for_peer_close(HOLD_MAX) {
            return Ok(Some(true));
        }
        return body.finish().map(|()| Some(false));
    }
    body.finish().map(|()| None)
}

/// Sends `bytes` as one chunk, or in chunks of `size` bytes (`x-mock-chunk-bytes`),
/// so events and frames arrive cut at arbitrary points.
fn pieces(body: &mut Chunked, bytes: &[u8], size: Option<usize>) -> io::Result<()> {
    match size {
        None => body.chunk(bytes),
        Some(size) => bytes.chunks(size).try_for_each(|piece| body.chunk(piece)),
    }
}

/// Anthropic's `count_tokens` and Bedrock's `CountTokens`. The mock's count
/// is 10 plus the characters of every text in `system` and `messages`, so a
/// test can tell a provider's count from the gateway's estimate.
fn count_tokens(keys: &ProviderKeys, api: Api, req: &Request, res: &mut Responder) -> io::Result<()> {
    if let Err(refused) = check_auth(keys, api, req) {
        return refused.send(res, api);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return send_error(res, api, 400, "We could not parse the JSON body of your request.");
    };
    let request = match api {
        // Bedrock counts an InvokeModel body, base64 in input.invokeModel.body.
        Api::Bedrock => {
            let inner = body["input"]["invokeModel"]["body"].as_str().and_then(|b| unbase64(b.as_bytes()));
            let Some(inner) = inner.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) else {
                return send_error(res, api, 400, "Malformed input request: input.invokeModel.body");
            };
            if !inner["anthropic_version"].is_string() || !inner["max_tokens"].is_u64() || inner.get("model").is_some()
            {
                return send_error(res, api, 400, "Malformed input request: not an InvokeModel body");
            }
            inner
        }
        _ => {
            if body.get("max_tokens").is_some() {
                return send_error(res, api, 400, "max_tokens: Extra inputs are not permitted");
            }
            if !body["model"].is_string() {
                return send_error(res, api, 400, "model: Field required");
            }
            body
        }
    };
    let text = |v: &Value| -> usize {
        match v {
            Value::String(s) => s.chars().count(),
            Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).map(|t| t.chars().count()).sum(),
            _ => 0,
        }
    };
    let messages: usize = request["messages"].as_array().map_or(0, |m| m.iter().map(|m| text(&m["content"])).sum());
    let count = 10 + text(&request["system"]) + messages;
    let answer = match api {
        Api::Bedrock => json!({"inputTokens": count}),
        _ => json!({"input_tokens": count}),
    };
    res.send(200, &headers(api, "application/json"), answer.to_string().as_bytes())
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
        _ if d.chunk_bytes.is_some() => {
            let mut body = res.start_chunked(200, &headers)?;
            body.set_gap(d.chunk_delay);
            pieces(&mut body, &bytes, d.chunk_bytes)?;
            body.finish()
        }
        _ => res.send(200, &headers, &bytes),
    }
}

fn send_error(res: &mut Responder, api: Api, status: u16, message: &str) -> io::Result<()> {
    send_error_typed(res, api, status, message, None, None)
}

/// An error in the provider's shape; Bedrock's type overridden by `aws_type`,
/// a 429's `retry-after` (1 by default) by `retry_after`.
fn send_error_typed(
    res: &mut Responder,
    api: Api,
    status: u16,
    message: &str,
    aws_type: Option<&'static str>,
    retry_after: Option<&str>,
) -> io::Result<()> {
    let mut headers = headers(api, "application/json");
    match retry_after {
        Some(value) => headers.push(("retry-after", value)),
        None if status == 429 => headers.push(("retry-after", "1")),
        None => {}
    }
    let body = match api {
        Api::OpenAi | Api::Gemini | Api::Responses | Api::Azure | Api::AzureResponses => openai_error(status, message),
        Api::Anthropic => {
            json!({"type": "error", "error": {"type": anthropic_error_type(status), "message": message},
                                 "request_id": "req_mock"})
        }
        Api::Bedrock => {
            headers.push(("x-amzn-errortype", aws_type.unwrap_or_else(|| bedrock_error_type(status))));
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
    use llm_gateway::wire::stream::Transform;

    fn mock() -> MockProvider {
        MockProvider::start(ProviderKeys {
            openai: "sk-o".into(),
            anthropic: "sk-a".into(),
            gemini: "sk-g".into(),
            bedrock: "sk-b".into(),
            azure: "sk-z".into(),
            aws: Some(AwsCredentials {
                access_key_id: "AKIDMOCK".into(),
                secret_access_key: "mock/secret".into(),
                session_token: None,
            }),
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
        // The message arrives as an item, added and done, as Codex and the SDKs read it.
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        let done = events.iter().find(|e| e["type"] == "response.output_item.done").unwrap();
        assert_eq!(done["item"]["content"][0]["text"], "Hello from mock-openai.");
        assert!(types.contains(&"response.output_item.added") && types.contains(&"response.content_part.added"));
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
    fn azure_answers_on_its_paths_with_its_api_key() {
        let mock = mock();
        let key = [("api-key", "sk-z")];
        let body = r#"{"model":"prod-4o","messages":[{"role":"user","content":"hi"}]}"#;
        let (status, _, text) = post(&mock, "/openai/v1/chat/completions", &key, body);
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (v["model"].as_str(), v["choices"][0]["message"]["content"].as_str()),
            (Some("prod-4o"), Some("Hello from mock-azure."))
        );
        // Deployment paths name the model and need an api-version.
        let path = "/openai/deployments/dep-1/chat/completions";
        assert_eq!(post(&mock, path, &key, body).0, 404);
        let (status, _, text) = post(&mock, &format!("{path}?api-version=2024-10-21"), &key, body);
        assert_eq!((status, serde_json::from_str::<Value>(&text).unwrap()["model"].as_str()), (200, Some("dep-1")));
        // Its streams open with the prompt-filter chunk; a Bearer key is not its key.
        let stream = body.replace("}]}", r#"}],"stream":true}"#);
        let (_, _, text) = post(&mock, "/openai/v1/chat/completions", &key, &stream);
        let first = &payloads(&text)[0];
        assert_eq!((first["choices"].as_array().map(Vec::len), first["model"].as_str()), (Some(0), Some("")));
        assert!(first["prompt_filter_results"].is_array());
        assert_eq!(post(&mock, "/openai/v1/chat/completions", &[("authorization", "Bearer sk-z")], body).0, 401);
        let (status, _, text) =
            post(&mock, "/openai/responses?api-version=preview", &key, r#"{"model":"d","input":"x"}"#);
        assert_eq!((status, serde_json::from_str::<Value>(&text).unwrap()["object"].as_str()), (200, Some("response")));
    }

    #[test]
    fn bedrock_refuses_a_bad_signature_as_aws_does() {
        let mock = mock();
        let path = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke";
        let signed = "AWS4-HMAC-SHA256 Credential=AKIDMOCK/20260101/us-east-1/bedrock/aws4_request, \
                      SignedHeaders=host;x-amz-date, Signature=0000";
        let headers = [("authorization", signed), ("x-amz-date", "20260101T000000Z")];
        let res = ureq::post(&format!("http://127.0.0.1:{}{path}", mock.port()))
            .set(headers[0].0, headers[0].1)
            .set(headers[1].0, headers[1].1)
            .send_string(r#"{"anthropic_version":"bedrock-2023-05-31"}"#);
        let Err(ureq::Error::Status(403, res)) = res else { panic!("expected a 403") };
        assert_eq!(res.header("x-amzn-errortype"), Some("InvalidSignatureException"));
        assert!(res.into_string().unwrap().contains("signature we calculated does not match"));
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
        for extraneous in [r#""model":"m""#, r#""stream":false"#] {
            let body = format!(r#"{{"anthropic_version":"bedrock-2023-05-31",{extraneous}}}"#);
            let (status, _, text) = post(&mock, path, &headers, &body);
            assert_eq!(status, 400);
            assert!(text.contains("extraneous key"), "{text}");
        }
    }

    const BEDROCK: &[(&str, &str)] = &[("authorization", "Bearer sk-b")];
    const STREAM_PATH: &str = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream";

    fn json_of(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    fn chat_tools() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
               {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}])
    }

    fn anthropic_tools() -> Value {
        json!([{"name": "get_weather", "input_schema": {"type": "object"}},
               {"name": "other", "input_schema": {"type": "object"}}])
    }

    #[test]
    fn chat_tools_get_a_call_of_the_first_tool() {
        let mock = mock();
        for (path, key) in [("/v1/chat/completions", "Bearer sk-o"), ("/v1beta/openai/chat/completions", "Bearer sk-g")]
        {
            let headers = [("authorization", key)];
            let body =
                json!({"model": "m", "tools": chat_tools(), "messages": [{"role": "user", "content": "Weather?"}]});
            let (status, _, text) = post(&mock, path, &headers, &body.to_string());
            assert_eq!(status, 200, "{text}");
            let choice = &json_of(&text)["choices"][0];
            assert_eq!(choice["finish_reason"], "tool_calls");
            assert!(choice["message"]["content"].is_null());
            let call = &choice["message"]["tool_calls"][0];
            assert_eq!(call["type"], "function");
            assert_eq!(call["function"]["name"], "get_weather");
            assert_eq!(json_of(call["function"]["arguments"].as_str().unwrap()), json!({"city": "Paris"}));

            let mut streamed = body.clone();
            streamed["stream"] = json!(true);
            let (_, ctype, stream) = post(&mock, path, &headers, &streamed.to_string());
            assert_eq!(ctype, "text/event-stream");
            assert!(stream.ends_with("data: [DONE]\n\n"));
            let chunks = payloads(&stream);
            let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
            assert_eq!(
                (first["id"].as_str(), first["function"]["name"].as_str()),
                (Some(call_id(0).as_str()), Some("get_weather"))
            );
            let arguments: String = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
                .collect();
            assert_eq!(arguments, TOOL_ARGUMENTS);
            assert!(chunks.iter().filter(|c| c["choices"][0]["delta"]["tool_calls"].is_array()).count() > 2);
            assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
        }
    }

    #[test]
    fn tool_results_are_answered_with_their_content() {
        let mock = mock();
        let call = json!({"role": "assistant", "content": null, "tool_calls": [{"id": call_id(0), "type": "function",
            "function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS}}]});
        for content in
            [json!("sunny, 21C"), json!([{"type": "text", "text": "sunny, "}, {"type": "text", "text": "21C"}])]
        {
            let body = json!({"model": "m", "tools": chat_tools(), "messages": [
                {"role": "user", "content": "Weather?"}, call,
                {"role": "tool", "tool_call_id": call_id(0), "content": content}]});
            let (_, _, text) = post(&mock, "/v1/chat/completions", OPENAI, &body.to_string());
            let choice = &json_of(&text)["choices"][0];
            assert_eq!(choice["message"]["content"], "The weather is sunny, 21C.");
            assert_eq!(choice["finish_reason"], "stop");
        }
        let use_block = json!({"role": "assistant", "content": [{"type": "tool_use", "id": tool_use_id(0),
            "name": "get_weather", "input": {"city": "Paris"}}]});
        for content in [json!("sunny, 21C"), json!([{"type": "text", "text": "sunny, 21C"}])] {
            let result = json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": tool_use_id(0), "content": content}]});
            let body = json!({"model": "m", "max_tokens": 9, "tools": anthropic_tools(), "stream": true,
                              "messages": [{"role": "user", "content": "Weather?"}, use_block, result]});
            let (_, _, stream) = post(&mock, "/v1/messages", ANTHROPIC, &body.to_string());
            let text: String = payloads(&stream).iter().filter_map(|e| e["delta"]["text"].as_str()).collect();
            assert_eq!(text, "The weather is sunny, 21C.");
            let (_, _, json) = post(
                &mock,
                "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke",
                BEDROCK,
                &json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 9,
                        "messages": body["messages"]})
                .to_string(),
            );
            assert_eq!(json_of(&json)["content"][0]["text"], "The weather is sunny, 21C.");
        }
        // Without tools a user turn still gets the greeting; so does the Responses API.
        let (_, _, text) =
            post(&mock, "/v1/chat/completions", OPENAI, r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        assert_eq!(json_of(&text)["choices"][0]["message"]["content"], "Hello from mock-openai.");
        let (_, _, text) = post(
            &mock,
            "/v1/responses",
            OPENAI,
            &json!({"model": "gpt-5", "input": "hi", "tools": [{"type": "function", "name": "f"}]}).to_string(),
        );
        assert_eq!(json_of(&text)["output"][0]["content"][0]["text"], "Hello from mock-openai.");
    }

    #[test]
    fn anthropic_and_bedrock_tools_get_a_tool_use_block() {
        let mock = mock();
        let messages = json!([{"role": "user", "content": [{"type": "text", "text": "Weather?"}]}]);
        let body =
            json!({"model": "claude-sonnet-4-5", "max_tokens": 9, "tools": anthropic_tools(), "messages": messages});
        let bedrock = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 9,
                             "tools": anthropic_tools(), "messages": messages});
        let invoke = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke";
        for (path, headers, body) in [("/v1/messages", ANTHROPIC, &body), (invoke, BEDROCK, &bedrock)] {
            let (status, _, text) = post(&mock, path, headers, &body.to_string());
            assert_eq!(status, 200, "{text}");
            let message = json_of(&text);
            assert_eq!(message["stop_reason"], "tool_use");
            assert_eq!(
                message["content"],
                json!([{"type": "tool_use", "id": tool_use_id(0), "name": "get_weather", "input": {"city": "Paris"}}])
            );
        }
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let (_, _, stream) = post(&mock, "/v1/messages", ANTHROPIC, &streamed.to_string());
        let events = payloads(&stream);
        let start = events.iter().find(|e| e["type"] == "content_block_start").unwrap();
        assert_eq!(
            start["content_block"],
            json!({"type": "tool_use", "id": tool_use_id(0), "name": "get_weather", "input": {}})
        );
        let partial: String = events
            .iter()
            .filter(|e| e["delta"]["type"] == "input_json_delta")
            .map(|e| e["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(partial, TOOL_ARGUMENTS);
        let delta = events.iter().find(|e| e["type"] == "message_delta").unwrap();
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    }

    type Frame = (Vec<(String, String)>, Vec<u8>);

    /// Splits an event stream into (headers, payload) per message, checking
    /// both CRCs with the mock's own CRC-32.
    fn frames(mut bytes: &[u8]) -> Vec<Frame> {
        let be = |b: &[u8]| u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (total, headers_len) = (be(&bytes[0..]), be(&bytes[4..]));
            assert_eq!(be(&bytes[8..]) as u32, crc32(&bytes[..8]), "prelude CRC");
            assert_eq!(be(&bytes[total - 4..]) as u32, crc32(&bytes[..total - 4]), "message CRC");
            let mut h = &bytes[12..12 + headers_len];
            let mut headers = Vec::new();
            while !h.is_empty() {
                let n = h[0] as usize;
                let name = String::from_utf8(h[1..1 + n].to_vec()).unwrap();
                assert_eq!(h[1 + n], 7, "string header");
                let len = u16::from_be_bytes([h[2 + n], h[3 + n]]) as usize;
                headers.push((name, String::from_utf8(h[4 + n..4 + n + len].to_vec()).unwrap()));
                h = &h[4 + n + len..];
            }
            out.push((headers, bytes[12 + headers_len..total - 4].to_vec()));
            bytes = &bytes[total..];
        }
        out
    }

    #[test]
    fn crc32_and_base64_match_their_standards() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        let vectors =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn bedrock_stream_is_an_aws_event_stream_of_anthropic_events() {
        let mock = mock();
        let usage = r#"{"input_tokens":31,"output_tokens":7}"#;
        let body = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 9,
                          "messages": [{"role": "user", "content": "hi"}]});
        let res = ureq::post(&format!("http://127.0.0.1:{}{STREAM_PATH}", mock.port()))
            .set("authorization", "Bearer sk-b")
            .set("x-mock-usage", usage)
            .send_string(&body.to_string())
            .unwrap();
        assert_eq!(res.content_type(), "application/vnd.amazon.eventstream");
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut res.into_reader(), &mut bytes).unwrap();
        let messages = frames(&bytes);
        assert_eq!(messages.len(), 9);
        for (headers, payload) in &messages {
            let expected =
                [(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")];
            let expected: Vec<(String, String)> =
                expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            assert_eq!(headers, &expected);
            assert!(json_of(std::str::from_utf8(payload).unwrap())["bytes"].is_string());
        }
        // The filter's own decoder reads it as the Anthropic stream it carries.
        let sse = llm_gateway::bedrock::BedrockToSse::new().feed(&bytes);
        let sse = String::from_utf8(sse).unwrap();
        let events = payloads(&sse);
        assert_eq!(events[0]["message"]["model"], "us.anthropic.claude-sonnet-4-5-20250929-v1:0");
        assert_eq!(events[0]["message"]["usage"]["input_tokens"], 31);
        let text: String = events.iter().filter_map(|e| e["delta"]["text"].as_str()).collect();
        assert_eq!(text, "Hello from mock-bedrock.");
        let stop = events.last().unwrap();
        assert_eq!(stop["type"], "message_stop");
        assert_eq!(stop["amazon-bedrock-invocationMetrics"]["outputTokenCount"], 7);

        // Tools stream as tool_use; faults come as exception messages and unknown events.
        let tools = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 9, "tools": anthropic_tools(),
                           "messages": [{"role": "user", "content": "Weather?"}]});
        let decode = |headers: &[(&str, &str)], body: &Value| {
            let mut req = ureq::post(&format!("http://127.0.0.1:{}{STREAM_PATH}", mock.port()));
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut req.send_string(&body.to_string()).unwrap().into_reader(), &mut bytes)
                .unwrap();
            (frames(&bytes), String::from_utf8(llm_gateway::bedrock::BedrockToSse::new().feed(&bytes)).unwrap())
        };
        let (_, sse) = decode(BEDROCK, &tools);
        let partial: String = payloads(&sse).iter().filter_map(|e| e["delta"]["partial_json"].as_str()).collect();
        assert_eq!(partial, TOOL_ARGUMENTS);
        assert!(sse.contains(r#""stop_reason":"tool_use""#));
        let (frames_seen, sse) = decode(&[BEDROCK, &[("x-mock-fault", "error-event")]].concat(), &body);
        assert_eq!(frames_seen.len(), 3);
        assert!(frames_seen[2].0.contains(&(":message-type".into(), "exception".into())));
        assert!(sse.contains("event: error") && sse.contains("Overloaded"), "{sse}");
        let (frames_seen, sse) = decode(&[BEDROCK, &[("x-mock-fault", "malformed-sse")]].concat(), &body);
        assert_eq!(frames_seen.len(), 11);
        assert!(!sse.contains("event: error") && sse.contains("message_stop"), "{sse}");
        // Errors before the stream are plain JSON with the exception name in a header.
        let res = ureq::post(&format!("http://127.0.0.1:{}{STREAM_PATH}", mock.port()))
            .set("authorization", "Bearer sk-b")
            .set("x-mock-status", "429")
            .send_string(&body.to_string());
        let Err(ureq::Error::Status(429, res)) = res else { panic!("expected 429") };
        assert_eq!(res.header("x-amzn-errortype"), Some("ThrottlingException"));
    }

    #[test]
    fn all_tools_are_called_after_some_text_when_asked() {
        let mock = mock();
        let all = [("x-mock-tool-calls", "all")];
        let chat = json!({"model": "m", "tools": chat_tools(), "messages": [{"role": "user", "content": "Weather?"}]});
        let (_, _, text) = post(&mock, "/v1/chat/completions", &[OPENAI, &all].concat(), &chat.to_string());
        let message = &json_of(&text)["choices"][0]["message"];
        assert_eq!(message["content"], PREAMBLE);
        let names: Vec<&str> =
            message["tool_calls"].as_array().unwrap().iter().map(|c| c["function"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["get_weather", "other"]);
        assert_eq!(message["tool_calls"][1]["function"]["arguments"], tool_arguments(1));
        assert_eq!(tool_arguments(1), r#"{"city": "Lyon"}"#);

        let mut streamed = chat.clone();
        streamed["stream"] = json!(true);
        let (_, _, stream) = post(&mock, "/v1/chat/completions", &[OPENAI, &all].concat(), &streamed.to_string());
        let mut arguments = [String::new(), String::new()];
        for chunk in payloads(&stream) {
            for call in chunk["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
                let i = call["index"].as_u64().unwrap() as usize;
                arguments[i].push_str(call["function"]["arguments"].as_str().unwrap());
            }
        }
        assert_eq!(arguments, [tool_arguments(0), tool_arguments(1)]);

        let messages = json!({"model": "m", "max_tokens": 9, "tools": anthropic_tools(), "stream": true,
                              "messages": [{"role": "user", "content": "Weather?"}]});
        let (_, _, stream) = post(&mock, "/v1/messages", &[ANTHROPIC, &all].concat(), &messages.to_string());
        let starts: Vec<Value> = payloads(&stream)
            .into_iter()
            .filter(|e| e["type"] == "content_block_start")
            .map(|e| json!([e["index"], e["content_block"]["type"]]))
            .collect();
        assert_eq!(starts, [json!([0, "text"]), json!([1, "tool_use"]), json!([2, "tool_use"])]);
        let (_, _, text) = post(
            &mock,
            "/v1/messages",
            &[ANTHROPIC, &all].concat(),
            &json!({"model": "m",
            "max_tokens": 9, "tools": anthropic_tools(), "messages": messages["messages"]})
            .to_string(),
        );
        let content = &json_of(&text)["content"];
        assert_eq!(content[0], json!({"type": "text", "text": PREAMBLE}));
        assert_eq!(content[2]["input"], json!({"city": "Lyon"}));
        assert_eq!(content[2]["id"], tool_use_id(1));
        assert_eq!(post(&mock, "/v1/messages", &[ANTHROPIC, &[("x-mock-tool-calls", "some")]].concat(), "{}").0, 400);
    }

    #[test]
    fn chunk_bytes_cuts_the_body_without_changing_it() {
        let mock = mock();
        for body in [r#"{"model":"m","stream":true}"#, r#"{"model":"m"}"#] {
            let (_, _, whole) = post(&mock, "/v1/messages", ANTHROPIC, body);
            let (_, _, cut) = post(&mock, "/v1/messages", &[ANTHROPIC, &[("x-mock-chunk-bytes", "5")]].concat(), body);
            assert_eq!(whole, cut);
        }
        assert_eq!(post(&mock, "/v1/messages", &[ANTHROPIC, &[("x-mock-chunk-bytes", "0")]].concat(), "{}").0, 400);
    }

    #[test]
    fn gemini_quirks_stream_whole_indexless_calls_that_finish_with_stop() {
        let mock = mock();
        let headers = [("authorization", "Bearer sk-g"), ("x-mock-quirks", "gemini"), ("x-mock-tool-calls", "all")];
        let body = json!({"model": "gemini-2.5-flash", "stream": true, "tools": chat_tools(),
                          "messages": [{"role": "user", "content": "Weather?"}]});
        let (_, _, stream) = post(&mock, "/v1beta/openai/chat/completions", &headers, &body.to_string());
        let calls: Vec<Value> = payloads(&stream)
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array().cloned())
            .flatten()
            .collect();
        assert_eq!(calls.len(), 2);
        assert!(calls.iter().all(|c| c.get("index").is_none()));
        assert_eq!(calls[1]["function"]["arguments"], tool_arguments(1));
        assert!(stream.contains(r#""finish_reason":"stop""#) && !stream.contains(r#""finish_reason":"tool_calls""#));
    }

    /// A user prompt carrying the mock's directives as lines.
    const AGENT_PROMPT: &str = "Run it.\nx-mock-call: Bash {\"command\": \"echo tool-output: 42\"}\n\
                                x-mock-usage: {\"input_tokens\": 7, \"output_tokens\": 3}";

    #[test]
    fn prompt_lines_call_the_named_tool_on_every_api_then_quote_its_output() {
        let mock = mock();
        let call = json!({"command": "echo tool-output: 42"});
        // Anthropic: the call, streamed as tool_use with the prompt's arguments and usage.
        let tools = json!([{"name": "Agent", "input_schema": {}}, {"name": "Bash", "input_schema": {}}]);
        let messages = json!([{"role": "user", "content": [{"type": "text", "text": "<system-reminder>x</system-reminder>"},
                                                          {"type": "text", "text": AGENT_PROMPT}]}]);
        let body = json!({"model": "claude-sonnet-4-6", "max_tokens": 9, "stream": true, "tools": tools,
                          "messages": messages});
        let (status, _, stream) = post(&mock, "/v1/messages", ANTHROPIC, &body.to_string());
        assert_eq!(status, 200, "{stream}");
        let events = payloads(&stream);
        assert_eq!(events[0]["message"]["usage"]["input_tokens"], 7);
        let start = events.iter().find(|e| e["type"] == "content_block_start").unwrap();
        assert_eq!(start["content_block"]["name"], "Bash");
        let partial: String = events.iter().filter_map(|e| e["delta"]["partial_json"].as_str()).collect();
        assert_eq!(json_of(&partial), call);
        // Its result, with text after the marked line, gets the quote.
        let mut turns = messages.as_array().unwrap().clone();
        turns.push(
            json!({"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": call}]}),
        );
        turns.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                          "content": "tool-output: 42\n\n<system-reminder>left</system-reminder>"}]}));
        let body = json!({"model": "claude-sonnet-4-6", "max_tokens": 9, "tools": tools, "messages": turns});
        let (_, _, text) = post(&mock, "/v1/messages", ANTHROPIC, &body.to_string());
        assert_eq!(json_of(&text)["content"][0]["text"], "Tool said: tool-output: 42");

        // Chat: a call of that tool, not of the first; a `tool` message gets the quote.
        let tools = json!([{"type": "function", "function": {"name": "Agent"}}, {"type": "function", "function": {"name": "Bash"}}]);
        let body = json!({"model": "gpt-5", "tools": tools, "messages": [
            {"role": "system", "content": "x-mock-tool-calls: none"}, {"role": "user", "content": AGENT_PROMPT},
            {"role": "system", "content": "in place"}]});
        let (_, _, text) = post(&mock, "/v1/chat/completions", OPENAI, &body.to_string());
        let message = &json_of(&text)["choices"][0]["message"];
        assert_eq!(message["tool_calls"][0]["function"]["name"], "Bash", "system text is no directive: {text}");
        assert_eq!(json_of(message["tool_calls"][0]["function"]["arguments"].as_str().unwrap()), call);
        let mut with_result = body.clone();
        let turns = with_result["messages"].as_array_mut().unwrap();
        turns.push(json!({"role": "assistant", "tool_calls": message["tool_calls"]}));
        turns.push(
            json!({"role": "tool", "tool_call_id": "call_mock_1", "content": "Exit 0\nOutput:\n  tool-output: 42 \n"}),
        );
        let (_, _, text) = post(&mock, "/v1/chat/completions", OPENAI, &with_result.to_string());
        assert_eq!(json_of(&text)["choices"][0]["message"]["content"], "Tool said: tool-output: 42");

        // Responses: a function_call item; then a function_call_output gets the quote.
        let tools = json!([{"type": "function", "name": "exec_command", "parameters": {}}, {"type": "web_search"}]);
        let prompt = AGENT_PROMPT.replace("Bash", "exec_command");
        let input = json!([{"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be good"}]},
                           {"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}]);
        let body = json!({"model": "gpt-5", "tools": tools, "input": input});
        let (_, _, text) = post(&mock, "/v1/responses", OPENAI, &body.to_string());
        let response = json_of(&text);
        assert_eq!(response["usage"], json!({"input_tokens": 7, "output_tokens": 3}));
        let item = &response["output"][0];
        assert_eq!((item["type"].as_str(), item["name"].as_str()), (Some("function_call"), Some("exec_command")));
        assert_eq!(json_of(item["arguments"].as_str().unwrap()), call);
        let mut input = input.as_array().unwrap().clone();
        input.push(item.clone());
        input.push(json!({"type": "function_call_output", "call_id": item["call_id"], "output": "tool-output: 42\n"}));
        let body = json!({"model": "gpt-5", "tools": tools, "input": input});
        let (_, _, text) = post(&mock, "/v1/responses", OPENAI, &body.to_string());
        assert_eq!(json_of(&text)["output"][0]["content"][0]["text"], "Tool said: tool-output: 42");
    }

    #[test]
    fn prompt_lines_are_checked_and_headers_win() {
        let mock = mock();
        let chat = |text: &str, headers: &[(&str, &str)]| {
            let body = json!({"model": "m", "tools": chat_tools(), "messages": [{"role": "user", "content": text}]});
            let (status, _, text) = post(&mock, "/v1/chat/completions", &[OPENAI, headers].concat(), &body.to_string());
            (status, text)
        };
        let (status, text) = chat("x-mock-call: nowhere {}", &[]);
        assert_eq!(status, 400);
        assert!(text.contains("not among the request's tools"), "{text}");
        for bad in ["x-mock-colour: red", "x-mock-call: get_weather [1]", "x-mock-usage: 12", "x-mock-tool-calls: some"]
        {
            assert_eq!(chat(&format!("hi\n{bad}"), &[]).0, 400, "{bad}");
        }
        // `none` answers with the greeting although tools are offered.
        let (_, text) = chat("hi\n  x-mock-tool-calls: none", &[]);
        assert_eq!(json_of(&text)["choices"][0]["message"]["content"], "Hello from mock-openai.");
        // A header beats its line.
        let (_, text) = chat("hi\nx-mock-tool-calls: none", &[("x-mock-tool-calls", "first")]);
        assert_eq!(json_of(&text)["choices"][0]["finish_reason"], "tool_calls");
        let (_, text) =
            chat("hi\nx-mock-usage: {\"prompt_tokens\": 1}", &[("x-mock-usage", r#"{"prompt_tokens": 2}"#)]);
        assert_eq!(json_of(&text)["usage"]["prompt_tokens"], 2);
    }

    #[test]
    fn responses_stream_items_as_openai_does_reasoning_and_calls_included() {
        let mock = mock();
        let text = "Go.\nx-mock-call: exec_command {\"cmd\": \"ls\"}\nx-mock-reasoning: Thinking it over.";
        let body = json!({"model": "gpt-5", "stream": true, "input": [{"role": "user", "content": text}],
                          "tools": [{"type": "function", "name": "exec_command"}]});
        let (_, _, stream) = post(&mock, "/v1/responses", OPENAI, &body.to_string());
        let events = payloads(&stream);
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let names: Vec<&str> = stream.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
        assert_eq!(names, types, "every event named");
        assert!(events.iter().enumerate().all(|(i, e)| e["sequence_number"] == i));
        assert_eq!(events[2]["item"], json!({"id": "rs_mock", "type": "reasoning", "summary": []}));
        assert_eq!(events[4]["delta"], "Thinking it over.");
        assert_eq!(events[7]["item"]["encrypted_content"], ENCRYPTED_REASONING);
        let added = &events[8]["item"];
        assert_eq!((added["status"].as_str(), added["arguments"].as_str()), (Some("in_progress"), Some("")));
        let arguments: String = events
            .iter()
            .filter_map(|e| e["delta"].as_str().filter(|_| e["type"] == "response.function_call_arguments.delta"))
            .collect();
        assert_eq!(arguments, r#"{"cmd":"ls"}"#);
        assert_eq!(events[12]["arguments"], arguments);
        assert_eq!(events[13]["item"]["call_id"], call_id(0));
        assert!(events[8..14].iter().all(|e| e["output_index"] == 1));
        let output = &events[14]["response"]["output"];
        assert_eq!(output, &json!([events[7]["item"], events[13]["item"]]));
    }

    #[test]
    fn anthropic_reasoning_is_a_signed_thinking_block() {
        let mock = mock();
        let messages = json!([{"role": "user", "content": "hi\nx-mock-reasoning: Hmm.\nx-mock-tool-calls: none"}]);
        let body = json!({"model": "claude-sonnet-4-6", "max_tokens": 9, "stream": true, "messages": messages,
                          "tools": anthropic_tools()});
        let (_, _, stream) = post(&mock, "/v1/messages", ANTHROPIC, &body.to_string());
        let events = payloads(&stream);
        let thinking: Vec<&Value> = events.iter().filter(|e| e["index"] == 0).collect();
        assert_eq!(thinking[0]["content_block"], json!({"type": "thinking", "thinking": "", "signature": ""}));
        let deltas: Vec<&Value> =
            thinking.iter().filter(|e| e["type"] == "content_block_delta").map(|e| &e["delta"]).collect();
        assert_eq!(
            deltas,
            [
                &json!({"type": "thinking_delta", "thinking": "Hmm."}),
                &json!({"type": "signature_delta", "signature": SIGNATURE})
            ]
        );
        assert_eq!(thinking.last().unwrap()["type"], "content_block_stop");
        let text: String = events.iter().filter_map(|e| e["delta"]["text"].as_str()).collect();
        assert_eq!(text, "Hello from mock-anthropic.");
        let mut whole = body.clone();
        whole["stream"] = json!(false);
        let (_, _, text) = post(&mock, "/v1/messages", ANTHROPIC, &whole.to_string());
        let content = &json_of(&text)["content"];
        assert_eq!(content[0], json!({"type": "thinking", "thinking": "Hmm.", "signature": SIGNATURE}));
        assert_eq!(content[1]["text"], "Hello from mock-anthropic.");
    }
}
