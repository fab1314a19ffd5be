//! Token usage from provider responses (JSON and SSE).
//!
//! # Token semantics: one rule, as PostHog's SDK wrappers report it
//!
//! [`Usage::input_tokens`] is the provider's own input count, unchanged, which
//! is what posthog-python's wrappers send as `$ai_input_tokens`; the cache
//! counts are reported beside it (`$ai_cache_read_input_tokens`,
//! `$ai_cache_creation_input_tokens`) and [`Usage::input_includes_cache`] says
//! whether they are already inside `input_tokens`:
//!
//! | wire | `input_tokens` | cache read / write | includes cache |
//! |---|---|---|---|
//! | OpenAI Chat | `prompt_tokens` | `prompt_tokens_details.cached_tokens` / `.cache_write_tokens` | yes |
//! | OpenAI Responses | `input_tokens` | `input_tokens_details.cached_tokens` / `.cache_write_tokens` | yes |
//! | Anthropic | `input_tokens` (after the last breakpoint) | `cache_read_input_tokens` / `cache_creation_input_tokens` (+ 5m/1h split) | no |
//! | Gemini native | `promptTokenCount` | `cachedContentTokenCount` / — | yes |
//!
//! So the total prompt is `input_tokens` when `input_includes_cache`, else
//! `input_tokens + cache_read + cache_creation` (Anthropic: "total_input_tokens
//! = cache_read_input_tokens + cache_creation_input_tokens + input_tokens").
//! Pricing (`crate::pricing::cost`) applies this rule so a cache token is
//! priced exactly once, at its cache rate.
//!
//! Output follows the same principle: `output_tokens` is the provider's count.
//! OpenAI's `completion_tokens`/`output_tokens` and Anthropic's
//! `output_tokens` already contain reasoning; Gemini's `candidatesTokenCount`
//! does not contain `thoughtsTokenCount` (posthog-python reports them apart
//! and PostHog adds the reasoning cost back for Gemini), which
//! [`Usage::output_excludes_reasoning`] records.
//!
//! Sources: PROTOCOLS.md A–D and G; posthog-python
//! `posthog/ai/gemini/gemini_converter.py::_extract_usage_from_metadata`;
//! PostHog's `$ai_generation` cache fields (reference 001).

mod anthropic;
mod gemini;
pub mod include_usage;
mod json;
mod openai_chat;
mod openai_responses;
pub mod sse;
#[cfg(test)]
mod tests_support;
mod tracker;

pub use include_usage::UsageChunkStripper;
pub use sse::{SseEvent, SseParser};
pub use tracker::{Extracted, Limits, Problem, Progress, UsageTracker};

/// The response format being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    OpenAiChat,
    OpenAiResponses,
    Anthropic,
    GeminiNative,
}

/// Normalised token usage of one call; see the module docs for semantics.
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
    /// output items, Gemini `groundingMetadata.webSearchQueries`.
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
    fn reasoning_is_added_only_where_output_leaves_it_out() {
        let mut u = Usage { output_tokens: 40, reasoning_tokens: Some(25), ..Usage::default() };
        assert_eq!(u.billed_output_tokens(), 40);
        u.output_excludes_reasoning = true;
        assert_eq!(u.billed_output_tokens(), 65);
    }
}
