//! OpenAI Chat Completions request → Anthropic Messages request.
//!
//! | OpenAI | Anthropic |
//! |---|---|
//! | `system` / `developer` messages (anywhere) | `system`: the string when there is one string message, else text blocks in order |
//! | `user` / `assistant` content, string or parts | string, or blocks: `text`; `image_url` data URL → base64 `image`, http(s) → `url` image; `file.file_data` data URL → base64 `document` |
//! | assistant `tool_calls` | `tool_use` blocks, `arguments` parsed into `input` (empty → `{}`) |
//! | `tool` messages | `tool_result` blocks in a user turn |
//! | consecutive same-role turns | merged into one turn (Anthropic alternates roles) |
//! | `tools[].function` | `{name, description, input_schema}` (`parameters`, or an empty object schema) |
//! | `tool_choice` auto / none / required / function | `auto` / `none` / `any` / `tool` |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use: true` |
//! | `stop` (string or array) | `stop_sequences` |
//! | `max_completion_tokens`, else `max_tokens` | `max_tokens`, clamped to the model's maximum; without either, the model's maximum up to 32,000 (4,096 for a model the catalog does not list): see [`super::target`] |
//! | `reasoning_effort` | `thinking` / `output_config.effort` by model ([`super::target`]) |
//! | `temperature`, `top_p` | same, verbatim (Anthropic rejects temperature above 1) |
//! | `safety_identifier`, else `user` | `metadata.user_id` |
//! | `stream` | `stream` |
//! | `response_format` `json_schema` | `output_config.format` `{type: json_schema, schema}` (Anthropic structured outputs, `ANT-PY output_config_param.py`) |
//! | `cache_control` on a content part or tool (LiteLLM's convention) | kept on the block or tool |
//!
//! Refused ([`TranslateError::Unsupported`]), since dropping them would change
//! what the client gets: `n` > 1, `logprobs`, `top_logprobs`, `response_format`
//! `json_object` (Anthropic has no schemaless JSON mode), `audio` and
//! non-text `modalities`, `web_search_options`, legacy `functions` /
//! `function_call` and `function` messages, `input_audio` and `file_id`
//! parts, non-function tools, and `allowed_tools` tool choices.
//!
//! Ignored, as tuning hints Anthropic has no equivalent for: `frequency_penalty`,
//! `presence_penalty`, `logit_bias`, `seed`, `service_tier`, `store`,
//! `metadata`, `prediction`, `prompt_cache_key`, `prompt_cache_retention`,
//! `verbosity`, `stream_options` (the stream translator
//! takes `include_usage`), message `name`, image `detail`, and tool `strict`
//! (Anthropic's strict tools are model-dependent).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::common::{
    constant, decode, decode_str, field, invalid, parse_fields, unsupported, RawStr, Str, EMPTY_TOOL_SCHEMA,
};
use super::messages_out::{
    self, image_source, parse_arguments, push_turn, split_data_url, AnthropicTool, Block, Content, Source, ToolChoice,
    Turn,
};
use super::target::{Effort, Target};
use super::TranslateError;
use crate::request::Fields;
use crate::wire::openai_chat::Function;

/// Translates a Chat Completions body into a Messages body for `target`.
pub fn chat_request_to_messages(body: &[u8], target: &Target) -> Result<Vec<u8>, TranslateError> {
    chat_request_to_messages_lexed(&parse_fields(body)?, body.len(), target)
}

/// [`chat_request_to_messages`] of a body already lexed into its members ([`crate::request::parse`]).
pub fn chat_request_to_messages_lexed(
    fields: &Fields,
    body_len: usize,
    target: &Target,
) -> Result<Vec<u8>, TranslateError> {
    reject_unsupported(fields)?;

    let messages: Vec<ChatMessage> =
        field(fields, "messages")?.ok_or_else(|| invalid("Missing required parameter: 'messages'"))?;
    let (system, turns) = convert_messages(messages)?;

    let max_tokens = match field::<u64>(fields, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => field::<u64>(fields, "max_tokens")?,
    };
    let tools: Option<Vec<ChatTool>> = field(fields, "tools")?;
    let tools = tools.unwrap_or_default().into_iter().map(convert_tool).collect::<Result<Vec<_>, _>>()?;
    let tool_choice = match tools.is_empty() {
        true => None,
        false => {
            let parallel = field::<bool>(fields, "parallel_tool_calls")?;
            convert_tool_choice(fields.get("tool_choice"), parallel == Some(false))?
        }
    };
    let user = match field::<Str>(fields, "safety_identifier")? {
        Some(u) => Some(u),
        None => field::<Str>(fields, "user")?,
    };
    let json_schema = match field::<ResponseFormat>(fields, "response_format")? {
        Some(format) => convert_response_format(format)?,
        None => None,
    };
    let effort = match field::<Str>(fields, "reasoning_effort")? {
        Some(e) => Some(Effort::parse(&e).ok_or_else(|| invalid(format!("Invalid 'reasoning_effort': '{e}'")))?),
        None => None,
    };
    let settings = messages_out::Settings {
        max_tokens,
        tools,
        tool_choice,
        effort,
        summary: false,
        json_schema,
        temperature: fields.get("temperature").filter(|r| r.get() != "null"),
        top_p: fields.get("top_p").filter(|r| r.get() != "null"),
        user,
        stop_sequences: stop_sequences(fields.get("stop"))?,
        auto_cache: false,
        stream: field::<bool>(fields, "stream")?,
    };
    messages_out::write(target, body_len, system, &turns, settings)
}

fn reject_unsupported(fields: &crate::request::Fields) -> Result<(), TranslateError> {
    if field::<u64>(fields, "n")?.unwrap_or(1) > 1 {
        return Err(unsupported("'n' greater than 1 is not supported for Anthropic models (one choice per request)"));
    }
    if field::<bool>(fields, "logprobs")? == Some(true) {
        return Err(unsupported("'logprobs' is not supported for Anthropic models"));
    }
    if field::<u64>(fields, "top_logprobs")?.is_some_and(|n| n > 0) {
        return Err(unsupported("'top_logprobs' is not supported for Anthropic models"));
    }
    for (key, what) in [
        ("functions", "'functions' (legacy function calling) is not supported for Anthropic models; use 'tools'"),
        (
            "function_call",
            "'function_call' (legacy function calling) is not supported for Anthropic models; use 'tool_choice'",
        ),
        ("audio", "'audio' output is not supported for Anthropic models"),
        ("web_search_options", "'web_search_options' is not supported for Anthropic models"),
    ] {
        if fields.get(key).is_some_and(|r| r.get() != "null") {
            return Err(unsupported(what));
        }
    }
    let modalities: Option<Vec<Str>> = field(fields, "modalities")?;
    if modalities.unwrap_or_default().iter().any(|m| m != "text") {
        return Err(unsupported("'modalities' other than \"text\" are not supported for Anthropic models"));
    }
    Ok(())
}

#[derive(Deserialize)]
struct ChatMessage<'a> {
    #[serde(borrow)]
    role: Str<'a>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
    #[serde(borrow, default)]
    tool_call_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Str<'a>>,
    #[serde(borrow, default)]
    function_call: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    function: Function<'a>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Str<'a>>,
    #[serde(borrow, default)]
    image_url: Option<ImageUrl<'a>>,
    #[serde(borrow, default)]
    file: Option<FilePart<'a>>,
    #[serde(borrow, default)]
    cache_control: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ImageUrl<'a> {
    #[serde(borrow)]
    url: Str<'a>,
}

#[derive(Deserialize)]
struct FilePart<'a> {
    #[serde(borrow, default)]
    file_data: Option<Str<'a>>,
    #[serde(borrow, default)]
    file_id: Option<Str<'a>>,
}

fn convert_messages(messages: Vec<ChatMessage<'_>>) -> Result<(Option<Content<'_>>, Vec<Turn<'_>>), TranslateError> {
    let mut system: Vec<Content> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, m) in messages.into_iter().enumerate() {
        let (role, content) = match m.role.as_ref() {
            "system" | "developer" => {
                system.push(text_only_content(m.content, i)?);
                continue;
            }
            "user" => ("user", user_content(m.content, i)?),
            "assistant" => ("assistant", assistant_content(m, i)?),
            "tool" => ("user", tool_result(m, i)?),
            "function" => {
                return Err(unsupported(format!(
                    "messages[{i}]: role 'function' (legacy function calling) is not supported for Anthropic models; use 'tool'"
                )))
            }
            other => return Err(invalid(format!("messages[{i}]: unknown role '{other}'"))),
        };
        push_turn(&mut turns, role, content);
    }
    let system = match system.len() {
        0 => None,
        1 if matches!(system.first(), Some(Content::Text(_))) => match system.pop() {
            Some(Content::Text(text)) => Some(Content::Text(text)),
            _ => None,
        },
        _ => Some(Content::Blocks(system.into_iter().flat_map(Content::into_blocks).collect())),
    };
    Ok((system, turns))
}

/// Content that may only hold text: system messages, tool results.
fn text_only_content<'a>(raw: Option<&'a RawValue>, i: usize) -> Result<Content<'a>, TranslateError> {
    let content = user_content(raw, i)?;
    if let Content::Blocks(blocks) = &content {
        if blocks.iter().any(|b| !matches!(b, Block::Text { .. })) {
            return Err(invalid(format!("messages[{i}].content: only text parts are allowed in this message")));
        }
    }
    Ok(content)
}

fn user_content(raw: Option<&RawValue>, i: usize) -> Result<Content<'_>, TranslateError> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Err(invalid(format!("messages[{i}].content is required")));
    };
    if raw.get().starts_with('"') {
        return decode_str(raw, "content").map(Content::Text);
    }
    let parts: Vec<Part> = decode(raw, format_args!("messages[{i}].content"))?;
    let blocks = parts.into_iter().map(|p| convert_part(p, i)).collect::<Result<Vec<_>, _>>()?;
    Ok(Content::Blocks(blocks))
}

fn convert_part(part: Part<'_>, i: usize) -> Result<Block<'_>, TranslateError> {
    let cache_control = part.cache_control;
    match part.kind.as_ref() {
        "text" => {
            let text = part.text.ok_or_else(|| invalid(format!("messages[{i}]: text part without 'text'")))?;
            Ok(Block::Text { text, cache_control })
        }
        // Assistant history may carry a refusal part; it was said, so keep it as text.
        "refusal" => Ok(Block::Text { text: part.refusal.unwrap_or_default(), cache_control }),
        "image_url" => {
            let url = part
                .image_url
                .ok_or_else(|| invalid(format!("messages[{i}]: image_url part without 'image_url'")))?
                .url;
            Ok(Block::Image { source: image_source(url, &format!("messages[{i}]"))?, cache_control })
        }
        "file" => {
            let file = part.file.ok_or_else(|| invalid(format!("messages[{i}]: file part without 'file'")))?;
            match (file.file_data, file.file_id) {
                (Some(data), _) => {
                    let source = match split_data_url(data) {
                        Some((media_type, data)) => Source::Base64 { media_type, data },
                        None => {
                            return Err(unsupported(format!(
                                "messages[{i}]: file_data must be a base64 data URL for Anthropic models"
                            )))
                        }
                    };
                    Ok(Block::Document { source, cache_control })
                }
                (None, Some(_)) => Err(unsupported(format!(
                    "messages[{i}]: file parts by 'file_id' are not supported for Anthropic models; send file_data"
                ))),
                (None, None) => Err(invalid(format!("messages[{i}]: file part without file_data or file_id"))),
            }
        }
        "input_audio" => Err(unsupported(format!("messages[{i}]: audio input is not supported for Anthropic models"))),
        other => Err(unsupported(format!(
            "messages[{i}]: content part type '{other}' is not supported for Anthropic models"
        ))),
    }
}

fn assistant_content(m: ChatMessage<'_>, i: usize) -> Result<Content<'_>, TranslateError> {
    if m.function_call.is_some_and(|r| r.get() != "null") {
        return Err(unsupported(format!(
            "messages[{i}].function_call (legacy function calling) is not supported for Anthropic models; use tool_calls"
        )));
    }
    let mut blocks = match m.content.filter(|r| r.get() != "null") {
        None => Vec::new(),
        Some(raw) => user_content(Some(raw), i)?.into_blocks(),
    };
    if let Some(refusal) = m.refusal.filter(|r| !r.is_empty()) {
        blocks.push(Block::Text { text: refusal, cache_control: None });
    }
    // Anthropic rejects empty text blocks; clients send `"content": ""` beside tool calls.
    blocks.retain(|b| !matches!(b, Block::Text { text, .. } if text.is_empty()));
    for call in m.tool_calls.unwrap_or_default() {
        if call.kind.as_deref().is_some_and(|k| k != "function") {
            return Err(unsupported(format!(
                "messages[{i}]: only function tool calls are supported for Anthropic models"
            )));
        }
        let input = parse_arguments(call.function.arguments.as_deref(), &format!("messages[{i}]"))?;
        blocks.push(Block::ToolUse { id: call.id, name: call.function.name, input });
    }
    Ok(Content::from_blocks(blocks))
}

fn tool_result(m: ChatMessage<'_>, i: usize) -> Result<Content<'_>, TranslateError> {
    let tool_use_id =
        m.tool_call_id.ok_or_else(|| invalid(format!("messages[{i}]: tool message without 'tool_call_id'")))?;
    let content = match m.content.filter(|r| r.get() != "null") {
        None => Content::Text(Cow::Borrowed("")),
        some => text_only_content(some, i)?,
    };
    Ok(Content::Blocks(vec![Block::ToolResult { tool_use_id, content }]))
}

#[derive(Deserialize)]
struct ChatTool<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    function: Option<FunctionDef<'a>>,
    #[serde(borrow, default)]
    cache_control: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct FunctionDef<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow, default)]
    description: Option<RawStr<'a>>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
}

fn convert_tool(tool: ChatTool<'_>) -> Result<AnthropicTool<'_>, TranslateError> {
    if tool.kind != "function" {
        return Err(unsupported(format!("tools: type '{}' is not supported for Anthropic models", tool.kind)));
    }
    let f = tool.function.ok_or_else(|| invalid("tools: function tool without 'function'"))?;
    let input_schema = match f.parameters.filter(|p| p.get() != "null") {
        Some(p) => Cow::Borrowed(p),
        // OpenAI allows omitting parameters (a no-argument function); Anthropic requires a schema.
        None => Cow::Borrowed(constant(EMPTY_TOOL_SCHEMA)?),
    };
    Ok(AnthropicTool { name: f.name, description: f.description, input_schema, cache_control: tool.cache_control })
}

#[derive(Deserialize)]
struct NamedChoice<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    function: Option<NamedFunction<'a>>,
}

#[derive(Deserialize)]
struct NamedFunction<'a> {
    #[serde(borrow)]
    name: Str<'a>,
}

fn convert_tool_choice(raw: Option<&RawValue>, no_parallel: bool) -> Result<Option<ToolChoice<'_>>, TranslateError> {
    let disable_parallel_tool_use = no_parallel;
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(no_parallel.then_some(ToolChoice::Auto { disable_parallel_tool_use }));
    };
    if raw.get().starts_with('"') {
        return match decode_str(raw, "tool_choice")?.as_ref() {
            "auto" => Ok(Some(ToolChoice::Auto { disable_parallel_tool_use })),
            "required" => Ok(Some(ToolChoice::Any { disable_parallel_tool_use })),
            "none" => Ok(Some(ToolChoice::None)),
            other => Err(invalid(format!("Invalid 'tool_choice': '{other}'"))),
        };
    }
    let named: NamedChoice = decode(raw, "tool_choice")?;
    match (named.kind.as_ref(), named.function) {
        ("function", Some(f)) => Ok(Some(ToolChoice::Tool { name: f.name, disable_parallel_tool_use })),
        ("function", None) => Err(invalid("Invalid 'tool_choice': function choice without 'function'")),
        (other, _) => Err(unsupported(format!("tool_choice type '{other}' is not supported for Anthropic models"))),
    }
}

fn stop_sequences(raw: Option<&RawValue>) -> Result<Option<Vec<Str<'_>>>, TranslateError> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(None);
    };
    if raw.get().starts_with('"') {
        return Ok(Some(vec![decode_str(raw, "stop")?]));
    }
    decode(raw, "stop").map(Some)
}

#[derive(Deserialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    json_schema: Option<JsonSchemaSpec<'a>>,
}

#[derive(Deserialize)]
struct JsonSchemaSpec<'a> {
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
}

fn convert_response_format(format: ResponseFormat<'_>) -> Result<Option<&RawValue>, TranslateError> {
    match format.kind.as_ref() {
        "text" => Ok(None),
        "json_schema" => {
            let schema = format
                .json_schema
                .and_then(|s| s.schema)
                .ok_or_else(|| invalid("response_format json_schema needs 'json_schema.schema'"))?;
            Ok(Some(schema))
        }
        "json_object" => Err(unsupported(
            "response_format 'json_object' is not supported for Anthropic models (no schemaless JSON mode); use 'json_schema'",
        )),
        other => Err(unsupported(format!("response_format '{other}' is not supported for Anthropic models"))),
    }
}
