//! OpenAI Responses request → Chat Completions request (Gemini, through its
//! OpenAI-compatible endpoint). What is read, accepted and refused is in
//! [`super::responses_request`]; this writes it:
//!
//! | Responses | Chat Completions |
//! |---|---|
//! | instructions | one leading `system` message (joined by a blank line) |
//! | user messages | `user` messages: a string for one text part, else `text`, `image_url`, `file` parts |
//! | assistant messages, `function_call` / `custom_tool_call` items | `assistant` messages: text as `content`, calls as `tool_calls` (consecutive items are one message) |
//! | `function_call_output` / `custom_tool_call_output` | `tool` messages (text parts joined; images and files go to a `user` message after them) |
//! | `reasoning` items | dropped: the Chat format cannot carry them back |
//! | `tools`, `tool_choice`, `parallel_tool_calls` | same, in Chat's nesting |
//! | `reasoning.effort` | `reasoning_effort` for models that reason ([`super::target`]) |
//! | `max_output_tokens` | `max_completion_tokens`, clamped to the model's maximum |
//! | `text.format` `json_schema` / `json_object` | `response_format` |
//! | `temperature`, `top_p`, `safety_identifier` / `user`, `stream` | same (`user`), plus `stream_options.include_usage` |

use std::borrow::Cow;

use super::chat_out::{
    self, OutChoice, OutFile, OutFormat, OutFunction, OutFunctionCall, OutMessage, OutPart, OutTool, OutToolCall,
    OutUrl,
};
use super::common::{invalid, parse_fields, unsupported};
use super::responses_out::ResponsesContext;
use super::responses_request::{self, Entry, Format, Part, Role, ToolChoice};
use super::target::Target;
use super::TranslateError;
use crate::request::Fields;

/// Translates a Responses body into a Chat Completions body for `target`.
pub fn responses_request_to_chat(body: &[u8], target: &Target) -> Result<Vec<u8>, TranslateError> {
    responses_request_to_chat_lexed(&parse_fields(body)?, body.len(), target).map(|(body, _)| body)
}

/// [`responses_request_to_chat`] of a body already lexed into its members ([`crate::request::parse`]),
/// with the context its translated answer needs.
pub fn responses_request_to_chat_lexed(
    fields: &Fields,
    body_len: usize,
    target: &Target,
) -> Result<(Vec<u8>, ResponsesContext), TranslateError> {
    let (req, shapes) = responses_request::read(fields, target)?;
    let context = ResponsesContext::new(fields, shapes);
    let mut messages: Vec<OutMessage> = Vec::new();
    if !req.instructions.is_empty() {
        let text = match req.instructions.len() {
            1 => req.instructions.into_iter().next().unwrap_or_default(),
            _ => Cow::Owned(req.instructions.join("\n\n")),
        };
        messages.push(OutMessage::text("system", text));
    }
    // Images and files a tool returned, for the user message after the tool messages.
    let mut pending: Vec<OutPart> = Vec::new();
    for (i, entry) in req.entries.into_iter().enumerate() {
        let at = format!("input[{i}]");
        if !matches!(entry, Entry::Output { .. }) && !pending.is_empty() {
            messages.push(OutMessage::parts("user", std::mem::take(&mut pending)));
        }
        match entry {
            Entry::Message { role: Role::User, parts } => {
                let parts = parts.into_iter().map(|p| part(p, &at)).collect::<Result<Vec<_>, _>>()?;
                messages.push(OutMessage::parts("user", parts));
            }
            Entry::Message { role: Role::Assistant, parts } => {
                let mut texts = Vec::new();
                for p in parts {
                    match p {
                        Part::Text(t) => texts.push(t),
                        _ => return Err(invalid(format!("{at}: assistant messages take text only"))),
                    }
                }
                let text = match texts.len() {
                    1 => texts.into_iter().next().unwrap_or_default(),
                    _ => Cow::Owned(texts.concat()),
                };
                messages.push(OutMessage::text("assistant", text));
            }
            Entry::Call { call_id, name, arguments } => {
                let call = OutToolCall { id: call_id, kind: "function", function: OutFunctionCall { name, arguments } };
                match messages.last_mut() {
                    Some(last) if last.role == "assistant" => last.tool_calls.push(call),
                    _ => messages.push(OutMessage {
                        role: "assistant",
                        content: None,
                        tool_calls: vec![call],
                        tool_call_id: None,
                    }),
                }
            }
            Entry::Output { call_id, parts } => {
                let mut texts = Vec::new();
                for p in parts {
                    match p {
                        Part::Text(t) => texts.push(t),
                        other => pending.push(part(other, &at)?),
                    }
                }
                let text = match texts.len() {
                    1 => texts.into_iter().next().unwrap_or_default(),
                    _ => Cow::Owned(texts.join("\n")),
                };
                messages.push(OutMessage::tool_result(call_id, text));
            }
            Entry::Reasoning { .. } => {}
        }
    }
    if !pending.is_empty() {
        messages.push(OutMessage::parts("user", pending));
    }
    let tools: Vec<OutTool> = req
        .tools
        .into_iter()
        .map(|t| OutTool {
            kind: "function",
            function: OutFunction { name: t.name, description: t.description, parameters: Cow::Borrowed(t.parameters) },
        })
        .collect();
    let tool_choice = match req.tool_choice {
        ToolChoice::Unset => None,
        ToolChoice::Auto => Some(OutChoice::Auto),
        ToolChoice::Required => Some(OutChoice::Required),
        ToolChoice::None => Some(OutChoice::None),
        ToolChoice::Named(name) => Some(OutChoice::Named(name)),
    };
    let format = match req.format {
        None => None,
        Some(Format::JsonSchema { name, schema, strict }) => {
            Some(OutFormat::JsonSchema { name: name.unwrap_or(Cow::Borrowed("output")), schema, strict })
        }
        Some(Format::JsonObject) => Some(OutFormat::JsonObject),
    };
    let settings = chat_out::Settings {
        max_tokens: req.max_output_tokens,
        tools,
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls,
        stop: None,
        temperature: req.temperature,
        top_p: req.top_p,
        user: req.user,
        format,
        effort: req.effort,
        stream: req.stream,
    };
    chat_out::write(target, body_len, &messages, settings).map(|body| (body, context))
}

fn part<'a>(p: Part<'a>, at: &str) -> Result<OutPart<'a>, TranslateError> {
    Ok(match p {
        Part::Text(text) => OutPart::Text { text },
        Part::Image(url) => OutPart::ImageUrl { image_url: OutUrl { url } },
        Part::File { data: Some(data), filename, .. } => {
            OutPart::File { file: OutFile { filename: filename.unwrap_or(Cow::Borrowed("document")), file_data: data } }
        }
        Part::File { .. } => {
            return Err(unsupported(format!("{at}: files by 'file_url' are not supported here; send 'file_data'")))
        }
    })
}
