//! Anthropic Messages request → OpenAI Chat Completions request (OpenAI, and
//! Gemini through its OpenAI-compatible endpoint).
//!
//! | Anthropic | OpenAI |
//! |---|---|
//! | `system` string or text blocks | one leading `system` message (blocks joined by a blank line) |
//! | `system`-role messages inside `messages` (newer models take them mid-conversation) | a `system` message in place |
//! | user `text` / `image` (base64 → data URL; `url`) / `document` (base64 PDF → `file.file_data`; plain text → text) | user content: a string for one text block, else parts |
//! | user `tool_result` | a `tool` message each, placed before the rest of the turn; text joined by newlines; images in a result move to the user message that follows; a `tool_reference` (a tool search's result) is the text "Tool <name> is now available." |
//! | `tools` with `defer_loading` | offered once a `tool_reference` in the conversation loaded them; until then left out (Claude Code's `DeferredToolPlaceholder` never is) |
//! | assistant `text` / `tool_use` | assistant `content` (text concatenated) and `tool_calls` (`input` as the `arguments` string) |
//! | `thinking`, `redacted_thinking` blocks | dropped (OpenAI has no way to send them back) |
//! | `tools` `{name, description, input_schema}` | `{type: function, function: {name, description, parameters}}` |
//! | `tool_choice` auto / any / tool / none | `auto` / `required` / `{type: function, function: {name}}` / `none`; `disable_parallel_tool_use` → `parallel_tool_calls: false` |
//! | `stop_sequences` | `stop` |
//! | `max_tokens` | `max_completion_tokens`, clamped to the model's maximum (the current field; `max_tokens` is deprecated and refused by o-series models; Gemini's endpoint takes it too) |
//! | `thinking` (`enabled` with `budget_tokens`, `adaptive`, `disabled`), `output_config.effort` | `reasoning_effort` for models that reason ([`super::target`]): the effort when given, else the budget's level, `disabled` → `none` where the model takes it; nothing for other models |
//! | `temperature`, `top_p` | same, verbatim |
//! | `metadata.user_id` | `user` |
//! | `stream` | `stream`, plus `stream_options.include_usage: true` (usage arrives only when asked) |
//! | `output_config.format` (or beta `output_format`) json_schema | `response_format` `{type: json_schema, json_schema: {name: "output", schema}}`, not `strict` (OpenAI's strict mode rejects schemas with optional properties) |
//! | `cache_control` anywhere | dropped (OpenAI caches automatically) |
//!
//! Ignored: `top_k` (no OpenAI equivalent), `context_management` (server-side
//! context editing; the whole conversation is sent), `service_tier`,
//! `container`, `inference_geo`, `speed`, `tool_result.is_error` (OpenAI tool
//! messages have no error flag).
//!
//! Refused ([`TranslateError::Unsupported`]): server tools (any tool whose
//! `type` is not `custom`, e.g. `web_search_…`, `bash_…`), `mcp_servers`,
//! content blocks other than the above (e.g. `server_tool_use`,
//! `search_result`), and document sources OpenAI cannot take (URLs, files).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::chat_out::{
    self, OutChoice, OutContent, OutFile, OutFormat, OutFunction, OutFunctionCall, OutMessage, OutPart, OutTool,
    OutToolCall, OutUrl,
};
use super::common::{decode, decode_str, field, invalid, invalid_json, parse_fields, unsupported, RawStr, Str};
use super::target::{Effort, Target};
use super::TranslateError;
use crate::request::Fields;

/// Translates a Messages body into a Chat Completions body for `target`.
pub fn messages_request_to_chat(body: &[u8], target: &Target) -> Result<Vec<u8>, TranslateError> {
    messages_request_to_chat_lexed(&parse_fields(body)?, body.len(), target)
}

/// [`messages_request_to_chat`] of a body already lexed into its members ([`crate::request::parse`]).
pub fn messages_request_to_chat_lexed(
    fields: &Fields,
    body_len: usize,
    target: &Target,
) -> Result<Vec<u8>, TranslateError> {
    if fields.get("mcp_servers").is_some_and(|r| r.get() != "null" && r.get() != "[]") {
        return Err(unsupported(format!("'mcp_servers' is not supported for {} models", target.name())));
    }
    let mut out_messages: Vec<OutMessage> = Vec::new();
    if let Some(raw) = fields.get("system").filter(|r| r.get() != "null") {
        let text = system_text(raw)?;
        if !text.is_empty() {
            out_messages.push(OutMessage::text("system", text));
        }
    }
    let messages = read_messages(fields)?;
    // Deferred tools a tool search has loaded.
    let mut loaded: Vec<String> = Vec::new();
    for (i, m) in messages.into_iter().enumerate() {
        match m.role.as_ref() {
            "user" => convert_user(m.content, i, &mut out_messages, &mut loaded)?,
            "assistant" => out_messages.push(convert_assistant(m.content, i)?),
            "system" => {
                let text = match m.content {
                    Content::Text(text) => text,
                    Content::Blocks(blocks) => system_blocks(blocks)?,
                };
                if !text.is_empty() {
                    out_messages.push(OutMessage::text("system", text));
                }
            }
            other => return Err(invalid(format!("messages[{i}]: unknown role '{other}'"))),
        }
    }

    let tools: Option<Vec<InTool>> = field(fields, "tools")?;
    let tools = tools
        .unwrap_or_default()
        .into_iter()
        // A deferred tool no tool search loaded is not offered (Claude Code's placeholder among them).
        .filter(|t| t.defer_loading != Some(true) || t.name.as_deref().is_some_and(|n| loaded.iter().any(|l| l == n)))
        .map(|t| convert_tool(t, target))
        .collect::<Result<Vec<_>, _>>()?;
    let (tool_choice, parallel_tool_calls) = match field::<InToolChoice>(fields, "tool_choice")? {
        Some(choice) => {
            let parallel = (choice.disable_parallel_tool_use == Some(true) && choice.kind != "none").then_some(false);
            let choice = match choice.kind.as_ref() {
                "auto" => OutChoice::Auto,
                "any" => OutChoice::Required,
                "none" => OutChoice::None,
                "tool" => {
                    OutChoice::Named(choice.name.ok_or_else(|| invalid("tool_choice of type 'tool' needs 'name'"))?)
                }
                other => return Err(invalid(format!("Invalid 'tool_choice' type '{other}'"))),
            };
            (Some(choice), parallel)
        }
        None => (None, None),
    };
    let output_config = field::<InOutputConfig>(fields, "output_config")?;
    let (config_format, config_effort) = match output_config {
        Some(c) => (c.format, c.effort),
        None => (None, None),
    };
    let format = match config_format {
        Some(f) => Some(f),
        None => field::<InFormat>(fields, "output_format")?,
    };
    let format = match format {
        Some(format) => {
            if format.kind != "json_schema" {
                return Err(unsupported(format!(
                    "output format '{}' is not supported for {} models",
                    format.kind,
                    target.name()
                )));
            }
            let schema = format.schema.ok_or_else(|| invalid("output_config.format needs 'schema'"))?;
            Some(OutFormat::JsonSchema { name: Cow::Borrowed("output"), schema, strict: None })
        }
        None => None,
    };
    let settings = chat_out::Settings {
        max_tokens: field::<u64>(fields, "max_tokens")?,
        tools,
        tool_choice,
        parallel_tool_calls,
        stop: field::<Vec<Str>>(fields, "stop_sequences")?,
        temperature: fields.get("temperature").filter(|r| r.get() != "null"),
        top_p: fields.get("top_p").filter(|r| r.get() != "null"),
        user: field::<InMetadata>(fields, "metadata")?.and_then(|m| m.user_id),
        format,
        effort: reasoning_effort(field(fields, "thinking")?, config_effort)?,
        stream: field::<bool>(fields, "stream")? == Some(true),
    };
    chat_out::write(target, body_len, &out_messages, settings)
}

#[derive(Deserialize)]
struct InThinking<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(default)]
    budget_tokens: Option<u64>,
}

/// The effort Anthropic's `thinking` and `output_config.effort` ask for.
fn reasoning_effort(thinking: Option<InThinking>, effort: Option<Str>) -> Result<Option<Effort>, TranslateError> {
    if thinking.as_ref().is_some_and(|t| t.kind == "disabled") {
        return Ok(Some(Effort::None));
    }
    if let Some(effort) = effort {
        return match Effort::parse(&effort) {
            Some(e) => Ok(Some(e)),
            None => Err(invalid(format!("Invalid 'output_config.effort': '{effort}'"))),
        };
    }
    Ok(match thinking {
        Some(InThinking { kind, budget_tokens: Some(budget) }) if kind == "enabled" => {
            Some(Effort::from_budget(budget))
        }
        _ => None,
    })
}

/// A message, its content read in the same pass.
#[derive(Deserialize)]
struct InMessage<'a> {
    #[serde(borrow)]
    role: Str<'a>,
    #[serde(borrow)]
    content: Content<'a>,
}

/// A message's content: a string, or blocks.
enum Content<'a> {
    Text(Str<'a>),
    Blocks(Vec<InBlock<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Content<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of content blocks")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Content<'a>, E> {
                Ok(Content::Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Content<'a>, E> {
                Ok(Content::Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Content<'a>, E> {
                Ok(Content::Text(Cow::Owned(s)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Content<'a>, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(block) = seq.next_element()? {
                    blocks.push(block);
                }
                Ok(Content::Blocks(blocks))
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// A message with its content left raw: read only when the one-pass read
/// fails, so the error names the message, as its conversion would.
#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow)]
    role: Str<'a>,
    #[serde(borrow)]
    content: &'a RawValue,
}

/// `messages`, each content read in the same pass (a content is otherwise
/// lexed once more per message). A failure is located by reading again the
/// slow way; an error there is the one each message's conversion gives.
fn read_messages<'a>(fields: &Fields<'a>) -> Result<Vec<InMessage<'a>>, TranslateError> {
    let raw = fields
        .get("messages")
        .filter(|r| r.get() != "null")
        .ok_or_else(|| invalid("Missing required parameter: 'messages'"))?;
    let e = match serde_json::from_str::<Vec<InMessage>>(raw.get()) {
        Ok(messages) => return Ok(messages),
        Err(e) => e,
    };
    let messages: Vec<RawMessage> = decode(raw, "messages")?;
    for (i, m) in messages.into_iter().enumerate() {
        match m.role.as_ref() {
            "user" | "assistant" => drop(blocks_of(m.content, i)?),
            "system" => drop(system_text(m.content)?),
            other => return Err(invalid(format!("messages[{i}]: unknown role '{other}'"))),
        }
    }
    Err(invalid_json("messages", &e))
}

#[derive(Deserialize)]
struct InBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(borrow, default)]
    source: Option<InSource<'a>>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_use_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_name: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct InSource<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    media_type: Option<Str<'a>>,
    #[serde(borrow, default)]
    data: Option<Str<'a>>,
    #[serde(borrow, default)]
    url: Option<Str<'a>>,
}

fn system_text(raw: &RawValue) -> Result<Str<'_>, TranslateError> {
    if raw.get().starts_with('"') {
        return decode_str(raw, "system");
    }
    system_blocks(decode(raw, "system")?)
}

/// System text blocks, joined by a blank line.
fn system_blocks(blocks: Vec<InBlock<'_>>) -> Result<Str<'_>, TranslateError> {
    let mut texts = Vec::with_capacity(blocks.len());
    for b in blocks {
        match (b.kind.as_ref(), b.text) {
            ("text", Some(t)) => texts.push(t),
            (other, _) => return Err(invalid(format!("system: only text blocks are allowed, not '{other}'"))),
        }
    }
    if texts.len() == 1 {
        return Ok(texts.pop().unwrap_or_default());
    }
    Ok(Cow::Owned(texts.join("\n\n")))
}

/// Blocks of a message's content; a string becomes one text block.
fn blocks_of(raw: &RawValue, i: usize) -> Result<Vec<InBlock<'_>>, TranslateError> {
    if raw.get().starts_with('"') {
        let text = decode_str(raw, "content")?;
        return Ok(vec![InBlock {
            kind: Cow::Borrowed("text"),
            text: Some(text),
            source: None,
            id: None,
            name: None,
            input: None,
            tool_use_id: None,
            content: None,
            tool_name: None,
        }]);
    }
    decode(raw, format_args!("messages[{i}].content"))
}

fn convert_user<'a>(
    content: Content<'a>,
    i: usize,
    out: &mut Vec<OutMessage<'a>>,
    loaded: &mut Vec<String>,
) -> Result<(), TranslateError> {
    let blocks = match content {
        Content::Text(text) => {
            out.push(OutMessage::text("user", text));
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts: Vec<OutPart> = Vec::new();
    // Images returned by tools go to the user message, which can carry them.
    let mut result_images: Vec<OutPart> = Vec::new();
    for block in blocks {
        match block.kind.as_ref() {
            "tool_result" => {
                let id = block
                    .tool_use_id
                    .ok_or_else(|| invalid(format!("messages[{i}]: tool_result without 'tool_use_id'")))?;
                let text = tool_result_text(block.content, i, &mut result_images, loaded)?;
                out.push(OutMessage::tool_result(id, text));
            }
            _ => {
                if let Some(part) = user_part(block, i)? {
                    parts.push(part);
                }
            }
        }
    }
    result_images.append(&mut parts);
    let parts = result_images;
    if parts.is_empty() {
        return Ok(());
    }
    out.push(OutMessage::parts("user", parts));
    Ok(())
}

/// A user block as an OpenAI part; None for blocks dropped on purpose.
fn user_part(block: InBlock<'_>, i: usize) -> Result<Option<OutPart<'_>>, TranslateError> {
    match block.kind.as_ref() {
        "text" => Ok(Some(OutPart::Text { text: block.text.unwrap_or_default() })),
        "image" => {
            let source = block.source.ok_or_else(|| invalid(format!("messages[{i}]: image without 'source'")))?;
            let url = match (source.kind.as_ref(), source.url, source.media_type, source.data) {
                ("url", Some(url), _, _) => url,
                ("base64", _, Some(media_type), Some(data)) => Cow::Owned(format!("data:{media_type};base64,{data}")),
                (kind, ..) => {
                    return Err(unsupported(format!(
                        "messages[{i}]: image source '{kind}' is not supported for OpenAI-format models"
                    )))
                }
            };
            Ok(Some(OutPart::ImageUrl { image_url: OutUrl { url } }))
        }
        "document" => {
            let source = block.source.ok_or_else(|| invalid(format!("messages[{i}]: document without 'source'")))?;
            match (source.kind.as_ref(), source.media_type, source.data) {
                ("base64", Some(media_type), Some(data)) => {
                    let filename = if media_type == "application/pdf" { "document.pdf" } else { "document" };
                    Ok(Some(OutPart::File {
                        file: OutFile {
                            filename: Cow::Borrowed(filename),
                            file_data: Cow::Owned(format!("data:{media_type};base64,{data}")),
                        },
                    }))
                }
                ("text", _, Some(data)) => Ok(Some(OutPart::Text { text: data })),
                (kind, ..) => Err(unsupported(format!(
                    "messages[{i}]: document source '{kind}' is not supported for OpenAI-format models"
                ))),
            }
        }
        "thinking" | "redacted_thinking" => Ok(None),
        other => Err(unsupported(format!(
            "messages[{i}]: content block '{other}' is not supported for OpenAI-format models"
        ))),
    }
}

fn tool_result_text<'a>(
    raw: Option<&'a RawValue>,
    i: usize,
    images: &mut Vec<OutPart<'a>>,
    loaded: &mut Vec<String>,
) -> Result<Str<'a>, TranslateError> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(Cow::Borrowed(""));
    };
    if raw.get().starts_with('"') {
        return decode_str(raw, "tool_result.content");
    }
    let mut texts: Vec<Str> = Vec::new();
    for block in blocks_of(raw, i)? {
        match block.kind.as_ref() {
            "text" => texts.push(block.text.unwrap_or_default()),
            // A tool search's result: the deferred tool is offered from now on.
            "tool_reference" => {
                let name = block.tool_name.unwrap_or_default();
                texts.push(Cow::Owned(format!("Tool {name} is now available.")));
                loaded.push(name.into_owned());
            }
            _ => {
                if let Some(part) = user_part(block, i)? {
                    match part {
                        OutPart::Text { text } => texts.push(text),
                        other => images.push(other),
                    }
                }
            }
        }
    }
    if texts.len() == 1 {
        return Ok(texts.pop().unwrap_or_default());
    }
    Ok(Cow::Owned(texts.join("\n")))
}

fn convert_assistant(content: Content<'_>, i: usize) -> Result<OutMessage<'_>, TranslateError> {
    let blocks = match content {
        Content::Text(text) => return Ok(OutMessage::text("assistant", text)),
        Content::Blocks(blocks) => blocks,
    };
    let mut texts: Vec<Str> = Vec::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.kind.as_ref() {
            "text" => texts.extend(block.text),
            "tool_use" => {
                let id = block.id.ok_or_else(|| invalid(format!("messages[{i}]: tool_use without 'id'")))?;
                let name = block.name.ok_or_else(|| invalid(format!("messages[{i}]: tool_use without 'name'")))?;
                let arguments = Cow::Borrowed(block.input.map_or("{}", RawValue::get));
                tool_calls.push(OutToolCall { id, kind: "function", function: OutFunctionCall { name, arguments } });
            }
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(unsupported(format!(
                    "messages[{i}]: content block '{other}' is not supported for OpenAI-format models"
                )))
            }
        }
    }
    let content = match texts.len() {
        0 => None,
        1 => texts.pop().map(OutContent::Text),
        _ => Some(OutContent::Text(Cow::Owned(texts.concat()))),
    };
    Ok(OutMessage { role: "assistant", content, tool_calls, tool_call_id: None })
}

#[derive(Deserialize)]
struct InTool<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    description: Option<RawStr<'a>>,
    #[serde(borrow, default)]
    input_schema: Option<&'a RawValue>,
    #[serde(default)]
    defer_loading: Option<bool>,
}

fn convert_tool<'a>(tool: InTool<'a>, target: &Target) -> Result<OutTool<'a>, TranslateError> {
    if let Some(kind) = tool.kind.as_deref().filter(|k| *k != "custom") {
        return Err(unsupported(format!(
            "tools: server tool type '{kind}' is not supported for {} models",
            target.name()
        )));
    }
    let name = tool.name.ok_or_else(|| invalid("tools: tool without 'name'"))?;
    let parameters = tool.input_schema.ok_or_else(|| invalid(format!("tools: '{name}' has no 'input_schema'")))?;
    Ok(OutTool {
        kind: "function",
        function: OutFunction { name, description: tool.description, parameters: Cow::Borrowed(parameters) },
    })
}

#[derive(Deserialize)]
struct InToolChoice<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(default)]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Deserialize)]
struct InMetadata<'a> {
    #[serde(borrow, default)]
    user_id: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct InOutputConfig<'a> {
    #[serde(borrow, default)]
    format: Option<InFormat<'a>>,
    #[serde(borrow, default)]
    effort: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct InFormat<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
}
