//! Anthropic Messages response → OpenAI `chat.completion`.
//!
//! `text` blocks are concatenated into `message.content` (null when there is
//! none and the model called tools); `tool_use` blocks become `tool_calls`
//! with `input` serialised as the `arguments` string; `thinking`,
//! `redacted_thinking` and server-tool blocks are dropped (Chat Completions
//! has no field for them). `stop_reason` maps to `finish_reason`: `end_turn`,
//! `stop_sequence`, `pause_turn` → `stop`; `max_tokens`,
//! `model_context_window_exceeded` → `length`; `tool_use` → `tool_calls`;
//! `refusal` → `content_filter`. Usage follows OpenAI semantics:
//! `prompt_tokens` = input + cache reads + cache writes, with
//! `prompt_tokens_details.cached_tokens` = cache reads and `cache_write_tokens`
//! = cache writes (the 5m/1h split has no OpenAI field). `id` is Anthropic's
//! message id; `model` is the model the client asked for.

use serde::Serialize;
use serde_json::value::RawValue;

use super::common::{finish_reason_for, invalid};
use super::TranslateError;
use crate::wire::anthropic::Message;
use crate::wire::usage::{self, ChatUsageOut};

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: ChatUsageOut,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: OutMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Serialize)]
pub(super) struct ToolCall<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall<'a>,
}

#[derive(Serialize)]
pub(super) struct FunctionCall<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}

/// Translates an Anthropic message body into a `chat.completion` body;
/// `created` is the Unix time to stamp (the caller owns the clock).
pub fn messages_response_to_chat(body: &[u8], requested_model: &str, created: u64) -> Result<Vec<u8>, TranslateError> {
    let message: Message =
        serde_json::from_slice(body).map_err(|e| invalid(format!("Invalid Anthropic response: {e}")))?;
    let mut content: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in &message.content {
        match block.kind.as_ref() {
            "text" => content.get_or_insert_with(String::new).push_str(block.text.as_deref().unwrap_or_default()),
            "tool_use" => tool_calls.push(ToolCall {
                id: block.id.as_deref().unwrap_or_default(),
                kind: "function",
                function: FunctionCall {
                    name: block.name.as_deref().unwrap_or_default(),
                    arguments: block.input.map_or("{}", RawValue::get),
                },
            }),
            _ => {}
        }
    }
    if content.is_none() && tool_calls.is_empty() {
        content = Some(String::new());
    }
    let completion = Completion {
        id: message.id.as_deref().unwrap_or_default(),
        object: "chat.completion",
        created,
        model: requested_model,
        choices: [Choice {
            index: 0,
            message: OutMessage { role: "assistant", content, refusal: None, tool_calls },
            logprobs: None,
            finish_reason: finish_reason_for(message.stop_reason.as_deref()),
        }],
        usage: ChatUsageOut::from(&usage::anthropic(message.usage).unwrap_or_else(usage::anthropic_start)),
    };
    serde_json::to_vec(&completion).map_err(|e| invalid(e.to_string()))
}
