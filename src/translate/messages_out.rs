//! The Anthropic Messages request both OpenAI-format request translators
//! write ([`super::chat_to_messages`], [`super::responses_to_messages`]):
//! content blocks, turns that alternate roles, tools, tool choice, and the
//! last members (output limit, reasoning, output format).

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;

use super::common::{invalid, parse_base64_data_url, unsupported, ObjectWriter, RawStr, Str};
use super::target::{anthropic_reasoning, sampling_blocks_thinking, Effort, Target, ThinkingBlockers};
use super::TranslateError;

/// An Anthropic content block.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block<'a> {
    Text {
        text: Str<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    Image {
        source: Source<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    Document {
        source: Source<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<&'a RawValue>,
    },
    ToolUse {
        id: Str<'a>,
        name: Str<'a>,
        input: Cow<'a, RawValue>,
    },
    ToolResult {
        tool_use_id: Str<'a>,
        content: Content<'a>,
    },
    Thinking {
        thinking: Str<'a>,
        signature: Str<'a>,
    },
    RedactedThinking {
        data: Str<'a>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Source<'a> {
    Base64 { media_type: Str<'a>, data: Str<'a> },
    Url { url: Str<'a> },
}

/// Turn content: a string, or blocks once there is anything but one string.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Content<'a> {
    Text(Str<'a>),
    Blocks(Vec<Block<'a>>),
}

impl<'a> Content<'a> {
    pub(super) fn into_blocks(self) -> Vec<Block<'a>> {
        match self {
            Content::Text(text) => vec![Block::Text { text, cache_control: None }],
            Content::Blocks(blocks) => blocks,
        }
    }

    /// One uncached text block reads as a string.
    pub(super) fn from_blocks(mut blocks: Vec<Block<'a>>) -> Self {
        match (blocks.len(), blocks.first()) {
            (1, Some(Block::Text { cache_control: None, .. })) => match blocks.pop() {
                Some(Block::Text { text, .. }) => Content::Text(text),
                _ => Content::Blocks(Vec::new()),
            },
            _ => Content::Blocks(blocks),
        }
    }
}

#[derive(Serialize)]
pub(super) struct Turn<'a> {
    pub role: &'static str,
    pub content: Content<'a>,
}

/// Appends a turn, merged into the last one when the role repeats (Anthropic
/// alternates roles). In a user turn, tool results go first, as Anthropic requires.
pub(super) fn push_turn<'a>(turns: &mut Vec<Turn<'a>>, role: &'static str, content: Content<'a>) {
    match turns.last_mut() {
        Some(last) if last.role == role => {
            let previous = std::mem::replace(&mut last.content, Content::Blocks(Vec::new()));
            let mut blocks = previous.into_blocks();
            blocks.extend(content.into_blocks());
            if role == "user" {
                // A stable sort: results first, each group in its order.
                blocks.sort_by_key(|b| !matches!(b, Block::ToolResult { .. }));
            }
            last.content = Content::Blocks(blocks);
        }
        _ => turns.push(Turn { role, content }),
    }
}

/// The last assistant turn calls tools without the thinking block that came
/// before the calls: Anthropic then refuses a request with thinking.
pub(super) fn unsigned_tool_turn(turns: &[Turn]) -> bool {
    let Some(last) = turns.iter().rev().find(|t| t.role == "assistant") else {
        return false;
    };
    let Content::Blocks(blocks) = &last.content else {
        return false;
    };
    blocks.iter().any(|b| matches!(b, Block::ToolUse { .. }))
        && !matches!(blocks.first(), Some(Block::Thinking { .. } | Block::RedactedThinking { .. }))
}

/// An image from an http(s) URL or a base64 data URL.
pub(super) fn image_source<'a>(url: Str<'a>, at: &str) -> Result<Source<'a>, TranslateError> {
    if url.starts_with("data:") {
        return match split_data_url(url) {
            Some((media_type, data)) => Ok(Source::Base64 { media_type, data }),
            None => Err(unsupported(format!("{at}: image data URLs must be base64 for Anthropic models"))),
        };
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Source::Url { url });
    }
    Err(invalid(format!("{at}: an image must be an http(s) or data URL")))
}

/// Splits a base64 data URL, borrowing from the body when the URL did.
pub(super) fn split_data_url(url: Str<'_>) -> Option<(Str<'_>, Str<'_>)> {
    match url {
        Cow::Borrowed(s) => parse_base64_data_url(s).map(|(m, d)| (Cow::Borrowed(m), Cow::Borrowed(d))),
        Cow::Owned(s) => parse_base64_data_url(&s).map(|(m, d)| (Cow::Owned(m.to_owned()), Cow::Owned(d.to_owned()))),
    }
}

/// Tool arguments are a JSON string; Anthropic wants the object itself.
pub(super) fn parse_arguments<'a>(arguments: Option<&str>, at: &str) -> Result<Cow<'a, RawValue>, TranslateError> {
    let text = arguments.unwrap_or_default();
    if text.trim().is_empty() {
        return RawValue::from_string("{}".to_owned()).map(Cow::Owned).map_err(|e| invalid(e.to_string()));
    }
    let raw: Box<RawValue> = serde_json::from_str(text).map_err(|e| {
        invalid(format!("{at}: tool call arguments are not valid JSON ({e}); Anthropic needs a JSON object"))
    })?;
    if !raw.get().starts_with('{') {
        return Err(invalid(format!("{at}: tool call arguments must be a JSON object")));
    }
    Ok(Cow::Owned(raw))
}

#[derive(Serialize)]
pub(super) struct AnthropicTool<'a> {
    pub name: Str<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<RawStr<'a>>,
    pub input_schema: Cow<'a, RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ToolChoice<'a> {
    Auto {
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    Any {
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    Tool {
        name: Str<'a>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    None,
}

impl ToolChoice<'_> {
    /// Anthropic refuses thinking when a tool is forced.
    fn forces_a_tool(&self) -> bool {
        matches!(self, ToolChoice::Any { .. } | ToolChoice::Tool { .. })
    }
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

#[derive(Serialize)]
struct OutputConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<OutputFormat<'a>>,
}

#[derive(Serialize)]
struct OutputFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: &'a RawValue,
}

/// What follows `messages` in a translated Anthropic request.
pub(super) struct Settings<'a> {
    /// The client's limit, if it set one.
    pub max_tokens: Option<u64>,
    pub tools: Vec<AnthropicTool<'a>>,
    pub tool_choice: Option<ToolChoice<'a>>,
    pub effort: Option<Effort>,
    /// Return the thinking text (adaptive thinking's `display`).
    pub summary: bool,
    pub json_schema: Option<&'a RawValue>,
    pub temperature: Option<&'a RawValue>,
    pub top_p: Option<&'a RawValue>,
    pub user: Option<Str<'a>>,
    pub stop_sequences: Option<Vec<Str<'a>>>,
    /// Anthropic's automatic prompt caching (a top-level `cache_control`), as
    /// OpenAI caches without being asked.
    pub auto_cache: bool,
    pub stream: Option<bool>,
}

/// Writes a whole Messages request for `target`.
pub(super) fn write(
    target: &Target,
    capacity: usize,
    system: Option<Content>,
    turns: &[Turn],
    s: Settings,
) -> Result<Vec<u8>, TranslateError> {
    let max_tokens = match s.max_tokens {
        Some(n) => target.clamp_output(n),
        None => target.default_output(),
    };
    let mut out = ObjectWriter::with_capacity(capacity + 256);
    out.value("model", target.model);
    out.value("max_tokens", &max_tokens);
    if let Some(system) = system {
        out.value("system", &system);
    }
    out.value("messages", turns);
    let forced = s.tool_choice.as_ref().is_some_and(ToolChoice::forces_a_tool);
    if !s.tools.is_empty() {
        out.value("tools", &s.tools);
        if let Some(choice) = &s.tool_choice {
            out.value("tool_choice", choice);
        }
    }
    if let Some(stop) = s.stop_sequences.as_ref().filter(|s| !s.is_empty()) {
        out.value("stop_sequences", stop);
    }
    for (key, raw) in [("temperature", s.temperature), ("top_p", s.top_p)] {
        if let Some(raw) = raw {
            out.raw(key, raw.get());
        }
    }
    if let Some(user_id) = s.user.as_deref() {
        out.value("metadata", &Metadata { user_id });
    }
    let reasoning = match s.effort {
        Some(effort) => {
            let blockers = ThinkingBlockers {
                forced_tool: forced,
                sampling: sampling_blocks_thinking(s.temperature.map(RawValue::get), s.top_p.map(RawValue::get)),
                unsigned_tool_turn: unsigned_tool_turn(turns),
            };
            anthropic_reasoning(effort, s.summary, target, max_tokens, blockers)
        }
        None => Default::default(),
    };
    if let Some(thinking) = &reasoning.thinking {
        out.raw("thinking", thinking);
    }
    let format = s.json_schema.map(|schema| OutputFormat { kind: "json_schema", schema });
    if format.is_some() || reasoning.effort.is_some() {
        out.value("output_config", &OutputConfig { effort: reasoning.effort, format });
    }
    if s.auto_cache {
        out.raw("cache_control", r#"{"type":"ephemeral"}"#);
    }
    if let Some(stream) = s.stream {
        out.value("stream", &stream);
    }
    Ok(out.finish())
}
