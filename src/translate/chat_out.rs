//! The Chat Completions request both translators into OpenAI's format write
//! ([`super::messages_to_chat`] for OpenAI and Gemini, [`super::responses_to_chat`]
//! for Gemini): messages, tools, tool choice, and the last members (output
//! limit, reasoning effort, output format, streaming with usage).

use serde::Serialize;
use serde_json::value::RawValue;

use super::common::{ObjectWriter, Str};
use super::target::{chat_reasoning_effort, Effort, Target};
use super::TranslateError;

#[derive(Serialize)]
pub(super) struct OutMessage<'a> {
    pub role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<OutContent<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<OutToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<Str<'a>>,
}

impl<'a> OutMessage<'a> {
    pub(super) fn text(role: &'static str, text: Str<'a>) -> Self {
        OutMessage { role, content: Some(OutContent::Text(text)), tool_calls: Vec::new(), tool_call_id: None }
    }

    /// A message of parts; one text part is sent as a string.
    pub(super) fn parts(role: &'static str, parts: Vec<OutPart<'a>>) -> Self {
        let content = match <[OutPart; 1]>::try_from(parts) {
            Ok([OutPart::Text { text }]) => OutContent::Text(text),
            Ok([part]) => OutContent::Parts(vec![part]),
            Err(parts) => OutContent::Parts(parts),
        };
        OutMessage { role, content: Some(content), tool_calls: Vec::new(), tool_call_id: None }
    }

    pub(super) fn tool_result(tool_call_id: Str<'a>, text: Str<'a>) -> Self {
        OutMessage {
            role: "tool",
            content: Some(OutContent::Text(text)),
            tool_calls: Vec::new(),
            tool_call_id: Some(tool_call_id),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum OutContent<'a> {
    Text(Str<'a>),
    Parts(Vec<OutPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum OutPart<'a> {
    Text { text: Str<'a> },
    ImageUrl { image_url: OutUrl<'a> },
    File { file: OutFile<'a> },
}

#[derive(Serialize)]
pub(super) struct OutUrl<'a> {
    pub url: Str<'a>,
}

#[derive(Serialize)]
pub(super) struct OutFile<'a> {
    pub filename: Str<'a>,
    pub file_data: Str<'a>,
}

#[derive(Serialize)]
pub(super) struct OutToolCall<'a> {
    pub id: Str<'a>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: OutFunctionCall<'a>,
}

#[derive(Serialize)]
pub(super) struct OutFunctionCall<'a> {
    pub name: Str<'a>,
    pub arguments: Str<'a>,
}

#[derive(Serialize)]
pub(super) struct OutTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: OutFunction<'a>,
}

#[derive(Serialize)]
pub(super) struct OutFunction<'a> {
    pub name: Str<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Str<'a>>,
    pub parameters: &'a RawValue,
}

/// `tool_choice`.
pub(super) enum OutChoice<'a> {
    Auto,
    Required,
    None,
    Named(Str<'a>),
}

#[derive(Serialize)]
struct NamedChoice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: NamedFunction<'a>,
}

#[derive(Serialize)]
struct NamedFunction<'a> {
    name: &'a str,
}

/// `response_format`.
pub(super) enum OutFormat<'a> {
    /// Not `strict` unless the client said so: OpenAI's strict mode rejects
    /// schemas with optional properties.
    JsonSchema {
        name: Str<'a>,
        schema: &'a RawValue,
        strict: Option<bool>,
    },
    JsonObject,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: JsonSchema<'a>,
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'a str,
    schema: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

/// What follows `messages` in a translated Chat request.
pub(super) struct Settings<'a> {
    pub max_tokens: Option<u64>,
    pub tools: Vec<OutTool<'a>>,
    pub tool_choice: Option<OutChoice<'a>>,
    pub parallel_tool_calls: Option<bool>,
    pub stop: Option<Vec<Str<'a>>>,
    pub temperature: Option<&'a RawValue>,
    pub top_p: Option<&'a RawValue>,
    pub user: Option<Str<'a>>,
    pub format: Option<OutFormat<'a>>,
    pub effort: Option<Effort>,
    pub stream: bool,
}

/// Writes a whole Chat request for `target`.
pub(super) fn write(
    target: &Target,
    capacity: usize,
    messages: &[OutMessage],
    s: Settings,
) -> Result<Vec<u8>, TranslateError> {
    let mut out = ObjectWriter::with_capacity(capacity + 256);
    out.value("model", target.model);
    out.value("messages", messages);
    if let Some(n) = s.max_tokens {
        // The current field: `max_tokens` is deprecated and refused by o-series models.
        out.value("max_completion_tokens", &target.clamp_output(n));
    }
    if !s.tools.is_empty() {
        out.value("tools", &s.tools);
        match &s.tool_choice {
            Some(OutChoice::Auto) => out.value("tool_choice", "auto"),
            Some(OutChoice::Required) => out.value("tool_choice", "required"),
            Some(OutChoice::None) => out.value("tool_choice", "none"),
            Some(OutChoice::Named(name)) => {
                out.value("tool_choice", &NamedChoice { kind: "function", function: NamedFunction { name } })
            }
            None => {}
        }
        if let Some(parallel) = s.parallel_tool_calls {
            out.value("parallel_tool_calls", &parallel);
        }
    }
    if let Some(stop) = s.stop.as_ref().filter(|s| !s.is_empty()) {
        out.value("stop", stop);
    }
    for (key, raw) in [("temperature", s.temperature), ("top_p", s.top_p)] {
        if let Some(raw) = raw {
            out.raw(key, raw.get());
        }
    }
    if let Some(user) = &s.user {
        out.value("user", user);
    }
    match &s.format {
        Some(OutFormat::JsonSchema { name, schema, strict }) => out.value(
            "response_format",
            &ResponseFormat { kind: "json_schema", json_schema: JsonSchema { name, schema, strict: *strict } },
        ),
        Some(OutFormat::JsonObject) => out.raw("response_format", r#"{"type":"json_object"}"#),
        None => {}
    }
    if let Some(effort) = s.effort.and_then(|e| chat_reasoning_effort(e, target)) {
        out.value("reasoning_effort", effort);
    }
    if s.stream {
        out.value("stream", &true);
        // OpenAI-format streams carry usage only when asked.
        out.raw("stream_options", r#"{"include_usage":true}"#);
    }
    Ok(out.finish())
}
