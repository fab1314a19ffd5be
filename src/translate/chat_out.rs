//! The Chat Completions request both translators into OpenAI's format write
//! ([`super::messages_to_chat`] for OpenAI and Gemini, [`super::responses_to_chat`]
//! for Gemini): messages, tools, tool choice, and the last members (output
//! limit, reasoning effort, output format, streaming with usage). For Gemini
//! the tools' schemas keep only the keywords Gemini takes ([`gemini_schema`])
//! and `user` is left out (its endpoint refuses fields it does not know), and
//! every system message goes into one at the start: Gemini's endpoint keeps only
//! the last system message of a conversation (microsoft/autogen#6117,
//! olimorris/codecompanion.nvim#2530), and Claude Code puts one after the user
//! turns, which would otherwise replace its whole system prompt.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::common::{ObjectWriter, RawStr, Str};
use super::target::{chat_reasoning_effort, Effort, Target};
use super::TranslateError;
use crate::providers::Provider;

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
    pub description: Option<RawStr<'a>>,
    pub parameters: Cow<'a, RawValue>,
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

/// The JSON Schema keywords Gemini's function declarations take (its
/// `Schema`); it refuses requests with any other (`$schema`,
/// `additionalProperties`, `exclusiveMinimum`, `const`, `propertyNames`, …).
const GEMINI_SCHEMA_KEYS: [&str; 22] = [
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// A parameters schema as Gemini takes it: other keywords removed, `const`
/// as a one-value `enum`, a `["T", "null"]` type as `T` and `nullable`.
pub(super) fn gemini_schema(schema: &RawValue) -> Option<Box<RawValue>> {
    fn clean(v: &mut Value) {
        let Value::Object(map) = v else { return };
        if let Some(c) = map.remove("const") {
            map.entry("enum").or_insert_with(|| Value::Array(vec![c]));
        }
        if let Some(Value::Array(types)) = map.get("type") {
            let non_null: Vec<Value> = types.iter().filter(|t| t.as_str() != Some("null")).cloned().collect();
            let nullable = non_null.len() < types.len();
            if let [one] = non_null.as_slice() {
                let one = one.clone();
                map.insert("type".into(), one);
                if nullable {
                    map.insert("nullable".into(), Value::Bool(true));
                }
            }
        }
        map.retain(|k, _| GEMINI_SCHEMA_KEYS.contains(&k.as_str()));
        if let Some(Value::Object(props)) = map.get_mut("properties") {
            props.values_mut().for_each(clean);
        }
        match map.get_mut("items") {
            Some(Value::Array(items)) => items.iter_mut().for_each(clean),
            Some(items) => clean(items),
            None => {}
        }
        if let Some(Value::Array(any)) = map.get_mut("anyOf") {
            any.iter_mut().for_each(clean);
        }
    }
    let mut value: Value = serde_json::from_str(schema.get()).ok()?;
    if !value.is_object() {
        value = Value::Object(Map::new());
    }
    clean(&mut value);
    serde_json::value::to_raw_value(&value).ok()
}

/// A message as written: one built here, or one of the translator's.
#[derive(Serialize)]
#[serde(untagged)]
enum Written<'m, 'a> {
    Own(OutMessage<'a>),
    Theirs(&'m OutMessage<'a>),
}

/// The messages with every system message's text joined into one at the start, in order.
fn system_first<'m, 'a>(messages: &'m [OutMessage<'a>]) -> Vec<Written<'m, 'a>> {
    let mut texts: Vec<&str> = Vec::new();
    for m in messages.iter().filter(|m| m.role == "system") {
        match &m.content {
            Some(OutContent::Text(t)) => texts.push(t),
            Some(OutContent::Parts(parts)) => texts.extend(parts.iter().filter_map(|p| match p {
                OutPart::Text { text } => Some(text.as_ref()),
                _ => None,
            })),
            None => {}
        }
    }
    let system = OutMessage::text("system", Cow::Owned(texts.join("\n\n")));
    std::iter::once(Written::Own(system))
        .chain(messages.iter().filter(|m| m.role != "system").map(Written::Theirs))
        .collect()
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
    if target.provider == Provider::Gemini && messages.iter().filter(|m| m.role == "system").count() > 1 {
        out.value("messages", &system_first(messages));
    } else {
        out.value("messages", messages);
    }
    if let Some(n) = s.max_tokens {
        // The current field: `max_tokens` is deprecated and refused by o-series models.
        out.value("max_completion_tokens", &target.clamp_output(n));
    }
    let mut tools = s.tools;
    if target.provider == Provider::Gemini {
        for tool in &mut tools {
            if let Some(clean) = gemini_schema(&tool.function.parameters) {
                tool.function.parameters = Cow::Owned(clean);
            }
        }
    }
    if !tools.is_empty() {
        out.value("tools", &tools);
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
    // Gemini's endpoint refuses fields it does not know; the gateway attributes the user itself.
    if let Some(user) = s.user.as_ref().filter(|_| target.provider != Provider::Gemini) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_schemas_keep_what_gemini_takes() {
        let schema: Box<RawValue> = serde_json::from_str(
            r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","additionalProperties":false,
            "properties":{"n":{"type":"integer","exclusiveMinimum":0,"description":"count"},
                          "mode":{"const":"fast"},"tags":{"type":"array","items":{"type":["string","null"],"propertyNames":{}}}},
            "required":["n"]}"#,
        )
        .unwrap();
        let clean: Value = serde_json::from_str(gemini_schema(&schema).unwrap().get()).unwrap();
        assert_eq!(
            clean,
            serde_json::json!({"type": "object", "required": ["n"], "properties": {
                "n": {"type": "integer", "description": "count"},
                "mode": {"enum": ["fast"]},
                "tags": {"type": "array", "items": {"type": "string", "nullable": true}}}})
        );
    }
}
