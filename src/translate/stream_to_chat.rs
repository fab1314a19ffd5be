//! Anthropic Messages SSE → OpenAI `chat.completion.chunk` SSE.
//!
//! | Anthropic event | OpenAI chunk |
//! |---|---|
//! | `message_start` | first chunk: `delta: {role: "assistant", content: ""}`; its id and usage are kept |
//! | `content_block_start` `tool_use` | `delta.tool_calls[{index, id, type: function, function: {name, arguments: ""}}]` |
//! | `content_block_delta` `text_delta` | `delta.content` |
//! | `content_block_delta` `input_json_delta` | `delta.tool_calls[{index, function: {arguments}}]` |
//! | thinking / signature / citation deltas, server-tool blocks, `content_block_stop`, `ping`, unknown events | nothing |
//! | `message_delta` | remembers `stop_reason` and the cumulative usage (last value wins) |
//! | `message_stop` | chunk with `finish_reason`; with `include_usage`, a `choices: []` usage chunk; `data: [DONE]` |
//! | `error` | `data: {"error": {message, type, param, code}}`, then nothing more |
//!
//! With `include_usage` every other chunk carries `"usage": null`, as OpenAI's
//! do. A stream that ends without `message_stop` or `error` gets an error
//! event (not `[DONE]`), so a cut-off answer is never taken as complete. State
//! is a few scalars: memory does not grow with the stream.

use serde::Serialize;

use super::common::{finish_reason_for, push_json_data};
use super::errors::{openai_error_json, openai_type_for_anthropic};
use crate::wire::anthropic::Event;
use crate::wire::stream::{push_data, EventHandler, Next};
use crate::wire::usage::{self, ChatUsageOut, Usage};
use crate::wire::SseEvent;

pub struct MessagesToChat {
    model: String,
    include_usage: bool,
    created: u64,
    id: String,
    /// The role chunk went out.
    started: bool,
    /// The open `tool_use` block: (Anthropic block index, OpenAI tool index).
    open_tool: Option<(u64, u32)>,
    next_tool: u32,
    stop_reason: Option<String>,
    usage: Usage,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChunkChoice<'a>>,
    /// Absent without `include_usage`; null on ordinary chunks with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<ChatUsageOut>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: ChunkDelta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
struct ChunkDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

impl EventHandler for MessagesToChat {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Next {
        self.on_event(event, out)
    }

    /// A stream that ends without `message_stop` or `error` gets an error event, not `[DONE]`.
    fn cut(&mut self, out: &mut Vec<u8>) -> bool {
        let json = openai_error_json("server_error", "The provider's stream ended before the response was complete");
        push_data(out, &json);
        true
    }
}

impl MessagesToChat {
    /// `requested_model` is echoed in every chunk; `include_usage` is the
    /// client's `stream_options.include_usage`; `created` is the Unix time to stamp.
    pub fn new(requested_model: &str, include_usage: bool, created: u64) -> Self {
        MessagesToChat {
            model: requested_model.to_owned(),
            include_usage,
            created,
            id: String::new(),
            started: false,
            open_tool: None,
            next_tool: 0,
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
                    if let Some(id) = m.id {
                        self.id = id.into_owned();
                    }
                    usage::merge_anthropic(&mut self.usage, m.usage);
                }
                self.ensure_started(out);
            }
            "content_block_start" => {
                self.ensure_started(out);
                let Some(block) = e.content_block else { return Next::Continue };
                match block.kind.as_ref() {
                    "tool_use" => {
                        let tool_index = self.next_tool;
                        self.next_tool += 1;
                        self.open_tool = Some((e.index.unwrap_or(0), tool_index));
                        let delta = ChunkDelta {
                            tool_calls: Some([ToolCallDelta {
                                index: tool_index,
                                id: Some(block.id.as_deref().unwrap_or_default()),
                                kind: Some("function"),
                                function: FunctionDelta {
                                    name: Some(block.name.as_deref().unwrap_or_default()),
                                    arguments: "",
                                },
                            }]),
                            ..ChunkDelta::default()
                        };
                        self.push_chunk(out, delta, None);
                    }
                    "text" => {
                        if let Some(text) = block.text.as_deref().filter(|t| !t.is_empty()) {
                            self.push_chunk(out, ChunkDelta { content: Some(text), ..ChunkDelta::default() }, None);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                self.ensure_started(out);
                let Some(delta) = e.delta else { return Next::Continue };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(text) = delta.text.as_deref().filter(|t| !t.is_empty()) {
                            self.push_chunk(out, ChunkDelta { content: Some(text), ..ChunkDelta::default() }, None);
                        }
                    }
                    Some("input_json_delta") => {
                        let Some((block_index, tool_index)) = self.open_tool else { return Next::Continue };
                        let Some(json) = delta.partial_json.as_deref().filter(|j| !j.is_empty()) else {
                            return Next::Continue;
                        };
                        if e.index.unwrap_or(0) != block_index {
                            return Next::Continue;
                        }
                        let delta = ChunkDelta {
                            tool_calls: Some([ToolCallDelta {
                                index: tool_index,
                                id: None,
                                kind: None,
                                function: FunctionDelta { name: None, arguments: json },
                            }]),
                            ..ChunkDelta::default()
                        };
                        self.push_chunk(out, delta, None);
                    }
                    _ => {}
                }
            }
            "content_block_stop" if self.open_tool.is_some_and(|(block, _)| Some(block) == e.index) => {
                self.open_tool = None;
            }
            "message_delta" => {
                if let Some(reason) = e.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason.into_owned());
                }
                usage::merge_anthropic(&mut self.usage, e.usage);
            }
            "message_stop" => {
                self.ensure_started(out);
                let finish = finish_reason_for(self.stop_reason.as_deref());
                self.push_chunk(out, ChunkDelta::default(), Some(finish));
                if self.include_usage {
                    let chunk = Chunk {
                        id: &self.id,
                        object: "chat.completion.chunk",
                        created: self.created,
                        model: &self.model,
                        choices: Vec::new(),
                        usage: Some(Some(ChatUsageOut::from(&self.usage))),
                    };
                    push_json_data(out, &chunk);
                }
                push_data(out, "[DONE]");
                return Next::Done;
            }
            "error" => {
                let kind = e.error.as_ref().and_then(|b| b.kind.as_deref()).unwrap_or_default();
                let message = e.error.as_ref().and_then(|b| b.message.as_deref()).unwrap_or("Provider error");
                push_data(out, &openai_error_json(openai_type_for_anthropic(kind, 500), message));
                return Next::Done;
            }
            _ => {}
        }
        Next::Continue
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            self.push_chunk(
                out,
                ChunkDelta { role: Some("assistant"), content: Some(""), ..ChunkDelta::default() },
                None,
            );
        }
    }

    fn push_chunk(&self, out: &mut Vec<u8>, delta: ChunkDelta, finish_reason: Option<&'static str>) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice { index: 0, delta, logprobs: None, finish_reason }],
            usage: self.include_usage.then_some(None),
        };
        push_json_data(out, &chunk);
    }
}
