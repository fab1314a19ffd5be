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
//! Sources: docs/protocols/openai-chat.md, openai-responses.md, anthropic-messages.md, posthog.md; posthog-python
//! `posthog/ai/gemini/gemini_converter.py::_extract_usage_from_metadata`;
//! PostHog's `$ai_generation` cache fields (docs/protocols/reference-gateway.md).

mod anthropic;
pub mod include_usage;
mod openai_chat;
mod openai_responses;
mod sink;
#[cfg(test)]
mod tests_support;
mod tracker;

pub use crate::wire::usage::Usage;
pub use include_usage::UsageChunkStripper;
pub use tracker::{Extracted, Limits, Problem, Progress, UsageTracker};
