//! The OpenAI Responses output both response translators write
//! ([`super::messages_to_responses`], [`super::chat_to_responses`]): the
//! `response` object and, for streams, its event sequence.
//!
//! A stream is what the SDKs' accumulators and Codex read:
//! `response.created`, `response.in_progress`; per output item
//! `response.output_item.added`, its content events, `response.output_item.done`;
//! then `response.completed` (or `response.incomplete`) carrying the whole
//! response with `usage`. Every event has a `sequence_number` from 0. Content
//! events per item:
//!
//! | item | events |
//! |---|---|
//! | `message` | `response.content_part.added`, `response.output_text.delta`…, `response.output_text.done`, `response.content_part.done` |
//! | `function_call` | `response.function_call_arguments.delta`…, `response.function_call_arguments.done` |
//! | `custom_tool_call` | `response.custom_tool_call_input.delta` (the whole input, once the call is complete), `response.custom_tool_call_input.done` |
//! | `reasoning` | `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`…, `response.reasoning_summary_text.done`, `response.reasoning_summary_part.done` (when there is text) |
//!
//! A provider error ends the stream with an `error` event and
//! `response.failed` (`response.error` with `code` and `message`). Usage
//! follows the Responses API: `input_tokens` counts cached tokens,
//! `input_tokens_details.cached_tokens` the cache reads,
//! `output_tokens_details.reasoning_tokens` the reasoning the provider
//! reported. The completed event repeats the whole output, so a stream's
//! state grows with the answer (its text and tool arguments).

use std::io::Write;

use serde::Serialize;
use serde_json::value::RawValue;

use super::common::{push_json_event, to_json, write_json, ObjectWriter};
use super::responses_request::ToolShapes;
use crate::request::Fields;
use crate::wire::stream::push_named_with;
use crate::wire::usage::{ResponsesUsageOut, Usage};

/// `encrypted_content` of a reasoning item made from an Anthropic `thinking`
/// block: this prefix, then the block's signature.
pub(super) const THINKING_PREFIX: &str = "anthropic-thinking:";
/// … and from a `redacted_thinking` block: this prefix, then its data.
pub(super) const REDACTED_PREFIX: &str = "anthropic-redacted-thinking:";

/// What a translated Responses answer takes from its request: the settings
/// every `response` object echoes, and the tools whose calls are custom.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponsesContext {
    /// Members of the `response` object from the request, as JSON (no braces).
    pub echo: String,
    /// Tools declared `custom`: their calls come back as `custom_tool_call` items.
    pub custom_tools: Vec<String>,
    /// Namespaced functions, `(flat name, namespace, name)`: their calls come back naming the namespace.
    pub namespaced: Vec<(String, String, String)>,
}

impl ResponsesContext {
    /// The context of a Responses request, with the tool shapes its reading found.
    pub(super) fn new(fields: &Fields, shapes: ToolShapes) -> Self {
        const ECHO: [(&str, &str); 14] = [
            ("instructions", "null"),
            ("max_output_tokens", "null"),
            ("metadata", "{}"),
            ("parallel_tool_calls", "true"),
            ("previous_response_id", "null"),
            ("reasoning", r#"{"effort":null,"summary":null}"#),
            ("safety_identifier", "null"),
            ("prompt_cache_key", "null"),
            ("temperature", "null"),
            ("text", r#"{"format":{"type":"text"}}"#),
            ("tool_choice", r#""auto""#),
            ("tools", "[]"),
            ("top_p", "null"),
            ("user", "null"),
        ];
        let mut out = ObjectWriter::with_capacity(256);
        for (key, default) in ECHO {
            let raw = fields.get(key).map(RawValue::get).filter(|r| *r != "null").unwrap_or(default);
            out.raw(key, raw);
        }
        // Nothing is stored, whatever the client asked.
        out.raw("store", "false");
        out.raw("truncation", fields.get("truncation").map(RawValue::get).unwrap_or(r#""disabled""#));
        let mut echo = String::from_utf8(out.finish()).unwrap_or_default();
        // The members without the braces.
        echo.pop();
        if !echo.is_empty() {
            echo.remove(0);
        }
        ResponsesContext { echo, custom_tools: shapes.custom, namespaced: shapes.namespaced }
    }

    /// The call item for a tool the model called by its flat name.
    pub(super) fn call_item(&self, call_id: String, name: &str, arguments: String) -> Item {
        let custom = self.custom_tools.iter().any(|t| t == name);
        let (name, namespace) = match self.namespaced.iter().find(|(flat, _, _)| flat == name) {
            Some((_, ns, inner)) => (inner.clone(), Some(ns.clone())),
            None => (name.to_owned(), None),
        };
        Item::Call { id: call_item_id(&call_id), call_id, name, namespace, arguments, custom }
    }
}

/// How a response ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    Completed,
    /// `incomplete_details.reason`: `max_output_tokens` or `content_filter`.
    Incomplete(&'static str),
}

/// One output item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Item {
    Message { id: String, text: String },
    Call { id: String, call_id: String, name: String, namespace: Option<String>, arguments: String, custom: bool },
    Reasoning { id: String, text: String, encrypted: Option<String> },
}

impl Item {
    fn id(&self) -> &str {
        match self {
            Item::Message { id, .. } | Item::Call { id, .. } | Item::Reasoning { id, .. } => id,
        }
    }

    /// A reasoning item from an Anthropic thinking block.
    pub(super) fn thinking(id: String, text: String, signature: &str) -> Item {
        Item::Reasoning { id, text, encrypted: Some(format!("{THINKING_PREFIX}{signature}")) }
    }

    /// A reasoning item from an Anthropic redacted thinking block.
    pub(super) fn redacted(id: String, data: &str) -> Item {
        Item::Reasoning { id, text: String::new(), encrypted: Some(format!("{REDACTED_PREFIX}{data}")) }
    }

    /// The item as JSON; `done` gives its final form, else the form it is added in.
    fn to_json(&self, done: bool) -> String {
        let status = if done { "completed" } else { "in_progress" };
        match self {
            Item::Message { id, text } => {
                let content: Vec<OutputText> = if done { vec![OutputText::new(text)] } else { Vec::new() };
                to_json(&MessageItem { id, kind: "message", status, role: "assistant", content })
            }
            Item::Call { id, call_id, name, namespace, arguments, custom: false } => {
                let arguments = if done { arguments.as_str() } else { "" };
                let namespace = namespace.as_deref();
                to_json(&CallItem { id, kind: "function_call", status, arguments, call_id, name, namespace })
            }
            Item::Call { id, call_id, name, namespace, arguments, custom: true } => {
                let input = if done { custom_input(arguments) } else { String::new() };
                let namespace = namespace.as_deref();
                to_json(&CustomItem { id, kind: "custom_tool_call", status, call_id, name, namespace, input: &input })
            }
            Item::Reasoning { id, text, encrypted } => {
                let summary: Vec<SummaryText> = if done && !text.is_empty() {
                    vec![SummaryText { kind: "summary_text", text }]
                } else {
                    Vec::new()
                };
                let encrypted_content = if done { encrypted.as_deref() } else { None };
                to_json(&ReasoningItem { id, kind: "reasoning", summary, encrypted_content })
            }
        }
    }
}

/// A custom tool's input: the `input` string of the function arguments it was called with.
fn custom_input(arguments: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Args {
        input: String,
    }
    match serde_json::from_str::<Args>(arguments) {
        Ok(a) => a.input,
        Err(_) => arguments.to_owned(),
    }
}

#[derive(Serialize)]
struct OutputText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    annotations: [(); 0],
    logprobs: [(); 0],
}

impl<'a> OutputText<'a> {
    fn new(text: &'a str) -> Self {
        OutputText { kind: "output_text", text, annotations: [], logprobs: [] }
    }
}

#[derive(Serialize)]
struct MessageItem<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    role: &'static str,
    content: Vec<OutputText<'a>>,
}

#[derive(Serialize)]
struct CallItem<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    arguments: &'a str,
    call_id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
}

#[derive(Serialize)]
struct CustomItem<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    call_id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    input: &'a str,
}

#[derive(Serialize)]
struct SummaryText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct ReasoningItem<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    summary: Vec<SummaryText<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encrypted_content: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

/// The `response` object.
pub(super) struct ResponseHead<'a> {
    pub id: &'a str,
    pub created_at: u64,
    pub model: &'a str,
    pub ctx: &'a ResponsesContext,
}

/// The phase the object is written in.
enum Phase<'a> {
    InProgress,
    Done(Status, &'a Usage),
    Failed { code: &'a str, message: &'a str },
}

/// Writes the `response` object after `buf`'s bytes.
fn write_response(buf: Vec<u8>, head: &ResponseHead, items: &[Item], phase: Phase) -> Vec<u8> {
    let mut out = ObjectWriter::after(buf);
    out.value("id", head.id);
    out.value("object", "response");
    out.value("created_at", &head.created_at);
    let status = match phase {
        Phase::InProgress => "in_progress",
        Phase::Done(Status::Completed, _) => "completed",
        Phase::Done(Status::Incomplete(_), _) => "incomplete",
        Phase::Failed { .. } => "failed",
    };
    out.value("status", status);
    match phase {
        Phase::Failed { code, message } => out.value("error", &ErrorBody { code, message }),
        _ => out.raw("error", "null"),
    }
    match phase {
        Phase::Done(Status::Incomplete(reason), _) => {
            out.raw("incomplete_details", &format!(r#"{{"reason":{}}}"#, to_json(reason)))
        }
        _ => out.raw("incomplete_details", "null"),
    }
    out.value("model", head.model);
    out.raw_array("output", items.iter().map(|i| i.to_json(true)));
    match phase {
        Phase::Done(_, usage) => out.value("usage", &ResponsesUsageOut::from(usage)),
        _ => out.raw("usage", "null"),
    }
    out.members(&head.ctx.echo);
    out.finish()
}

/// A whole `response` body.
pub(super) fn response_body(head: &ResponseHead, items: &[Item], status: Status, usage: &Usage) -> Vec<u8> {
    write_response(Vec::with_capacity(512 + head.ctx.echo.len()), head, items, Phase::Done(status, usage))
}

/// `resp_` and the provider's id; item ids end in it too.
pub(super) fn response_id(provider_id: &str) -> String {
    let id: String = provider_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    if id.is_empty() {
        "resp_gateway".to_owned()
    } else {
        format!("resp_{id}")
    }
}

/// The id of the `n`th output item of kind `prefix` (`msg`, `rs`).
pub(super) fn item_id(prefix: &str, response_id: &str, n: usize) -> String {
    format!("{prefix}_{}_{n}", response_id.strip_prefix("resp_").unwrap_or(response_id))
}

/// A function call item's id.
pub(super) fn call_item_id(call_id: &str) -> String {
    format!("fc_{call_id}")
}

/// A Responses event stream being written.
pub(super) struct ResponsesStream {
    ctx: ResponsesContext,
    model: String,
    created_at: u64,
    id: String,
    seq: u64,
    items: Vec<Item>,
    /// The last item is still open.
    open: bool,
    started: bool,
}

#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u64,
    #[serde(flatten)]
    body: T,
}

impl ResponsesStream {
    pub(super) fn new(ctx: ResponsesContext, model: &str, created_at: u64) -> Self {
        ResponsesStream {
            ctx,
            model: model.to_owned(),
            created_at,
            id: String::new(),
            seq: 0,
            items: Vec::new(),
            open: false,
            started: false,
        }
    }

    fn head(&self) -> ResponseHead<'_> {
        ResponseHead { id: &self.id, created_at: self.created_at, model: &self.model, ctx: &self.ctx }
    }

    /// Appends one event: its `type`, its `sequence_number`, then `body`'s members.
    fn emit<T: Serialize>(&mut self, out: &mut Vec<u8>, kind: &str, body: T) {
        push_json_event(out, kind, &Event { kind, sequence_number: self.seq, body });
        self.seq += 1;
    }

    /// An event whose body is the `response` object, written straight into
    /// `out`: it echoes the request's tools and instructions (often tens of
    /// KB), three times per stream.
    fn emit_response(&mut self, out: &mut Vec<u8>, kind: &str, phase: Phase) {
        out.reserve(640 + self.ctx.echo.len());
        let seq = self.seq;
        push_named_with(out, kind, |out| {
            out.extend_from_slice(b"{\"type\":");
            write_json(out, kind);
            // Writing into a `Vec` cannot fail.
            let _ = write!(out, ",\"sequence_number\":{seq},\"response\":");
            *out = write_response(std::mem::take(out), &self.head(), &self.items, phase);
            out.push(b'}');
        });
        self.seq += 1;
    }

    /// `response.created` and `response.in_progress`, once; `provider_id` names the response.
    pub(super) fn start(&mut self, out: &mut Vec<u8>, provider_id: &str) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = response_id(provider_id);
        self.emit_response(out, "response.created", Phase::InProgress);
        self.emit_response(out, "response.in_progress", Phase::InProgress);
    }

    fn at(&self) -> (String, usize) {
        let n = self.items.len().saturating_sub(1);
        (self.items.last().map(|i| i.id().to_owned()).unwrap_or_default(), n)
    }

    fn add(&mut self, out: &mut Vec<u8>, item: Item) {
        self.close(out);
        let json = item.to_json(false);
        self.items.push(item);
        self.open = true;
        let output_index = self.items.len() - 1;
        let raw = RawValue::from_string(json).ok();
        self.emit(out, "response.output_item.added", AddedOrDone { output_index, item: raw.as_deref() });
    }

    /// Assistant text: opens a message item unless one is open.
    pub(super) fn text(&mut self, out: &mut Vec<u8>, delta: &str) {
        if delta.is_empty() {
            return;
        }
        if !(self.open && matches!(self.items.last(), Some(Item::Message { .. }))) {
            let id = item_id("msg", &self.id, self.items.len());
            self.add(out, Item::Message { id, text: String::new() });
            let (item_id, output_index) = self.at();
            let part = OutputText::new("");
            self.emit(
                out,
                "response.content_part.added",
                Part { item_id: &item_id, output_index, content_index: 0, part },
            );
        }
        if let Some(Item::Message { text, .. }) = self.items.last_mut() {
            text.push_str(delta);
        }
        let (item_id, output_index) = self.at();
        self.emit(
            out,
            "response.output_text.delta",
            TextDelta { item_id: &item_id, output_index, content_index: 0, delta, logprobs: [] },
        );
    }

    /// A tool call starts.
    pub(super) fn call(&mut self, out: &mut Vec<u8>, call_id: &str, name: &str) {
        let item = self.ctx.call_item(call_id.to_owned(), name, String::new());
        self.add(out, item);
    }

    /// More of the open tool call's arguments.
    pub(super) fn arguments(&mut self, out: &mut Vec<u8>, delta: &str) {
        if !self.open || delta.is_empty() {
            return;
        }
        let Some(Item::Call { arguments, custom, .. }) = self.items.last_mut() else { return };
        arguments.push_str(delta);
        if *custom {
            // A custom tool's input is a string inside the arguments: sent whole when the call closes.
            return;
        }
        let (item_id, output_index) = self.at();
        self.emit(out, "response.function_call_arguments.delta", Delta { item_id: &item_id, output_index, delta });
    }

    /// A reasoning item starts.
    pub(super) fn reasoning(&mut self, out: &mut Vec<u8>) {
        let id = item_id("rs", &self.id, self.items.len());
        self.add(out, Item::Reasoning { id, text: String::new(), encrypted: None });
    }

    /// Reasoning text of the open reasoning item.
    pub(super) fn reasoning_text(&mut self, out: &mut Vec<u8>, delta: &str) {
        if !self.open || delta.is_empty() {
            return;
        }
        let Some(Item::Reasoning { text, .. }) = self.items.last_mut() else { return };
        let first = text.is_empty();
        text.push_str(delta);
        let (item_id, output_index) = self.at();
        if first {
            let part = SummaryText { kind: "summary_text", text: "" };
            self.emit(
                out,
                "response.reasoning_summary_part.added",
                Summary { item_id: &item_id, output_index, summary_index: 0, part },
            );
        }
        self.emit(
            out,
            "response.reasoning_summary_text.delta",
            SummaryDelta { item_id: &item_id, output_index, summary_index: 0, delta },
        );
    }

    /// The open reasoning item's signature (Anthropic's `signature_delta`).
    pub(super) fn signature(&mut self, signature: &str) {
        if !self.open {
            return;
        }
        if let Some(Item::Reasoning { encrypted, .. }) = self.items.last_mut() {
            encrypted.get_or_insert_with(|| THINKING_PREFIX.to_owned()).push_str(signature);
        }
    }

    /// A redacted reasoning item, whole.
    pub(super) fn redacted(&mut self, out: &mut Vec<u8>, data: &str) {
        let id = item_id("rs", &self.id, self.items.len());
        self.add(out, Item::redacted(id, data));
        self.close(out);
    }

    /// Closes the open item: its closing content events, then `response.output_item.done`.
    pub(super) fn close(&mut self, out: &mut Vec<u8>) {
        if !self.open {
            return;
        }
        self.open = false;
        let Some(item) = self.items.last().cloned() else { return };
        let (item_id, output_index) = self.at();
        match &item {
            Item::Message { text, .. } => {
                self.emit(
                    out,
                    "response.output_text.done",
                    TextDone { item_id: &item_id, output_index, content_index: 0, text, logprobs: [] },
                );
                let part = OutputText::new(text);
                self.emit(
                    out,
                    "response.content_part.done",
                    Part { item_id: &item_id, output_index, content_index: 0, part },
                );
            }
            Item::Call { name, arguments, custom: false, .. } => {
                let arguments = if arguments.is_empty() {
                    // A call without arguments takes an empty object, sent as its one delta.
                    self.open = true;
                    self.arguments(out, "{}");
                    self.open = false;
                    "{}"
                } else {
                    arguments.as_str()
                };
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    ArgumentsDone { item_id: &item_id, output_index, name, arguments },
                );
            }
            Item::Call { arguments, custom: true, .. } => {
                let input = custom_input(arguments);
                self.emit(
                    out,
                    "response.custom_tool_call_input.delta",
                    Delta { item_id: &item_id, output_index, delta: &input },
                );
                self.emit(
                    out,
                    "response.custom_tool_call_input.done",
                    InputDone { item_id: &item_id, output_index, input: &input },
                );
            }
            Item::Reasoning { text, .. } => {
                if !text.is_empty() {
                    self.emit(
                        out,
                        "response.reasoning_summary_text.done",
                        SummaryDone { item_id: &item_id, output_index, summary_index: 0, text },
                    );
                    let part = SummaryText { kind: "summary_text", text };
                    self.emit(
                        out,
                        "response.reasoning_summary_part.done",
                        Summary { item_id: &item_id, output_index, summary_index: 0, part },
                    );
                }
            }
        }
        let json = self.items.last().map(|i| i.to_json(true)).unwrap_or_default();
        let raw = RawValue::from_string(json).ok();
        self.emit(out, "response.output_item.done", AddedOrDone { output_index, item: raw.as_deref() });
    }

    /// The answer is complete: `response.completed` (or `response.incomplete`) with the usage.
    pub(super) fn complete(&mut self, out: &mut Vec<u8>, status: Status, usage: &Usage) {
        self.start(out, "");
        self.close(out);
        let kind = match status {
            Status::Completed => "response.completed",
            Status::Incomplete(_) => "response.incomplete",
        };
        self.emit_response(out, kind, Phase::Done(status, usage));
    }

    /// The provider failed: an `error` event, then `response.failed`.
    pub(super) fn fail(&mut self, out: &mut Vec<u8>, code: &str, message: &str) {
        self.start(out, "");
        self.close(out);
        self.emit(out, "error", ErrorEvent { code, message, param: None });
        self.emit_response(out, "response.failed", Phase::Failed { code, message });
    }
}

#[derive(Serialize)]
struct AddedOrDone<'a> {
    output_index: usize,
    item: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct Part<'a, P: Serialize> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    part: P,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    delta: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct TextDone<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: usize,
    text: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct Delta<'a> {
    item_id: &'a str,
    output_index: usize,
    delta: &'a str,
}

#[derive(Serialize)]
struct ArgumentsDone<'a> {
    item_id: &'a str,
    output_index: usize,
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct InputDone<'a> {
    item_id: &'a str,
    output_index: usize,
    input: &'a str,
}

#[derive(Serialize)]
struct Summary<'a> {
    item_id: &'a str,
    output_index: usize,
    summary_index: usize,
    part: SummaryText<'a>,
}

#[derive(Serialize)]
struct SummaryDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    summary_index: usize,
    delta: &'a str,
}

#[derive(Serialize)]
struct SummaryDone<'a> {
    item_id: &'a str,
    output_index: usize,
    summary_index: usize,
    text: &'a str,
}

#[derive(Serialize)]
struct ErrorEvent<'a> {
    code: &'a str,
    message: &'a str,
    param: Option<&'a str>,
}

/// The Responses error `code` for an Anthropic error type or an OpenAI one.
pub(super) fn error_code(kind: &str, message: &str) -> &'static str {
    if message.contains("prompt is too long") || message.contains("context length") || kind == "context_length_exceeded"
    {
        return "context_length_exceeded";
    }
    match kind {
        "rate_limit_error" | "rate_limit_exceeded" | "requests" | "tokens" => "rate_limit_exceeded",
        "billing_error" | "insufficient_quota" => "insufficient_quota",
        "invalid_request_error" => "invalid_prompt",
        _ => "server_error",
    }
}
