//! Anthropic Messages response → OpenAI Responses response, JSON and SSE
//! (Anthropic, and Bedrock once its event stream is decoded to SSE).
//!
//! | Anthropic | Responses |
//! |---|---|
//! | `text` block | a `message` item with one `output_text` part |
//! | `tool_use` block | a `function_call` item (`id` → `call_id`, `input` → `arguments`), or a `custom_tool_call` for a tool the request declared `custom` (its `input` string) |
//! | `thinking` block | a `reasoning` item: the thinking as summary text, the signature in `encrypted_content` (so it can be sent back) |
//! | `redacted_thinking` block | a `reasoning` item with the data in `encrypted_content` |
//! | server-tool blocks, citations | dropped (no server tools are sent) |
//! | `stop_reason` `max_tokens`, `model_context_window_exceeded` / `refusal` | status `incomplete`, reason `max_output_tokens` / `content_filter`; anything else `completed` |
//! | `usage` | Responses usage: `input_tokens` = input + cache reads + cache writes, `cached_tokens` = reads, `cache_write_tokens` = writes |
//! | `error` event | `error`, then `response.failed` (code by error type: `rate_limit_exceeded`, `insufficient_quota`, `context_length_exceeded`, `server_error`, …) |
//!
//! Streams: `message_start` opens the response (`response.created`,
//! `response.in_progress`); each content block is an output item from its
//! `content_block_start` to its `content_block_stop`; `message_stop` ends it
//! with `response.completed` / `response.incomplete`. A stream that ends
//! without `message_stop` or `error` ends in `response.failed`, so a cut-off
//! answer is never taken as complete.

use serde_json::value::RawValue;

use super::common::invalid;
use super::responses_out::{
    error_code, item_id, response_body, response_id, Item, ResponseHead, ResponsesContext, ResponsesStream, Status,
};
use super::TranslateError;
use crate::wire::anthropic::{Event, Message};
use crate::wire::stream::{EventHandler, Next};
use crate::wire::usage::{self, Usage};
use crate::wire::SseEvent;

/// The Responses status for an Anthropic `stop_reason`.
fn status_for(stop_reason: Option<&str>) -> Status {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => Status::Incomplete("max_output_tokens"),
        Some("refusal") => Status::Incomplete("content_filter"),
        _ => Status::Completed,
    }
}

/// Translates an Anthropic message body into a `response` body.
pub fn messages_response_to_responses(
    body: &[u8],
    ctx: &ResponsesContext,
    requested_model: &str,
    created: u64,
) -> Result<Vec<u8>, TranslateError> {
    let message: Message =
        serde_json::from_slice(body).map_err(|e| invalid(format!("Invalid Anthropic response: {e}")))?;
    let id = response_id(message.id.as_deref().unwrap_or_default());
    let mut items = Vec::new();
    for block in message.content {
        let n = items.len();
        let item = match block.kind.as_ref() {
            "text" => Item::Message { id: item_id("msg", &id, n), text: block.text.unwrap_or_default().into_owned() },
            "tool_use" => {
                let call_id = block.id.unwrap_or_default().into_owned();
                let name = block.name.unwrap_or_default().into_owned();
                ctx.call_item(call_id, &name, block.input.map_or("{}", RawValue::get).to_owned())
            }
            "thinking" => Item::thinking(
                item_id("rs", &id, n),
                block.thinking.unwrap_or_default().into_owned(),
                block.signature.as_deref().unwrap_or_default(),
            ),
            "redacted_thinking" => Item::redacted(item_id("rs", &id, n), block.data.as_deref().unwrap_or_default()),
            _ => continue,
        };
        items.push(item);
    }
    let usage = usage::anthropic(message.usage).unwrap_or_else(usage::anthropic_start);
    let head = ResponseHead { id: &id, created_at: created, model: requested_model, ctx };
    Ok(response_body(&head, &items, status_for(message.stop_reason.as_deref()), &usage))
}

/// Anthropic SSE → Responses SSE.
pub struct MessagesToResponses {
    out: ResponsesStream,
    /// The Anthropic index of the block whose item is open.
    open_block: Option<u64>,
    stop_reason: Option<String>,
    usage: Usage,
}

impl MessagesToResponses {
    /// `requested_model` is echoed in every `response`; `created` is the Unix time to stamp.
    pub fn new(ctx: ResponsesContext, requested_model: &str, created: u64) -> Self {
        MessagesToResponses {
            out: ResponsesStream::new(ctx, requested_model, created),
            open_block: None,
            stop_reason: None,
            usage: usage::anthropic_start(),
        }
    }

    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Next {
        // Events that do not parse are skipped, as the Anthropic SDK skips unknown ones.
        let Ok(e) = serde_json::from_str::<Event>(&event.data) else {
            return Next::Continue;
        };
        match e.kind.as_ref() {
            "message_start" => {
                if let Some(m) = e.message {
                    usage::merge_anthropic(&mut self.usage, m.usage);
                    self.out.start(out, m.id.as_deref().unwrap_or_default());
                }
            }
            "content_block_start" => {
                self.out.start(out, "");
                let Some(block) = e.content_block else { return Next::Continue };
                let index = e.index.unwrap_or(0);
                match block.kind.as_ref() {
                    "text" => {
                        self.out.close(out);
                        self.open_block = Some(index);
                        // Text arrives in deltas; a start that carries some is rare but allowed.
                        self.out.text(out, block.text.as_deref().unwrap_or_default());
                    }
                    "tool_use" => {
                        self.open_block = Some(index);
                        self.out.call(
                            out,
                            block.id.as_deref().unwrap_or_default(),
                            block.name.as_deref().unwrap_or_default(),
                        );
                    }
                    "thinking" => {
                        self.open_block = Some(index);
                        self.out.reasoning(out);
                        self.out.reasoning_text(out, block.thinking.as_deref().unwrap_or_default());
                    }
                    "redacted_thinking" => {
                        self.open_block = None;
                        self.out.redacted(out, block.data.as_deref().unwrap_or_default());
                    }
                    _ => {
                        self.out.close(out);
                        self.open_block = None;
                    }
                }
            }
            "content_block_delta" => {
                if e.index.is_none() || e.index != self.open_block {
                    return Next::Continue;
                }
                let Some(delta) = e.delta else { return Next::Continue };
                match delta.kind.as_deref() {
                    Some("text_delta") => self.out.text(out, delta.text.as_deref().unwrap_or_default()),
                    Some("input_json_delta") => {
                        self.out.arguments(out, delta.partial_json.as_deref().unwrap_or_default())
                    }
                    Some("thinking_delta") => {
                        self.out.reasoning_text(out, delta.thinking.as_deref().unwrap_or_default())
                    }
                    Some("signature_delta") => self.out.signature(delta.signature.as_deref().unwrap_or_default()),
                    _ => {}
                }
            }
            "content_block_stop" if e.index.is_some() && e.index == self.open_block => {
                self.open_block = None;
                self.out.close(out);
            }
            "message_delta" => {
                if let Some(reason) = e.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason.into_owned());
                }
                usage::merge_anthropic(&mut self.usage, e.usage);
            }
            "message_stop" => {
                self.out.complete(out, status_for(self.stop_reason.as_deref()), &self.usage);
                return Next::Done;
            }
            "error" => {
                let kind = e.error.as_ref().and_then(|b| b.kind.as_deref()).unwrap_or_default();
                let message = e.error.as_ref().and_then(|b| b.message.as_deref()).unwrap_or("Provider error");
                self.out.fail(out, error_code(kind, message), message);
                return Next::Done;
            }
            _ => {}
        }
        Next::Continue
    }
}

impl EventHandler for MessagesToResponses {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Next {
        self.on_event(event, out)
    }

    /// A stream that ends without `message_stop` or `error` fails.
    fn cut(&mut self, out: &mut Vec<u8>) -> bool {
        self.out.fail(out, "server_error", "The provider's stream ended before the response was complete");
        true
    }
}
