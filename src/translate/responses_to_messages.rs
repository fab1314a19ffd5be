//! OpenAI Responses request → Anthropic Messages request (Anthropic, and
//! Bedrock after `bedrock::messages_to_bedrock_body`). What is read, accepted
//! and refused is in [`super::responses_request`]; this writes it:
//!
//! | Responses | Anthropic |
//! |---|---|
//! | instructions (`instructions`, `system` / `developer` messages) | `system`, in order |
//! | user / assistant messages | turns (same roles merged); text, `image` (base64 or URL), `document` (base64 data URL or URL) |
//! | `function_call` / `custom_tool_call` | assistant `tool_use` (`arguments` parsed into `input`) |
//! | `function_call_output` / `custom_tool_call_output` | user `tool_result` (text, or text and image blocks), before the rest of the turn |
//! | `reasoning` items this gateway produced from Anthropic thinking | `thinking` (summary text, signature) / `redacted_thinking`, where the item stood; other reasoning items (another provider's) are dropped |
//! | `tools` | `{name, description, input_schema}` |
//! | `tool_choice` `auto` / `required` / `none` / named | `auto` / `any` / `none` / `tool`; `parallel_tool_calls: false` → `disable_parallel_tool_use` |
//! | `reasoning.effort`, `reasoning.summary` | `thinking` and `output_config.effort` by model ([`super::target`]); a summary asks adaptive thinking to `display` it |
//! | `max_output_tokens` | `max_tokens`, clamped to the model's maximum; absent, the model's maximum up to 32,000 |
//! | `text.format` `json_schema` | `output_config.format` |
//! | `temperature`, `top_p` | same |
//! | `safety_identifier`, else `user` | `metadata.user_id` |
//! | (OpenAI caches prompts automatically) | top-level `cache_control: {type: ephemeral}`, Anthropic's automatic caching (removed for Bedrock, which lacks it) |
//!
//! Refused here: `text.format` `json_object` (Anthropic has no schemaless JSON mode).

use std::borrow::Cow;

use super::common::{invalid, parse_fields, unsupported, Str};
use super::messages_out::{
    self, image_source, parse_arguments, push_turn, split_data_url, AnthropicTool, Block, Content, Source, ToolChoice,
    Turn,
};
use super::responses_out::{ResponsesContext, REDACTED_PREFIX, THINKING_PREFIX};
use super::responses_request::{self, Entry, Format, Part, Role, ToolChoice as InChoice};
use super::target::Target;
use super::TranslateError;
use crate::request::Fields;

/// Translates a Responses body into a Messages body for `target`.
pub fn responses_request_to_messages(body: &[u8], target: &Target) -> Result<Vec<u8>, TranslateError> {
    responses_request_to_messages_lexed(&parse_fields(body)?, body.len(), target).map(|(body, _)| body)
}

/// [`responses_request_to_messages`] of a body already lexed into its members ([`crate::request::parse`]),
/// with the context its translated answer needs.
pub fn responses_request_to_messages_lexed(
    fields: &Fields,
    body_len: usize,
    target: &Target,
) -> Result<(Vec<u8>, ResponsesContext), TranslateError> {
    let (req, shapes) = responses_request::read(fields, target)?;
    let context = ResponsesContext::new(fields, shapes);
    let system = match req.instructions.len() {
        0 => None,
        1 => req.instructions.into_iter().next().map(Content::Text),
        _ => Some(Content::Blocks(
            req.instructions.into_iter().map(|text| Block::Text { text, cache_control: None }).collect(),
        )),
    };
    let mut turns: Vec<Turn> = Vec::new();
    for (i, entry) in req.entries.into_iter().enumerate() {
        let at = format!("input[{i}]");
        let (role, blocks) = match entry {
            Entry::Message { role: Role::User, parts } => ("user", blocks(parts, &at, true)?),
            Entry::Message { role: Role::Assistant, parts } => {
                let mut b = blocks(parts, &at, false)?;
                // Anthropic rejects empty text blocks.
                b.retain(|b| !matches!(b, Block::Text { text, .. } if text.is_empty()));
                ("assistant", b)
            }
            Entry::Call { call_id, name, arguments } => {
                let input = parse_arguments(Some(&arguments), &at)?;
                ("assistant", vec![Block::ToolUse { id: call_id, name, input }])
            }
            Entry::Output { call_id, parts } => {
                let content = Content::from_blocks(blocks(parts, &at, true)?);
                ("user", vec![Block::ToolResult { tool_use_id: call_id, content }])
            }
            Entry::Reasoning { text, encrypted } => match thinking_block(text, encrypted) {
                Some(block) => ("assistant", vec![block]),
                None => continue,
            },
        };
        if blocks.is_empty() {
            continue;
        }
        push_turn(&mut turns, role, Content::from_blocks(blocks));
    }
    let tools: Vec<AnthropicTool> = req
        .tools
        .into_iter()
        .map(|t| AnthropicTool {
            name: t.name,
            description: t.description,
            input_schema: Cow::Borrowed(t.parameters),
            cache_control: None,
        })
        .collect();
    let disable_parallel_tool_use = req.parallel_tool_calls == Some(false);
    let tool_choice = match req.tool_choice {
        InChoice::Unset if disable_parallel_tool_use => Some(ToolChoice::Auto { disable_parallel_tool_use }),
        InChoice::Unset => None,
        InChoice::Auto => Some(ToolChoice::Auto { disable_parallel_tool_use }),
        InChoice::Required => Some(ToolChoice::Any { disable_parallel_tool_use }),
        InChoice::None => Some(ToolChoice::None),
        InChoice::Named(name) => Some(ToolChoice::Tool { name, disable_parallel_tool_use }),
    };
    let json_schema = match req.format {
        None => None,
        Some(Format::JsonSchema { schema, .. }) => Some(schema),
        Some(Format::JsonObject) => {
            return Err(unsupported(format!(
                "text.format 'json_object' is not supported for {} models (no schemaless JSON mode); use 'json_schema'",
                target.name()
            )))
        }
    };
    let settings = messages_out::Settings {
        max_tokens: req.max_output_tokens,
        tools,
        tool_choice,
        effort: req.effort,
        summary: req.summary,
        json_schema,
        temperature: req.temperature,
        top_p: req.top_p,
        user: req.user,
        stop_sequences: None,
        auto_cache: true,
        stream: req.stream.then_some(true),
    };
    messages_out::write(target, body_len, system, &turns, settings).map(|body| (body, context))
}

/// Content parts as blocks; `inputs` allows images and documents.
fn blocks<'a>(parts: Vec<Part<'a>>, at: &str, inputs: bool) -> Result<Vec<Block<'a>>, TranslateError> {
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        out.push(match part {
            Part::Text(text) => Block::Text { text, cache_control: None },
            Part::Image(url) if inputs => Block::Image { source: image_source(url, at)?, cache_control: None },
            Part::File { data, url, .. } if inputs => {
                Block::Document { source: document_source(data, url, at)?, cache_control: None }
            }
            Part::Image(_) | Part::File { .. } => {
                return Err(invalid(format!("{at}: assistant messages take text only")))
            }
        });
    }
    Ok(out)
}

fn document_source<'a>(data: Option<Str<'a>>, url: Option<Str<'a>>, at: &str) -> Result<Source<'a>, TranslateError> {
    if let Some(data) = data {
        return match split_data_url(data) {
            Some((media_type, data)) => Ok(Source::Base64 { media_type, data }),
            None => Err(unsupported(format!("{at}: file_data must be a base64 data URL for Anthropic models"))),
        };
    }
    match url {
        Some(url) => Ok(Source::Url { url }),
        None => Err(invalid(format!("{at}: input_file without 'file_data' or 'file_url'"))),
    }
}

/// The thinking block a reasoning item carries, if this gateway made it from one.
fn thinking_block(text: String, encrypted: Option<Str<'_>>) -> Option<Block<'_>> {
    let encrypted = encrypted?;
    if let Some(signature) = encrypted.strip_prefix(THINKING_PREFIX) {
        return Some(Block::Thinking { thinking: Cow::Owned(text), signature: Cow::Owned(signature.to_owned()) });
    }
    let data = encrypted.strip_prefix(REDACTED_PREFIX)?;
    Some(Block::RedactedThinking { data: Cow::Owned(data.to_owned()) })
}
