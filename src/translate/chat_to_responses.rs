//! OpenAI `chat.completion` (Gemini's OpenAI-compatible endpoint) → OpenAI
//! Responses response, JSON and SSE.
//!
//! | Chat Completions | Responses |
//! |---|---|
//! | `message.content` (and `refusal`) | a `message` item with one `output_text` part |
//! | `message.tool_calls[]` | `function_call` items, or `custom_tool_call` for a tool the request declared `custom` |
//! | `reasoning_content` some compatible endpoints add | dropped: it carries nothing the client could send back |
//! | `finish_reason` `length` / `content_filter` | status `incomplete`, reason `max_output_tokens` / `content_filter`; anything else `completed` |
//! | `usage` | Responses usage (`prompt_tokens` → `input_tokens`, `cached_tokens`, `reasoning_tokens`) |
//! | `{"error": …}` in a stream | `error`, then `response.failed` |
//!
//! Streams: the first chunk opens the response; text deltas fill one message
//! item; a tool call delta with an `id` or `name` starts a function call item
//! (Gemini sends each call whole without `index`), later argument fragments
//! extend it; `data: [DONE]` ends it with `response.completed` /
//! `response.incomplete` and the usage of the include_usage chunk. A stream
//! that ends without `[DONE]` is completed if a `finish_reason` arrived
//! (some compatible endpoints omit `[DONE]`), else it ends in `response.failed`.
//! Only choice 0 is read.

use super::common::{invalid, Str};
use super::responses_out::{
    error_code, item_id, response_body, response_id, Item, ResponseHead, ResponsesContext, ResponsesStream, Status,
};
use super::TranslateError;
use crate::wire::openai_chat::{Chunk, Completion, ToolCallDelta};
use crate::wire::stream::{EventHandler, Next};
use crate::wire::usage::{self, Usage};
use crate::wire::SseEvent;

fn status_for(finish_reason: Option<&str>) -> Status {
    match finish_reason {
        Some("length") => Status::Incomplete("max_output_tokens"),
        Some("content_filter") => Status::Incomplete("content_filter"),
        _ => Status::Completed,
    }
}

/// A call id for a call the provider sent without one.
fn fallback_call_id(response_id: &str, n: usize) -> String {
    format!("call_{}_{n}", response_id.strip_prefix("resp_").unwrap_or(response_id))
}

/// Translates a `chat.completion` body into a `response` body.
pub fn chat_response_to_responses(
    body: &[u8],
    ctx: &ResponsesContext,
    requested_model: &str,
    created: u64,
) -> Result<Vec<u8>, TranslateError> {
    let completion: Completion =
        serde_json::from_slice(body).map_err(|e| invalid(format!("Invalid OpenAI-format response: {e}")))?;
    let id = response_id(completion.id.as_deref().unwrap_or_default());
    let mut items = Vec::new();
    let mut finish_reason = None;
    if let Some(choice) = completion.choices.into_iter().next() {
        finish_reason = choice.finish_reason;
        if let Some(m) = choice.message {
            let mut text = m.content.map(Str::into_owned).unwrap_or_default();
            text.push_str(m.refusal.as_deref().unwrap_or_default());
            if !text.is_empty() {
                items.push(Item::Message { id: item_id("msg", &id, 0), text });
            }
            for (n, call) in m.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let call_id = match call.id.filter(|c| !c.is_empty()) {
                    Some(c) => c.into_owned(),
                    None => fallback_call_id(&id, n),
                };
                let name = call.function.name.into_owned();
                let arguments = call.function.arguments.filter(|a| !a.trim().is_empty()).unwrap_or(Str::Borrowed("{}"));
                items.push(ctx.call_item(call_id, &name, arguments.into_owned()));
            }
        }
    }
    let usage = usage::chat(completion.usage).unwrap_or_default();
    let head = ResponseHead { id: &id, created_at: created, model: requested_model, ctx };
    Ok(response_body(&head, &items, status_for(finish_reason.as_deref()), &usage))
}

/// OpenAI chunk SSE → Responses SSE.
pub struct ChatToResponses {
    out: ResponsesStream,
    /// The provider's `index` of the open tool call.
    open_call: Option<u64>,
    calls: usize,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl ChatToResponses {
    /// `requested_model` is echoed in every `response`; `created` is the Unix time to stamp.
    pub fn new(ctx: ResponsesContext, requested_model: &str, created: u64) -> Self {
        ChatToResponses {
            out: ResponsesStream::new(ctx, requested_model, created),
            open_call: None,
            calls: 0,
            finish_reason: None,
            usage: None,
        }
    }

    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Next {
        if event.data.trim() == "[DONE]" {
            self.complete(out);
            return Next::Done;
        }
        let Ok(chunk) = serde_json::from_str::<Chunk>(&event.data) else {
            return Next::Continue;
        };
        if let Some(error) = chunk.error {
            let message = error.message.as_deref().unwrap_or("Provider error");
            let code: Option<Str> = error.code.and_then(|c| serde_json::from_str(c.get()).ok());
            let kind = code.as_deref().or(error.kind.as_deref()).unwrap_or_default();
            self.out.fail(out, error_code(kind, message), message);
            return Next::Done;
        }
        self.out.start(out, chunk.id.as_deref().unwrap_or_default());
        if let Some(usage) = chunk.usage.and_then(|raw| usage::chat(Some(raw))) {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.choices.unwrap_or_default().into_iter().find(|c| c.index.unwrap_or(0) == 0) else {
            return Next::Continue;
        };
        if let Some(delta) = choice.delta {
            for text in [delta.content, delta.refusal].into_iter().flatten() {
                if !text.is_empty() {
                    self.open_call = None;
                    self.out.text(out, &text);
                }
            }
            for call in delta.tool_calls.unwrap_or_default() {
                self.tool_call(out, call);
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finish_reason = Some(reason.into_owned());
        }
        Next::Continue
    }

    fn tool_call(&mut self, out: &mut Vec<u8>, call: ToolCallDelta) {
        let index = call.index.unwrap_or(0);
        let (name, arguments) = match call.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        let is_new = call.id.is_some() || name.is_some();
        if is_new {
            let call_id = match call.id.filter(|id| !id.is_empty()) {
                Some(id) => id.into_owned(),
                None => format!("call_{}", self.calls),
            };
            self.calls += 1;
            self.open_call = Some(index);
            self.out.call(out, &call_id, name.as_deref().unwrap_or_default());
        } else if self.open_call != Some(index) {
            // A fragment of a call that is no longer open cannot be placed.
            return;
        }
        self.out.arguments(out, arguments.as_deref().unwrap_or_default());
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        let usage = self.usage.clone().unwrap_or_default();
        self.out.complete(out, status_for(self.finish_reason.as_deref()), &usage);
    }
}

impl EventHandler for ChatToResponses {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Next {
        self.on_event(event, out)
    }

    /// See the module docs for a stream without `[DONE]`.
    fn cut(&mut self, out: &mut Vec<u8>) -> bool {
        if self.finish_reason.is_some() {
            self.complete(out);
            return false;
        }
        self.out.fail(out, "server_error", "The provider's stream ended before the response was complete");
        true
    }
}
