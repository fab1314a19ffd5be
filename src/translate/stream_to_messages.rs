//! OpenAI `chat.completion.chunk` SSE → Anthropic Messages SSE (named events).
//!
//! | OpenAI chunk | Anthropic events |
//! |---|---|
//! | the first chunk | `message_start` (empty content, `usage` 0/0: OpenAI reports usage only at the end) |
//! | `delta.content` (or `delta.refusal`, which makes the stop reason `refusal`) | `content_block_start` `text` once, then `content_block_delta` `text_delta` |
//! | `delta.tool_calls[i]` with an `id` or `name` | closes the open block; `content_block_start` `tool_use` `{id, name, input: {}}` |
//! | `delta.tool_calls[i].function.arguments` | `content_block_delta` `input_json_delta` |
//! | `finish_reason` | remembered (`stop` → `end_turn`, `length` → `max_tokens`, `tool_calls` → `tool_use`, `content_filter` → `refusal`) |
//! | `usage` (the include_usage chunk) | remembered |
//! | `data: [DONE]` | `content_block_stop`, `message_delta` (stop_reason, usage in Anthropic semantics), `message_stop` |
//! | `{"error": …}` | `event: error`, then nothing more |
//!
//! Reasoning deltas some compatible providers add are dropped. A stream that
//! ends without `[DONE]` is completed normally if a `finish_reason` arrived
//! (some compatible endpoints omit `[DONE]`), else ends with an `error` event
//! so a cut-off answer is never taken as complete. OpenAI sends one tool call
//! after another; an argument fragment for a tool call whose block is already
//! closed cannot be placed and is dropped. Only choice 0 is read. State is a
//! few scalars: memory does not grow with the stream.

use std::borrow::Cow;

use serde::Serialize;

use super::common::{push_json_event, stop_reason_for};
use super::errors::{anthropic_error_json, anthropic_type_for_detail};
use crate::wire::openai_chat::{Chunk, ToolCallDelta};
use crate::wire::stream::{push_named, EventHandler, Next};
use crate::wire::usage::{self, AnthropicUsageOut, Usage};
use crate::wire::SseEvent;

pub struct ChatToMessages {
    model: String,
    id: String,
    started: bool,
    open: Open,
    next_block: u64,
    saw_tool: bool,
    saw_refusal: bool,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text { block: u64 },
    Tool { block: u64, openai_index: u64 },
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: StartMessage<'a>,
}

#[derive(Serialize)]
struct StartMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: ZeroUsage,
}

#[derive(Serialize)]
struct ZeroUsage {
    input_tokens: u64,
    output_tokens: u64,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u64,
    content_block: StartBlock<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock<'a> {
    Text { text: &'static str },
    ToolUse { id: &'a str, name: &'a str, input: Empty },
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u64,
    delta: DeltaBody<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DeltaBody<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct Indexed {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u64,
}

#[derive(Serialize)]
struct MessageDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopDelta,
    usage: DeltaUsage,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

/// Cumulative usage (Anthropic's `MessageDeltaUsage` allows the input side too).
#[derive(Serialize)]
struct DeltaUsage {
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u64>,
    output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u64>,
}

impl EventHandler for ChatToMessages {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Next {
        self.on_event(event, out)
    }

    /// See the module docs for a stream without `[DONE]`.
    fn cut(&mut self, out: &mut Vec<u8>) -> bool {
        if self.finish_reason.is_some() {
            self.complete(out);
            return false;
        }
        let json = anthropic_error_json("api_error", "The provider's stream ended before the response was complete");
        push_named(out, "error", &json);
        true
    }
}

impl ChatToMessages {
    /// `requested_model` is echoed in `message_start`.
    pub fn new(requested_model: &str) -> Self {
        ChatToMessages {
            model: requested_model.to_owned(),
            id: String::new(),
            started: false,
            open: Open::None,
            next_block: 0,
            saw_tool: false,
            saw_refusal: false,
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
            let message = error.message.as_deref().unwrap_or("Provider error").to_owned();
            let kind = anthropic_type_for_detail(Some(&error), 200);
            push_named(out, "error", &anthropic_error_json(kind, &message));
            return Next::Done;
        }
        if !self.started {
            if let Some(id) = chunk.id.as_deref() {
                self.id = id.to_owned();
            }
        }
        self.ensure_started(out);
        if let Some(usage) = chunk.usage.and_then(|raw| usage::chat(Some(raw))) {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.choices.unwrap_or_default().into_iter().find(|c| c.index.unwrap_or(0) == 0) else {
            return Next::Continue;
        };
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                self.text(out, &text);
            }
            if let Some(text) = delta.refusal.filter(|t| !t.is_empty()) {
                self.saw_refusal = true;
                self.text(out, &text);
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

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let start = MessageStart {
            kind: "message_start",
            message: StartMessage {
                id: &self.id,
                kind: "message",
                role: "assistant",
                model: &self.model,
                content: [],
                stop_reason: None,
                stop_sequence: None,
                usage: ZeroUsage { input_tokens: 0, output_tokens: 0 },
            },
        };
        push_json_event(out, "message_start", &start);
    }

    fn text(&mut self, out: &mut Vec<u8>, text: &str) {
        let block = match self.open {
            Open::Text { block } => block,
            _ => {
                self.close(out);
                let block = self.next_block;
                self.next_block += 1;
                self.open = Open::Text { block };
                let start = BlockStart {
                    kind: "content_block_start",
                    index: block,
                    content_block: StartBlock::Text { text: "" },
                };
                push_json_event(out, "content_block_start", &start);
                block
            }
        };
        let delta = BlockDelta { kind: "content_block_delta", index: block, delta: DeltaBody::TextDelta { text } };
        push_json_event(out, "content_block_delta", &delta);
    }

    fn tool_call(&mut self, out: &mut Vec<u8>, call: ToolCallDelta) {
        let openai_index = call.index.unwrap_or(0);
        let (name, arguments) = match call.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        let is_new = call.id.is_some() || name.is_some();
        let block = match self.open {
            Open::Tool { block, openai_index: open } if open == openai_index && !is_new => block,
            _ if !is_new => return,
            _ => {
                self.close(out);
                let block = self.next_block;
                self.next_block += 1;
                self.open = Open::Tool { block, openai_index };
                self.saw_tool = true;
                let id = call.id.filter(|id| !id.is_empty()).unwrap_or_else(|| Cow::Owned(format!("call_{block}")));
                let start = BlockStart {
                    kind: "content_block_start",
                    index: block,
                    content_block: StartBlock::ToolUse {
                        id: &id,
                        name: name.as_deref().unwrap_or_default(),
                        input: Empty {},
                    },
                };
                push_json_event(out, "content_block_start", &start);
                block
            }
        };
        if let Some(partial_json) = arguments.as_deref().filter(|a| !a.is_empty()) {
            let delta = BlockDelta {
                kind: "content_block_delta",
                index: block,
                delta: DeltaBody::InputJsonDelta { partial_json },
            };
            push_json_event(out, "content_block_delta", &delta);
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        let block = match self.open {
            Open::None => return,
            Open::Text { block } | Open::Tool { block, .. } => block,
        };
        self.open = Open::None;
        push_json_event(out, "content_block_stop", &Indexed { kind: "content_block_stop", index: block });
    }

    /// Closes the message: last block, `message_delta`, `message_stop`.
    fn complete(&mut self, out: &mut Vec<u8>) {
        self.ensure_started(out);
        self.close(out);
        let usage = match self.usage.as_ref().map(AnthropicUsageOut::from) {
            Some(u) => DeltaUsage {
                input_tokens: Some(u.input_tokens),
                output_tokens: u.output_tokens,
                cache_read_input_tokens: Some(u.cache_read_input_tokens),
                cache_creation_input_tokens: Some(u.cache_creation_input_tokens),
            },
            None => DeltaUsage {
                input_tokens: None,
                output_tokens: 0,
                cache_read_input_tokens: None,
                cache_creation_input_tokens: None,
            },
        };
        let delta = MessageDelta {
            kind: "message_delta",
            delta: StopDelta {
                stop_reason: if self.saw_refusal {
                    "refusal"
                } else {
                    stop_reason_for(self.finish_reason.as_deref(), self.saw_tool)
                },
                stop_sequence: None,
            },
            usage,
        };
        push_json_event(out, "message_delta", &delta);
        push_named(out, "message_stop", r#"{"type":"message_stop"}"#);
    }
}
