//! Anthropic Messages request → OpenAI Chat Completions request (OpenAI, and
//! Gemini through its OpenAI-compatible endpoint).
//!
//! | Anthropic | OpenAI |
//! |---|---|
//! | `system` string or text blocks | one leading `system` message (blocks joined by a blank line) |
//! | user `text` / `image` (base64 → data URL; `url`) / `document` (base64 PDF → `file.file_data`; plain text → text) | user content: a string for one text block, else parts |
//! | user `tool_result` | a `tool` message each, placed before the rest of the turn; text joined by newlines; images in a result move to the user message that follows |
//! | assistant `text` / `tool_use` | assistant `content` (text concatenated) and `tool_calls` (`input` as the `arguments` string) |
//! | `thinking`, `redacted_thinking` blocks | dropped (OpenAI has no way to send them back) |
//! | `tools` `{name, description, input_schema}` | `{type: function, function: {name, description, parameters}}` |
//! | `tool_choice` auto / any / tool / none | `auto` / `required` / `{type: function, function: {name}}` / `none`; `disable_parallel_tool_use` → `parallel_tool_calls: false` |
//! | `stop_sequences` | `stop` |
//! | `max_tokens` | `max_completion_tokens` (the current field; `max_tokens` is deprecated and refused by o-series models; Gemini's endpoint takes it too) |
//! | `temperature`, `top_p` | same, verbatim |
//! | `metadata.user_id` | `user` |
//! | `stream` | `stream`, plus `stream_options.include_usage: true` (usage arrives only when asked) |
//! | `output_config.format` (or beta `output_format`) json_schema | `response_format` `{type: json_schema, json_schema: {name: "output", schema}}`, not `strict` (OpenAI's strict mode rejects schemas with optional properties) |
//! | `cache_control` anywhere | dropped (OpenAI caches automatically) |
//!
//! Ignored: `top_k` (no OpenAI equivalent), `thinking` and `output_config.effort`
//! (`reasoning_effort` is refused by non-reasoning models, so no mapping is
//! safe for every model), `service_tier`, `container`, `inference_geo`,
//! `tool_result.is_error` (OpenAI tool messages have no error flag).
//!
//! Refused ([`TranslateError::Unsupported`]): server tools (any tool whose
//! `type` is not `custom`, e.g. `web_search_…`, `bash_…`), `mcp_servers`,
//! content blocks other than the above (e.g. `server_tool_use`,
//! `search_result`), and document sources OpenAI cannot take (URLs, files).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::common::{decode, decode_str, field, invalid, parse_fields, unsupported, ObjectWriter, Str};
use super::TranslateError;

/// Translates a Messages body into a Chat Completions body for `upstream_model`.
pub fn messages_request_to_chat(body: &[u8], upstream_model: &str) -> Result<Vec<u8>, TranslateError> {
    let fields = parse_fields(body)?;
    if fields.get("mcp_servers").is_some_and(|r| r.get() != "null" && r.get() != "[]") {
        return Err(unsupported("'mcp_servers' is not supported for OpenAI-format models"));
    }
    let mut out_messages: Vec<OutMessage> = Vec::new();
    if let Some(raw) = fields.get("system").filter(|r| r.get() != "null") {
        let text = system_text(raw)?;
        if !text.is_empty() {
            out_messages.push(OutMessage::text("system", text));
        }
    }
    let messages: Vec<InMessage> =
        field(&fields, "messages")?.ok_or_else(|| invalid("Missing required parameter: 'messages'"))?;
    for (i, m) in messages.into_iter().enumerate() {
        match m.role.as_ref() {
            "user" => convert_user(m.content, i, &mut out_messages)?,
            "assistant" => out_messages.push(convert_assistant(m.content, i)?),
            other => return Err(invalid(format!("messages[{i}]: unknown role '{other}'"))),
        }
    }

    let mut out = ObjectWriter::with_capacity(body.len() + 256);
    out.value("model", upstream_model);
    out.value("messages", &out_messages);
    if let Some(max_tokens) = field::<u64>(&fields, "max_tokens")? {
        out.value("max_completion_tokens", &max_tokens);
    }
    let tools: Option<Vec<InTool>> = field(&fields, "tools")?;
    let tools = tools.unwrap_or_default().into_iter().map(convert_tool).collect::<Result<Vec<_>, _>>()?;
    if !tools.is_empty() {
        out.value("tools", &tools);
        if let Some(choice) = field::<InToolChoice>(&fields, "tool_choice")? {
            let disable_parallel = choice.disable_parallel_tool_use == Some(true);
            match choice.kind.as_ref() {
                "auto" => out.value("tool_choice", "auto"),
                "any" => out.value("tool_choice", "required"),
                "none" => out.value("tool_choice", "none"),
                "tool" => {
                    let name = choice.name.ok_or_else(|| invalid("tool_choice of type 'tool' needs 'name'"))?;
                    out.value("tool_choice", &NamedChoice { kind: "function", function: NamedFunction { name } });
                }
                other => return Err(invalid(format!("Invalid 'tool_choice' type '{other}'"))),
            }
            if disable_parallel && choice.kind != "none" {
                out.value("parallel_tool_calls", &false);
            }
        }
    }
    if let Some(stop) = field::<Vec<Str>>(&fields, "stop_sequences")? {
        if !stop.is_empty() {
            out.value("stop", &stop);
        }
    }
    for key in ["temperature", "top_p"] {
        if let Some(raw) = fields.get(key).filter(|r| r.get() != "null") {
            out.raw(key, raw.get());
        }
    }
    if let Some(user) = field::<InMetadata>(&fields, "metadata")?.and_then(|m| m.user_id) {
        out.value("user", &user);
    }
    let config_format = field::<InOutputConfig>(&fields, "output_config")?.and_then(|c| c.format);
    let format = match config_format {
        Some(f) => Some(f),
        None => field::<InFormat>(&fields, "output_format")?,
    };
    if let Some(format) = format {
        if format.kind != "json_schema" {
            return Err(unsupported(format!(
                "output format '{}' is not supported for OpenAI-format models",
                format.kind
            )));
        }
        let schema = format.schema.ok_or_else(|| invalid("output_config.format needs 'schema'"))?;
        out.value(
            "response_format",
            &ResponseFormat { kind: "json_schema", json_schema: JsonSchema { name: "output", schema } },
        );
    }
    if field::<bool>(&fields, "stream")? == Some(true) {
        out.value("stream", &true);
        out.raw("stream_options", r#"{"include_usage":true}"#);
    }
    Ok(out.finish())
}

#[derive(Deserialize)]
struct InMessage<'a> {
    #[serde(borrow)]
    role: Str<'a>,
    #[serde(borrow)]
    content: &'a RawValue,
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

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<OutContent<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<Str<'a>>,
}

impl<'a> OutMessage<'a> {
    fn text(role: &'static str, text: Str<'a>) -> Self {
        OutMessage { role, content: Some(OutContent::Text(text)), tool_calls: Vec::new(), tool_call_id: None }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum OutContent<'a> {
    Text(Str<'a>),
    Parts(Vec<OutPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutPart<'a> {
    Text { text: Str<'a> },
    ImageUrl { image_url: OutUrl<'a> },
    File { file: OutFile },
}

#[derive(Serialize)]
struct OutUrl<'a> {
    url: Str<'a>,
}

#[derive(Serialize)]
struct OutFile {
    filename: String,
    file_data: String,
}

#[derive(Serialize)]
struct OutToolCall<'a> {
    id: Str<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutFunctionCall<'a>,
}

#[derive(Serialize)]
struct OutFunctionCall<'a> {
    name: Str<'a>,
    arguments: &'a str,
}

fn system_text(raw: &RawValue) -> Result<Str<'_>, TranslateError> {
    if raw.get().starts_with('"') {
        return decode_str(raw, "system");
    }
    let blocks: Vec<InBlock> = decode(raw, "system")?;
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
        }]);
    }
    decode(raw, &format!("messages[{i}].content"))
}

fn convert_user<'a>(raw: &'a RawValue, i: usize, out: &mut Vec<OutMessage<'a>>) -> Result<(), TranslateError> {
    if raw.get().starts_with('"') {
        out.push(OutMessage::text("user", decode_str(raw, "content")?));
        return Ok(());
    }
    let mut parts: Vec<OutPart> = Vec::new();
    // Images returned by tools go to the user message, which can carry them.
    let mut result_images: Vec<OutPart> = Vec::new();
    for block in blocks_of(raw, i)? {
        match block.kind.as_ref() {
            "tool_result" => {
                let id = block
                    .tool_use_id
                    .ok_or_else(|| invalid(format!("messages[{i}]: tool_result without 'tool_use_id'")))?;
                let text = tool_result_text(block.content, i, &mut result_images)?;
                out.push(OutMessage {
                    role: "tool",
                    content: Some(OutContent::Text(text)),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(id),
                });
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
    let content = match <[OutPart; 1]>::try_from(parts) {
        Ok([OutPart::Text { text }]) => OutContent::Text(text),
        Ok([part]) => OutContent::Parts(vec![part]),
        Err(parts) => OutContent::Parts(parts),
    };
    out.push(OutMessage { role: "user", content: Some(content), tool_calls: Vec::new(), tool_call_id: None });
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
                            filename: filename.to_owned(),
                            file_data: format!("data:{media_type};base64,{data}"),
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

fn convert_assistant(raw: &RawValue, i: usize) -> Result<OutMessage<'_>, TranslateError> {
    if raw.get().starts_with('"') {
        return Ok(OutMessage::text("assistant", decode_str(raw, "content")?));
    }
    let mut texts: Vec<Str> = Vec::new();
    let mut tool_calls = Vec::new();
    for block in blocks_of(raw, i)? {
        match block.kind.as_ref() {
            "text" => texts.extend(block.text),
            "tool_use" => {
                let id = block.id.ok_or_else(|| invalid(format!("messages[{i}]: tool_use without 'id'")))?;
                let name = block.name.ok_or_else(|| invalid(format!("messages[{i}]: tool_use without 'name'")))?;
                let arguments = block.input.map_or("{}", RawValue::get);
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
    description: Option<Str<'a>>,
    #[serde(borrow, default)]
    input_schema: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct OutTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: OutFunction<'a>,
}

#[derive(Serialize)]
struct OutFunction<'a> {
    name: Str<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Str<'a>>,
    parameters: &'a RawValue,
}

fn convert_tool(tool: InTool<'_>) -> Result<OutTool<'_>, TranslateError> {
    if let Some(kind) = tool.kind.as_deref().filter(|k| *k != "custom") {
        return Err(unsupported(format!("tools: server tool type '{kind}' is not supported for OpenAI-format models")));
    }
    let name = tool.name.ok_or_else(|| invalid("tools: tool without 'name'"))?;
    let parameters = tool.input_schema.ok_or_else(|| invalid(format!("tools: '{name}' has no 'input_schema'")))?;
    Ok(OutTool { kind: "function", function: OutFunction { name, description: tool.description, parameters } })
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

#[derive(Serialize)]
struct NamedChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: NamedFunction<'a>,
}

#[derive(Serialize)]
struct NamedFunction<'a> {
    name: Str<'a>,
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
}

#[derive(Deserialize)]
struct InFormat<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchema<'a>,
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'static str,
    schema: &'a RawValue,
}
