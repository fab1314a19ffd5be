//! Reads an OpenAI Responses request into the conversation and settings both
//! request writers take ([`super::responses_to_messages`] for Anthropic and
//! Bedrock, [`super::responses_to_chat`] for Gemini), and refuses what no
//! provider behind a translation can do.
//!
//! | Responses | read as |
//! |---|---|
//! | `input` string | one user message |
//! | `message` items (also without `type`), roles `user`, `assistant`, `system`, `developer` | messages; `system` and `developer` are instructions |
//! | parts `input_text`, `output_text`, `refusal` / `input_image` (URL or data URL) / `input_file` (`file_data`, `file_url`) | text / image / file |
//! | `function_call`, `custom_tool_call` | a tool call (a custom tool's `input` as `{"input": …}`) |
//! | `function_call_output`, `custom_tool_call_output` (string or parts) | a tool result |
//! | `reasoning` | the summary text and `encrypted_content` (kept only by Anthropic) |
//! | `instructions` | instructions, before any in `input` |
//! | `tools` `function` / `custom` / `namespace` | tools; a custom (freeform) tool is a function taking one string `input` (its grammar `format` is not enforced); a namespace's tools are functions named `<namespace>__<name>`, and their calls come back naming the namespace |
//! | `tools` `web_search`, `web_search_preview`, `tool_search` (Codex sends them on every request) | dropped: the model answers without searching |
//! | `tool_choice` `auto` / `none` / `required` / `{type: function or custom, name}`, `parallel_tool_calls` | tool choice |
//! | `reasoning.effort`, `reasoning.summary` | effort, and whether to return the thinking text |
//! | `max_output_tokens`, `temperature`, `top_p`, `text.format`, `stream` | same |
//! | `safety_identifier`, else `user` | the end user |
//!
//! Accepted and dropped, as no provider behind a translation has them or they
//! do not change the answer: `store: false` (and an absent `store`, whose
//! default `true` only keeps the response for later retrieval), `include`,
//! `metadata`, `prompt_cache_key`, `prompt_cache_retention`, `service_tier`,
//! `truncation`, `max_tool_calls`, `text.verbosity`, `stream_options`,
//! `background: false`, `top_logprobs: 0`, `reasoning.generate_summary`,
//! tool `strict`, image `detail`.
//!
//! Refused with a 400 naming the field ([`TranslateError::Unsupported`]):
//! the gateway is stateless, so `previous_response_id`, `conversation`,
//! `store: true`, `background: true`, `prompt` (a stored template) and
//! `item_reference` items; hosted and built-in tools other than web search
//! (`file_search`, `code_interpreter`, `computer_use_preview`,
//! `image_generation`, `mcp`, `local_shell`, `shell`, `apply_patch`, …) and
//! their call items, `allowed_tools` and hosted tool choices; `top_logprobs`;
//! `input_audio` parts; images and files by `file_id`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::common::{constant, decode, decode_str, field, invalid, unsupported, RawStr, Str, EMPTY_TOOL_SCHEMA};
use super::target::{Effort, Target};
use super::TranslateError;
use crate::request::Fields;

/// The schema a custom (freeform) tool gets as a function: one string, `input`.
pub(super) const CUSTOM_TOOL_SCHEMA: &str = r#"{"type":"object","properties":{"input":{"type":"string","description":"The tool's input, as free text."}},"required":["input"]}"#;

/// A whole Responses request, borrowed from the body where it can be.
pub(super) struct Request<'a> {
    /// `instructions`, then `system` and `developer` messages, in order.
    pub instructions: Vec<Str<'a>>,
    pub entries: Vec<Entry<'a>>,
    pub tools: Vec<Tool<'a>>,
    pub tool_choice: ToolChoice<'a>,
    pub parallel_tool_calls: Option<bool>,
    pub effort: Option<Effort>,
    /// `reasoning.summary` asked for the reasoning text.
    pub summary: bool,
    pub max_output_tokens: Option<u64>,
    pub format: Option<Format<'a>>,
    pub temperature: Option<&'a RawValue>,
    pub top_p: Option<&'a RawValue>,
    pub user: Option<Str<'a>>,
    pub stream: bool,
}

/// One conversation entry, in input order.
pub(super) enum Entry<'a> {
    Message {
        role: Role,
        parts: Vec<Part<'a>>,
    },
    /// A tool call the model made; `arguments` is JSON text (an object).
    Call {
        call_id: Str<'a>,
        name: Str<'a>,
        arguments: Str<'a>,
    },
    /// A tool's result.
    Output {
        call_id: Str<'a>,
        parts: Vec<Part<'a>>,
    },
    /// Reasoning from an earlier turn.
    Reasoning {
        text: String,
        encrypted: Option<Str<'a>>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    User,
    Assistant,
}

pub(super) enum Part<'a> {
    Text(Str<'a>),
    /// An http(s) or data URL.
    Image(Str<'a>),
    /// A document: a data URL (`file_data`) or a URL (`file_url`).
    File {
        data: Option<Str<'a>>,
        url: Option<Str<'a>>,
        filename: Option<Str<'a>>,
    },
}

pub(super) struct Tool<'a> {
    pub name: Str<'a>,
    pub description: Option<RawStr<'a>>,
    /// The JSON Schema of the arguments, as lexed from the body (or a constant).
    pub parameters: &'a RawValue,
}

pub(super) enum ToolChoice<'a> {
    Unset,
    Auto,
    None,
    Required,
    Named(Str<'a>),
}

pub(super) enum Format<'a> {
    JsonSchema { name: Option<Str<'a>>, schema: &'a RawValue, strict: Option<bool> },
    JsonObject,
}

/// The tools whose calls go back in another shape than a plain function call:
/// custom tools (as `custom_tool_call` items) and namespaced functions
/// (`(flat name, namespace, name)`, as calls naming their namespace).
#[derive(Default)]
pub(super) struct ToolShapes {
    pub custom: Vec<String>,
    pub namespaced: Vec<(String, String, String)>,
}

/// Parses a Responses body, and the tool shapes its answer needs
/// ([`super::ResponsesContext`]); `target` names the provider in refusals.
pub(super) fn read<'a>(fields: &Fields<'a>, target: &Target) -> Result<(Request<'a>, ToolShapes), TranslateError> {
    refuse_state(fields, target)?;
    let mut instructions = Vec::new();
    if let Some(raw) = fields.get("instructions").filter(|r| r.get() != "null") {
        instructions.extend(instruction_text(raw, target)?);
    }
    let mut entries = Vec::new();
    match fields.get("input").filter(|r| r.get() != "null") {
        None => return Err(invalid("Missing required parameter: 'input'")),
        Some(raw) if raw.get().starts_with('"') => {
            entries.push(Entry::Message { role: Role::User, parts: vec![Part::Text(decode_str(raw, "input")?)] })
        }
        Some(raw) => {
            let items: Vec<InItem> = decode(raw, "input")?;
            for (i, item) in items.into_iter().enumerate() {
                read_item(item, i, target, &mut instructions, &mut entries)?;
            }
        }
    }
    let in_tools: Vec<InTool> = field(fields, "tools")?.unwrap_or_default();
    let mut tools = Vec::with_capacity(in_tools.len());
    let mut shapes = ToolShapes::default();
    for tool in in_tools {
        read_tool(tool, None, target, &mut tools, &mut shapes)?;
    }
    let reasoning: Option<InReasoning> = field(fields, "reasoning")?;
    let (effort, summary) = match reasoning {
        Some(r) => {
            let effort = match r.effort {
                Some(e) => {
                    Some(Effort::parse(&e).ok_or_else(|| invalid(format!("Invalid 'reasoning.effort': '{e}'")))?)
                }
                None => None,
            };
            (effort, r.summary.is_some_and(|s| s != "none"))
        }
        None => (None, false),
    };
    let text: Option<InText> = field(fields, "text")?;
    let format = match text.and_then(|t| t.format) {
        None => None,
        Some(f) => match f.kind.as_ref() {
            "text" => None,
            "json_schema" => {
                let schema = f.schema.ok_or_else(|| invalid("text.format json_schema needs 'schema'"))?;
                Some(Format::JsonSchema { name: f.name, schema, strict: f.strict })
            }
            "json_object" => Some(Format::JsonObject),
            other => return Err(invalid(format!("Invalid 'text.format.type': '{other}'"))),
        },
    };
    let user = match field::<Str>(fields, "safety_identifier")? {
        Some(u) => Some(u),
        None => field::<Str>(fields, "user")?,
    };
    let request = Request {
        instructions,
        entries,
        tools,
        tool_choice: read_tool_choice(fields.get("tool_choice"), target)?,
        parallel_tool_calls: field(fields, "parallel_tool_calls")?,
        effort,
        summary,
        max_output_tokens: field(fields, "max_output_tokens")?,
        format,
        temperature: fields.get("temperature").filter(|r| r.get() != "null"),
        top_p: fields.get("top_p").filter(|r| r.get() != "null"),
        user,
        stream: field::<bool>(fields, "stream")?.unwrap_or(false),
    };
    Ok((request, shapes))
}

/// What a stateless gateway cannot do.
fn refuse_state(fields: &Fields, target: &Target) -> Result<(), TranslateError> {
    let stateless = |what: &str| {
        unsupported(format!(
            "{what} is not supported for {} models: the gateway keeps no state; send the whole conversation in \
             'input' (and 'store': false)",
            target.name()
        ))
    };
    let set = |key: &str| fields.get(key).is_some_and(|r| r.get() != "null");
    if set("previous_response_id") {
        return Err(stateless("'previous_response_id'"));
    }
    if set("conversation") {
        return Err(stateless("'conversation'"));
    }
    if field::<bool>(fields, "store")? == Some(true) {
        return Err(stateless("'store': true"));
    }
    if field::<bool>(fields, "background")? == Some(true) {
        return Err(stateless("'background': true"));
    }
    if set("prompt") {
        return Err(stateless("'prompt' (a stored prompt template)"));
    }
    if field::<u64>(fields, "top_logprobs")?.is_some_and(|n| n > 0) {
        return Err(unsupported(format!("'top_logprobs' is not supported for {} models", target.name())));
    }
    Ok(())
}

#[derive(Deserialize)]
struct InItem<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    role: Option<Str<'a>>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    call_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    namespace: Option<Str<'a>>,
    #[serde(borrow, default)]
    arguments: Option<Str<'a>>,
    #[serde(borrow, default)]
    input: Option<Str<'a>>,
    #[serde(borrow, default)]
    output: Option<&'a RawValue>,
    #[serde(borrow, default)]
    summary: Option<Vec<InSummary<'a>>>,
    #[serde(borrow, default)]
    encrypted_content: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct InSummary<'a> {
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct InPart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Str<'a>>,
    #[serde(borrow, default)]
    image_url: Option<Str<'a>>,
    #[serde(borrow, default)]
    file_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    file_data: Option<Str<'a>>,
    #[serde(borrow, default)]
    file_url: Option<Str<'a>>,
    #[serde(borrow, default)]
    filename: Option<Str<'a>>,
}

fn read_item<'a>(
    item: InItem<'a>,
    i: usize,
    target: &Target,
    instructions: &mut Vec<Str<'a>>,
    entries: &mut Vec<Entry<'a>>,
) -> Result<(), TranslateError> {
    let kind = item.kind.as_deref().unwrap_or("message");
    match kind {
        "message" => {
            let role = item.role.ok_or_else(|| invalid(format!("input[{i}]: message without 'role'")))?;
            let content = item.content.ok_or_else(|| invalid(format!("input[{i}]: message without 'content'")))?;
            let parts = parts(content, i, target)?;
            match role.as_ref() {
                "system" | "developer" => {
                    for part in parts {
                        match part {
                            Part::Text(text) => instructions.push(text),
                            _ => return Err(invalid(format!("input[{i}]: {role} messages take text only"))),
                        }
                    }
                }
                "user" => entries.push(Entry::Message { role: Role::User, parts }),
                "assistant" => entries.push(Entry::Message { role: Role::Assistant, parts }),
                other => return Err(invalid(format!("input[{i}]: unknown role '{other}'"))),
            }
        }
        "function_call" | "custom_tool_call" => {
            let call_id = item.call_id.ok_or_else(|| invalid(format!("input[{i}]: {kind} without 'call_id'")))?;
            let name = item.name.ok_or_else(|| invalid(format!("input[{i}]: {kind} without 'name'")))?;
            let name = match item.namespace.filter(|ns| !ns.is_empty()) {
                Some(ns) => Cow::Owned(flat_name(&ns, &name)),
                None => name,
            };
            let arguments = if kind == "custom_tool_call" {
                let input = item.input.unwrap_or_default();
                Cow::Owned(serde_json::json!({ "input": input }).to_string())
            } else {
                item.arguments.unwrap_or_default()
            };
            entries.push(Entry::Call { call_id, name, arguments });
        }
        "function_call_output" | "custom_tool_call_output" => {
            let call_id = item.call_id.ok_or_else(|| invalid(format!("input[{i}]: {kind} without 'call_id'")))?;
            let parts = match item.output.filter(|r| r.get() != "null") {
                None => Vec::new(),
                Some(raw) => parts(raw, i, target)?,
            };
            entries.push(Entry::Output { call_id, parts });
        }
        "reasoning" => {
            let texts: Vec<Str> = item.summary.unwrap_or_default().into_iter().filter_map(|s| s.text).collect();
            entries.push(Entry::Reasoning { text: texts.join("\n\n"), encrypted: item.encrypted_content });
        }
        "item_reference" => {
            return Err(unsupported(format!(
                "input[{i}]: 'item_reference' items are not supported for {} models: the gateway keeps no state; \
                 send the items themselves",
                target.name()
            )))
        }
        other => {
            return Err(unsupported(format!(
                "input[{i}]: '{other}' items are not supported for {} models (the gateway translates messages, \
                 function and custom tool calls, their outputs, and reasoning)",
                target.name()
            )))
        }
    }
    Ok(())
}

/// Content: a string, or an array of parts.
fn parts<'a>(raw: &'a RawValue, i: usize, target: &Target) -> Result<Vec<Part<'a>>, TranslateError> {
    if raw.get().starts_with('"') {
        return Ok(vec![Part::Text(decode_str(raw, "content")?)]);
    }
    let parts: Vec<InPart> = decode(raw, format_args!("input[{i}].content"))?;
    parts.into_iter().map(|p| part(p, i, target)).collect()
}

fn part<'a>(p: InPart<'a>, i: usize, target: &Target) -> Result<Part<'a>, TranslateError> {
    let by_id = |what: &str| {
        unsupported(format!(
            "input[{i}]: {what} by 'file_id' is not supported for {} models; send it inline",
            target.name()
        ))
    };
    match p.kind.as_ref() {
        "input_text" | "output_text" | "text" | "summary_text" | "reasoning_text" => {
            Ok(Part::Text(p.text.ok_or_else(|| invalid(format!("input[{i}]: {} part without 'text'", p.kind)))?))
        }
        "refusal" => Ok(Part::Text(p.refusal.unwrap_or_default())),
        "input_image" => match (p.image_url, p.file_id) {
            (Some(url), _) => Ok(Part::Image(url)),
            (None, Some(_)) => Err(by_id("an image")),
            (None, None) => Err(invalid(format!("input[{i}]: input_image without 'image_url'"))),
        },
        "input_file" => {
            if p.file_data.is_none() && p.file_url.is_none() {
                return Err(match p.file_id {
                    Some(_) => by_id("a file"),
                    None => invalid(format!("input[{i}]: input_file without 'file_data' or 'file_url'")),
                });
            }
            Ok(Part::File { data: p.file_data, url: p.file_url, filename: p.filename })
        }
        "input_audio" => {
            Err(unsupported(format!("input[{i}]: audio input is not supported for {} models", target.name())))
        }
        other => Err(unsupported(format!(
            "input[{i}]: content part type '{other}' is not supported for {} models",
            target.name()
        ))),
    }
}

fn instruction_text<'a>(raw: &'a RawValue, target: &Target) -> Result<Vec<Str<'a>>, TranslateError> {
    if raw.get().starts_with('"') {
        return Ok(vec![decode_str(raw, "instructions")?]);
    }
    // Instructions may be input items too.
    let items: Vec<InItem> = decode(raw, "instructions")?;
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let content = item.content.ok_or_else(|| invalid(format!("instructions[{i}] without 'content'")))?;
        for p in parts(content, i, target)? {
            match p {
                Part::Text(t) => out.push(t),
                _ => return Err(invalid(format!("instructions[{i}]: text only"))),
            }
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
struct InTool<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    description: Option<RawStr<'a>>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    /// A namespace's tools.
    #[serde(borrow, default)]
    tools: Option<Vec<InTool<'a>>>,
}

/// Hosted tools Codex always sends: without them the model answers from what it knows.
const DROPPED_TOOLS: [&str; 3] = ["web_search", "web_search_preview", "tool_search"];

/// Adds a tool, or a namespace's tools under flattened names.
fn read_tool<'a>(
    tool: InTool<'a>,
    namespace: Option<&str>,
    target: &Target,
    out: &mut Vec<Tool<'a>>,
    shapes: &mut ToolShapes,
) -> Result<(), TranslateError> {
    let parameters = match tool.kind.as_ref() {
        "function" => match tool.parameters.filter(|p| p.get() != "null") {
            Some(p) => p,
            // A function without parameters takes none; Anthropic requires a schema.
            None => constant(EMPTY_TOOL_SCHEMA)?,
        },
        "custom" => constant(CUSTOM_TOOL_SCHEMA)?,
        "namespace" if namespace.is_none() => {
            let name = tool.name.ok_or_else(|| invalid("tools: namespace without 'name'"))?;
            for inner in tool.tools.unwrap_or_default() {
                read_tool(inner, Some(&name), target, out, shapes)?;
            }
            return Ok(());
        }
        kind if DROPPED_TOOLS.contains(&kind) => return Ok(()),
        other => {
            return Err(unsupported(format!(
                "tools: type '{other}' is not supported for {} models (function, custom and namespace tools are)",
                target.name()
            )))
        }
    };
    let name = tool.name.ok_or_else(|| invalid(format!("tools: {} tool without 'name'", tool.kind)))?;
    let name = match namespace {
        Some(ns) => {
            let flat = flat_name(ns, &name);
            shapes.namespaced.push((flat.clone(), ns.to_owned(), name.into_owned()));
            Cow::Owned(flat)
        }
        None => name,
    };
    if tool.kind == "custom" {
        shapes.custom.push(name.to_string());
    }
    out.push(Tool { name, description: tool.description, parameters });
    Ok(())
}

/// A namespaced tool's name for providers without namespaces (`ns__name`, legal for Anthropic).
pub(super) fn flat_name(namespace: &str, name: &str) -> String {
    format!("{namespace}__{name}")
}

#[derive(Deserialize)]
struct InToolChoice<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
}

fn read_tool_choice<'a>(raw: Option<&'a RawValue>, target: &Target) -> Result<ToolChoice<'a>, TranslateError> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(ToolChoice::Unset);
    };
    if raw.get().starts_with('"') {
        return match decode_str(raw, "tool_choice")?.as_ref() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(invalid(format!("Invalid 'tool_choice': '{other}'"))),
        };
    }
    let choice: InToolChoice = decode(raw, "tool_choice")?;
    match choice.kind.as_ref() {
        "function" | "custom" => Ok(ToolChoice::Named(
            choice.name.ok_or_else(|| invalid(format!("tool_choice of type '{}' needs 'name'", choice.kind)))?,
        )),
        other => Err(unsupported(format!("tool_choice type '{other}' is not supported for {} models", target.name()))),
    }
}

#[derive(Deserialize)]
struct InReasoning<'a> {
    #[serde(borrow, default)]
    effort: Option<Str<'a>>,
    #[serde(borrow, default)]
    summary: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct InText<'a> {
    #[serde(borrow, default)]
    format: Option<InFormat<'a>>,
}

#[derive(Deserialize)]
struct InFormat<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
    #[serde(default)]
    strict: Option<bool>,
}
