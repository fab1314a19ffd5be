//! Token usage: the normalised [`Usage`] every stage reports in, one reader
//! per API's `usage` object (each field read on its own, so a field of an
//! unexpected type never loses the rest), and the shapes the translators write.
//! Semantics are in `crate::usage`'s module docs.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::json::{count, decode};

/// Normalised token usage of one call; see `crate::usage` for semantics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// The provider's input count (see the table above).
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Some only when the provider reported the field (possibly as 0).
    pub cache_read_tokens: Option<u64>,
    /// All cache writes; the 5m/1h split below when the provider gave it.
    pub cache_creation_tokens: Option<u64>,
    pub cache_creation_5m_tokens: Option<u64>,
    pub cache_creation_1h_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    /// True for OpenAI and Gemini (`prompt_tokens` counts cached tokens),
    /// false for Anthropic (`input_tokens` excludes cache reads and writes).
    pub input_includes_cache: bool,
    /// True for Gemini native, whose output count leaves out reasoning
    /// (`thoughtsTokenCount`); false where output already contains it.
    pub output_excludes_reasoning: bool,
    /// Server-side web searches the provider billed: Anthropic
    /// `server_tool_use.web_search_requests`, OpenAI Responses `web_search_call`
    /// output items.
    pub web_search_requests: Option<u64>,
}

impl Usage {
    /// Every input token, cached or not, counted once.
    pub fn total_input_tokens(&self) -> u64 {
        if self.input_includes_cache {
            self.input_tokens
        } else {
            self.input_tokens
                .saturating_add(self.cache_read_tokens.unwrap_or(0))
                .saturating_add(self.cache_creation_total())
        }
    }

    /// Every output token billed at the output rate, reasoning included.
    pub fn billed_output_tokens(&self) -> u64 {
        if self.output_excludes_reasoning {
            self.output_tokens.saturating_add(self.reasoning_tokens.unwrap_or(0))
        } else {
            self.output_tokens
        }
    }

    /// Cache writes: the reported total, or the 5m/1h split when that is larger.
    pub fn cache_creation_total(&self) -> u64 {
        let split =
            self.cache_creation_5m_tokens.unwrap_or(0).saturating_add(self.cache_creation_1h_tokens.unwrap_or(0));
        self.cache_creation_tokens.unwrap_or(0).max(split)
    }
}

#[derive(Deserialize)]
struct ChatFields<'a> {
    #[serde(borrow, default)]
    prompt_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    prompt_tokens_details: Option<&'a RawValue>,
    #[serde(borrow, default)]
    completion_tokens_details: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ResponsesFields<'a> {
    #[serde(borrow, default)]
    input_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    output_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input_tokens_details: Option<&'a RawValue>,
    #[serde(borrow, default)]
    output_tokens_details: Option<&'a RawValue>,
}

/// OpenAI's input details (`prompt_tokens_details` / `input_tokens_details`).
#[derive(Deserialize)]
struct InputDetails<'a> {
    #[serde(borrow, default)]
    cached_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    cache_write_tokens: Option<&'a RawValue>,
}

/// OpenAI's output details (`completion_tokens_details` / `output_tokens_details`).
#[derive(Deserialize)]
struct OutputDetails<'a> {
    #[serde(borrow, default)]
    reasoning_tokens: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct AnthropicFields<'a> {
    #[serde(borrow, default)]
    input_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    output_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    cache_creation_input_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    cache_read_input_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    cache_creation: Option<&'a RawValue>,
    #[serde(borrow, default)]
    server_tool_use: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ServerToolUse<'a> {
    #[serde(borrow, default)]
    web_search_requests: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CacheCreation<'a> {
    #[serde(borrow, default)]
    ephemeral_5m_input_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ephemeral_1h_input_tokens: Option<&'a RawValue>,
}

fn openai(
    input: Option<&RawValue>,
    output: Option<&RawValue>,
    input_details: Option<&RawValue>,
    output_details: Option<&RawValue>,
) -> Usage {
    let input_details: Option<InputDetails> = decode(input_details);
    let output_details: Option<OutputDetails> = decode(output_details);
    Usage {
        input_tokens: count(input).unwrap_or(0),
        output_tokens: count(output).unwrap_or(0),
        cache_read_tokens: input_details.as_ref().and_then(|d| count(d.cached_tokens)),
        cache_creation_tokens: input_details.as_ref().and_then(|d| count(d.cache_write_tokens)),
        reasoning_tokens: output_details.and_then(|d| count(d.reasoning_tokens)),
        input_includes_cache: true,
        ..Usage::default()
    }
}

/// A Chat Completions `usage` object; `None` if it is not an object.
pub fn chat(raw: Option<&RawValue>) -> Option<Usage> {
    let u: ChatFields = decode(raw)?;
    Some(openai(u.prompt_tokens, u.completion_tokens, u.prompt_tokens_details, u.completion_tokens_details))
}

/// A Responses API `usage` object; `None` if it is not an object.
pub fn responses(raw: Option<&RawValue>) -> Option<Usage> {
    let u: ResponsesFields = decode(raw)?;
    Some(openai(u.input_tokens, u.output_tokens, u.input_tokens_details, u.output_tokens_details))
}

/// Anthropic usage before any event: cache counts stay apart from `input_tokens`.
pub fn anthropic_start() -> Usage {
    Usage { input_includes_cache: false, ..Usage::default() }
}

/// Takes every field an Anthropic `usage` object reports. A stream's usage is
/// cumulative (`message_start`, then each `message_delta`): the last value
/// wins, never a sum, and a field a later event leaves out keeps its value.
pub fn merge_anthropic(into: &mut Usage, raw: Option<&RawValue>) {
    let Some(u) = decode::<AnthropicFields>(raw) else {
        return;
    };
    let set = |field: &mut u64, value: Option<u64>| {
        if let Some(v) = value {
            *field = v;
        }
    };
    set(&mut into.input_tokens, count(u.input_tokens));
    set(&mut into.output_tokens, count(u.output_tokens));
    let set_opt = |field: &mut Option<u64>, value: Option<u64>| {
        if value.is_some() {
            *field = value;
        }
    };
    set_opt(&mut into.cache_read_tokens, count(u.cache_read_input_tokens));
    set_opt(&mut into.cache_creation_tokens, count(u.cache_creation_input_tokens));
    let tools: Option<ServerToolUse> = decode(u.server_tool_use);
    set_opt(&mut into.web_search_requests, tools.and_then(|t| count(t.web_search_requests)));
    if let Some(split) = decode::<CacheCreation>(u.cache_creation) {
        set_opt(&mut into.cache_creation_5m_tokens, count(split.ephemeral_5m_input_tokens));
        set_opt(&mut into.cache_creation_1h_tokens, count(split.ephemeral_1h_input_tokens));
    }
}

/// An Anthropic `usage` object on its own.
pub fn anthropic(raw: Option<&RawValue>) -> Option<Usage> {
    decode::<AnthropicFields>(raw)?;
    let mut usage = anthropic_start();
    merge_anthropic(&mut usage, raw);
    Some(usage)
}

impl Usage {
    /// Cache reads and writes as a prompt that includes them would count them.
    fn split(&self) -> (u64, u64, u64) {
        let read = self.cache_read_tokens.unwrap_or(0);
        let write = self.cache_creation_total();
        let uncached = if self.input_includes_cache {
            self.input_tokens.saturating_sub(read).saturating_sub(write)
        } else {
            self.input_tokens
        };
        (uncached, read, write)
    }
}

/// Chat Completions `usage` as the translators write it (the prompt includes the cache).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ChatUsageOut {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptTokensDetails,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PromptTokensDetails {
    pub cached_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
}

impl From<&Usage> for ChatUsageOut {
    fn from(u: &Usage) -> Self {
        let prompt = u.total_input_tokens();
        ChatUsageOut {
            prompt_tokens: prompt,
            completion_tokens: u.output_tokens,
            total_tokens: prompt.saturating_add(u.output_tokens),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: u.cache_read_tokens.unwrap_or(0),
                cache_write_tokens: u.cache_creation_tokens.map(|_| u.cache_creation_total()),
            },
        }
    }
}

/// Anthropic `usage` as the translators write it (`input_tokens` excludes the cache).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct AnthropicUsageOut {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
}

impl From<&Usage> for AnthropicUsageOut {
    fn from(u: &Usage) -> Self {
        let (uncached, read, write) = u.split();
        AnthropicUsageOut {
            input_tokens: uncached,
            output_tokens: u.output_tokens,
            cache_read_input_tokens: read,
            cache_creation_input_tokens: write,
        }
    }
}

/// Responses API `usage` as the translators write it (the input includes the cache).
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ResponsesUsageOut {
    pub input_tokens: u64,
    pub input_tokens_details: PromptTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

impl From<&Usage> for ResponsesUsageOut {
    fn from(u: &Usage) -> Self {
        let chat = ChatUsageOut::from(u);
        ResponsesUsageOut {
            input_tokens: chat.prompt_tokens,
            input_tokens_details: chat.prompt_tokens_details,
            output_tokens: u.billed_output_tokens(),
            output_tokens_details: OutputTokensDetails { reasoning_tokens: u.reasoning_tokens.unwrap_or(0) },
            total_tokens: chat.prompt_tokens.saturating_add(u.billed_output_tokens()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_input_counts_cache_once() {
        let anthropic = Usage {
            input_tokens: 2048,
            cache_read_tokens: Some(1800),
            cache_creation_tokens: Some(248),
            ..Usage::default()
        };
        assert_eq!(anthropic.total_input_tokens(), 4096);
        let openai =
            Usage { input_tokens: 2048, cache_read_tokens: Some(1800), input_includes_cache: true, ..Usage::default() };
        assert_eq!(openai.total_input_tokens(), 2048);
    }

    #[test]
    fn usage_semantics_round_trip() {
        let raw = serde_json::value::to_raw_value(&serde_json::json!({
            "input_tokens": 2048, "output_tokens": 503,
            "cache_read_input_tokens": 1800, "cache_creation_input_tokens": 248
        }))
        .unwrap();
        let anthropic = anthropic(Some(&raw)).unwrap();
        let chat = ChatUsageOut::from(&anthropic);
        assert_eq!((chat.prompt_tokens, chat.completion_tokens, chat.total_tokens), (4096, 503, 4599));
        assert_eq!(
            chat.prompt_tokens_details,
            PromptTokensDetails { cached_tokens: 1800, cache_write_tokens: Some(248) }
        );
        let raw = serde_json::value::to_raw_value(&chat).unwrap();
        let back = AnthropicUsageOut::from(&self::chat(Some(&raw)).unwrap());
        assert_eq!(
            back,
            AnthropicUsageOut {
                input_tokens: 2048,
                output_tokens: 503,
                cache_read_input_tokens: 1800,
                cache_creation_input_tokens: 248
            }
        );
    }

    #[test]
    fn a_later_anthropic_usage_replaces_only_what_it_reports() {
        let mut u = anthropic_start();
        let start = serde_json::value::to_raw_value(
            &serde_json::json!({"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1}),
        )
        .unwrap();
        let delta =
            serde_json::value::to_raw_value(&serde_json::json!({"output_tokens": 7, "input_tokens": "x"})).unwrap();
        merge_anthropic(&mut u, Some(&start));
        merge_anthropic(&mut u, Some(&delta));
        assert_eq!((u.input_tokens, u.output_tokens, u.cache_read_tokens), (10, 7, Some(5)));
    }

    #[test]
    fn reasoning_is_added_only_where_output_leaves_it_out() {
        let mut u = Usage { output_tokens: 40, reasoning_tokens: Some(25), ..Usage::default() };
        assert_eq!(u.billed_output_tokens(), 40);
        u.output_excludes_reasoning = true;
        assert_eq!(u.billed_output_tokens(), 65);
    }
}
