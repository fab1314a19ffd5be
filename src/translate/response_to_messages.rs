//! OpenAI `chat.completion` → Anthropic Messages response.
//!
//! The first choice is read (the request translator never asks for more).
//! `message.content` becomes a `text` block, `message.refusal` a `text` block
//! with `stop_reason: refusal`, and each tool call a `tool_use` block whose
//! `input` is the parsed `arguments` (empty → `{}`; arguments that are not a
//! JSON object are an error rather than a guessed input). `finish_reason`:
//! `stop` → `end_turn`, `length` → `max_tokens`, `tool_calls` → `tool_use`,
//! `content_filter` → `refusal`; a turn with tool calls is `tool_use`
//! whatever the provider said. Usage follows Anthropic semantics:
//! `input_tokens` = `prompt_tokens` − cached − cache writes, with
//! `cache_read_input_tokens` = `cached_tokens` and
//! `cache_creation_input_tokens` = `cache_write_tokens`. Reasoning text some
//! compatible providers add (`reasoning_content`) is dropped: it carries no
//! signature an Anthropic client could send back.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;

use super::common::{invalid, stop_reason_for, Str};
use super::TranslateError;
use crate::wire::openai_chat::Completion;
use crate::wire::usage::{self, AnthropicUsageOut};

#[derive(Serialize)]
struct Message<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<()>,
    usage: AnthropicUsageOut,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text { text: Str<'a> },
    ToolUse { id: Str<'a>, name: Str<'a>, input: Cow<'a, RawValue> },
}

/// Translates a `chat.completion` body into an Anthropic message body.
pub fn chat_response_to_messages(body: &[u8], requested_model: &str) -> Result<Vec<u8>, TranslateError> {
    let completion: Completion =
        serde_json::from_slice(body).map_err(|e| invalid(format!("Invalid OpenAI-format response: {e}")))?;
    let mut content = Vec::new();
    let mut finish_reason = None;
    let mut refused = false;
    if let Some(choice) = completion.choices.into_iter().next() {
        finish_reason = choice.finish_reason;
        if let Some(m) = choice.message {
            if let Some(text) = m.content.filter(|t| !t.is_empty()) {
                content.push(Block::Text { text });
            }
            if let Some(text) = m.refusal.filter(|t| !t.is_empty()) {
                refused = true;
                content.push(Block::Text { text });
            }
            for (n, call) in m.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let id = call.id.filter(|id| !id.is_empty()).unwrap_or_else(|| Cow::Owned(format!("call_{n}")));
                let input = parse_input(call.function.arguments.as_deref().unwrap_or_default())?;
                content.push(Block::ToolUse { id, name: call.function.name, input });
            }
        }
    }
    let has_tools = content.iter().any(|b| matches!(b, Block::ToolUse { .. }));
    let stop_reason = if refused { "refusal" } else { stop_reason_for(finish_reason.as_deref(), has_tools) };
    let message = Message {
        id: completion.id.as_deref().unwrap_or_default(),
        kind: "message",
        role: "assistant",
        model: requested_model,
        content,
        stop_reason,
        stop_sequence: None,
        usage: AnthropicUsageOut::from(&usage::chat(completion.usage).unwrap_or_default()),
    };
    serde_json::to_vec(&message).map_err(|e| invalid(e.to_string()))
}

fn parse_input(arguments: &str) -> Result<Cow<'static, RawValue>, TranslateError> {
    let text = if arguments.trim().is_empty() { "{}" } else { arguments };
    let raw: Box<RawValue> = serde_json::from_str(text)
        .map_err(|e| invalid(format!("The provider returned tool call arguments that are not valid JSON: {e}")))?;
    if !raw.get().starts_with('{') {
        return Err(invalid("The provider returned tool call arguments that are not a JSON object"));
    }
    Ok(Cow::Owned(raw))
}
