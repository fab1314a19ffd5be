//! The model a translated request is for, and the mappings that depend on it:
//! the output limit (clamped to what the model can produce; the model's
//! maximum when the client set none) and reasoning effort ↔ Anthropic
//! thinking.
//!
//! | client asks | Anthropic model with adaptive thinking | Anthropic model with budget thinking | OpenAI / Gemini reasoning model |
//! |---|---|---|---|
//! | effort `minimal`, `low` | `thinking: {type: adaptive}`, `output_config.effort: low` | `budget_tokens` 1024 / 2048 | `reasoning_effort` `minimal` (where taken, else `low`) / `low` |
//! | `medium`, `high` | adaptive, effort `medium` / `high` | 8192 / 16384 | same name |
//! | `xhigh`, Anthropic `max` | adaptive, effort `xhigh` (else `max`, else `high`) | 32768 | `xhigh` where taken, else `high` |
//! | `none`, Anthropic `disabled` | no thinking | no thinking | `none` where taken, else nothing |
//! | Anthropic `budget_tokens` n | — | — | `low` below 4096, `medium` below 16384, else `high` |
//!
//! A budget never exceeds half the output limit and is at least Anthropic's
//! 1024, else the request goes without thinking. Anthropic refuses thinking
//! beside a forced tool choice, `temperature` other than 1, `top_p` below
//! 0.95 or `top_k`, and when the last assistant turn calls tools without the
//! thinking block that preceded the calls (which OpenAI-format clients cannot
//! send back); the client's explicit setting wins and thinking is left out.
//! A model the catalog does not list, or that does not reason, gets no
//! reasoning control at all.

use crate::model_caps::{self, ModelCaps};
use crate::providers::Provider;

/// The output limit when the client set none and the catalog does not know the model.
pub const FALLBACK_MAX_TOKENS: u64 = 4096;
/// The output limit when the client set none: the model's maximum, at most this
/// (Claude Code's own default; larger limits count against Anthropic's output
/// rate limit before a token is produced).
pub const DEFAULT_MAX_TOKENS_CAP: u64 = 32_000;

/// The model a request is translated for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    pub provider: Provider,
    /// The model name the provider gets.
    pub model: &'a str,
    pub caps: ModelCaps,
}

impl<'a> Target<'a> {
    /// The target with its catalog entry.
    pub fn new(provider: Provider, model: &'a str) -> Self {
        Target { provider, model, caps: model_caps::lookup(provider, model) }
    }

    /// A model the provider knows by another name (an Azure deployment): the
    /// request names `wire_name`, the limits are `model`'s.
    pub fn named(provider: Provider, wire_name: &'a str, model: &str) -> Self {
        Target { provider, model: wire_name, caps: model_caps::lookup(provider, model) }
    }

    /// A client's output limit, clamped to the model's maximum.
    pub fn clamp_output(&self, requested: u64) -> u64 {
        match self.caps.max_output_tokens {
            Some(max) => requested.min(max),
            None => requested,
        }
    }

    /// The output limit for a client that set none (Anthropic requires one).
    pub fn default_output(&self) -> u64 {
        match self.caps.max_output_tokens {
            Some(max) => max.min(DEFAULT_MAX_TOKENS_CAP),
            None => FALLBACK_MAX_TOKENS,
        }
    }

    /// The provider's name, for messages.
    pub(super) fn name(&self) -> &'static str {
        self.provider.name()
    }
}

/// A reasoning effort, OpenAI's levels plus Anthropic's `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Effort {
    None,
    Minimal,
    Low,
    Medium,
    High,
    XHigh,
    Max,
}

impl Effort {
    pub(super) fn parse(s: &str) -> Option<Effort> {
        Some(match s {
            "none" => Effort::None,
            "minimal" => Effort::Minimal,
            "low" => Effort::Low,
            "medium" => Effort::Medium,
            "high" => Effort::High,
            "xhigh" => Effort::XHigh,
            "max" => Effort::Max,
            _ => return None,
        })
    }

    /// The effort an Anthropic thinking budget corresponds to.
    pub(super) fn from_budget(budget: u64) -> Effort {
        match budget {
            0..=4095 => Effort::Low,
            4096..=16383 => Effort::Medium,
            _ => Effort::High,
        }
    }

    fn budget(self) -> u64 {
        match self {
            Effort::None => 0,
            Effort::Minimal => 1024,
            Effort::Low => 2048,
            Effort::Medium => 8192,
            Effort::High => 16384,
            Effort::XHigh | Effort::Max => 32768,
        }
    }
}

/// Anthropic's minimum thinking budget.
const MIN_BUDGET: u64 = 1024;

/// What an Anthropic request gets for a reasoning effort.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct AnthropicReasoning {
    /// The `thinking` member, as JSON.
    pub thinking: Option<String>,
    /// `output_config.effort`.
    pub effort: Option<&'static str>,
}

/// Why Anthropic would refuse thinking in this request (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ThinkingBlockers {
    pub forced_tool: bool,
    pub sampling: bool,
    pub unsigned_tool_turn: bool,
}

impl ThinkingBlockers {
    fn any(self) -> bool {
        self.forced_tool || self.sampling || self.unsigned_tool_turn
    }
}

/// `temperature` other than 1, or `top_p` below 0.95 (raw JSON numbers).
pub(super) fn sampling_blocks_thinking(temperature: Option<&str>, top_p: Option<&str>) -> bool {
    let num = |raw: Option<&str>| raw.and_then(|r| r.trim().parse::<f64>().ok());
    num(temperature).is_some_and(|t| t != 1.0) || num(top_p).is_some_and(|p| p < 0.95)
}

/// Thinking and effort for an Anthropic model; `summary` asks for the thinking text.
pub(super) fn anthropic_reasoning(
    effort: Effort,
    summary: bool,
    target: &Target,
    max_tokens: u64,
    blockers: ThinkingBlockers,
) -> AnthropicReasoning {
    let caps = &target.caps;
    if !caps.reasoning || effort == Effort::None {
        return AnthropicReasoning::default();
    }
    if caps.adaptive_thinking {
        let level = match effort {
            Effort::None | Effort::Minimal | Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::XHigh if caps.xhigh => "xhigh",
            Effort::XHigh | Effort::Max if caps.max => "max",
            Effort::XHigh | Effort::Max => "high",
        };
        let thinking = (!blockers.any()).then(|| match summary {
            true => r#"{"type":"adaptive","display":"summarized"}"#.to_owned(),
            false => r#"{"type":"adaptive"}"#.to_owned(),
        });
        return AnthropicReasoning { thinking, effort: caps.effort.then_some(level) };
    }
    if !caps.budget_thinking || blockers.any() {
        return AnthropicReasoning::default();
    }
    let budget = effort.budget().min(max_tokens / 2);
    if budget < MIN_BUDGET {
        return AnthropicReasoning::default();
    }
    AnthropicReasoning { thinking: Some(format!(r#"{{"type":"enabled","budget_tokens":{budget}}}"#)), effort: None }
}

/// `reasoning_effort` for an OpenAI-format model, if it reasons.
pub(super) fn chat_reasoning_effort(effort: Effort, target: &Target) -> Option<&'static str> {
    let caps = &target.caps;
    if !caps.reasoning {
        return None;
    }
    Some(match effort {
        Effort::None if caps.none => "none",
        Effort::None => return None,
        Effort::Minimal if caps.minimal => "minimal",
        Effort::Minimal | Effort::Low => "low",
        Effort::Medium => "medium",
        Effort::High => "high",
        Effort::XHigh | Effort::Max if caps.xhigh => "xhigh",
        Effort::XHigh | Effort::Max => "high",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(provider: Provider, model: &'static str) -> Target<'static> {
        Target::new(provider, model)
    }

    #[test]
    fn output_limits_clamp_to_the_model() {
        let mini = target(Provider::OpenAi, "gpt-4o-mini");
        assert_eq!((mini.clamp_output(64000), mini.clamp_output(100), mini.default_output()), (16384, 100, 16384));
        let sonnet = target(Provider::Anthropic, "claude-sonnet-4-5");
        assert_eq!(sonnet.default_output(), DEFAULT_MAX_TOKENS_CAP);
        let unknown = target(Provider::Anthropic, "claude-unknown");
        assert_eq!((unknown.clamp_output(1_000_000), unknown.default_output()), (1_000_000, FALLBACK_MAX_TOKENS));
    }

    #[test]
    fn anthropic_thinking_by_model_style() {
        let none = ThinkingBlockers::default();
        let sonnet = target(Provider::Anthropic, "claude-sonnet-4-5");
        let r = anthropic_reasoning(Effort::High, false, &sonnet, 64000, none);
        assert_eq!(r.thinking.as_deref(), Some(r#"{"type":"enabled","budget_tokens":16384}"#));
        assert_eq!(r.effort, None);
        // Half the limit at most; below Anthropic's minimum, no thinking.
        let r = anthropic_reasoning(Effort::High, false, &sonnet, 4096, none);
        assert_eq!(r.thinking.as_deref(), Some(r#"{"type":"enabled","budget_tokens":2048}"#));
        assert_eq!(anthropic_reasoning(Effort::High, false, &sonnet, 1000, none), AnthropicReasoning::default());
        let opus = target(Provider::Anthropic, "claude-opus-4-8");
        let r = anthropic_reasoning(Effort::XHigh, true, &opus, 32000, none);
        assert_eq!(r.thinking.as_deref(), Some(r#"{"type":"adaptive","display":"summarized"}"#));
        assert_eq!(r.effort, Some("xhigh"));
        let opus46 = target(Provider::Anthropic, "claude-opus-4-6");
        assert_eq!(anthropic_reasoning(Effort::XHigh, false, &opus46, 32000, none).effort, Some("max"));
        assert_eq!(anthropic_reasoning(Effort::Minimal, false, &opus46, 32000, none).effort, Some("low"));
        // The client's tool choice wins over thinking; the effort still applies.
        let forced = ThinkingBlockers { forced_tool: true, ..none };
        let r = anthropic_reasoning(Effort::Medium, false, &opus, 32000, forced);
        assert_eq!((r.thinking, r.effort), (None, Some("medium")));
        assert_eq!(anthropic_reasoning(Effort::High, false, &sonnet, 64000, forced), AnthropicReasoning::default());
        assert_eq!(anthropic_reasoning(Effort::None, false, &opus, 32000, none), AnthropicReasoning::default());
    }

    #[test]
    fn openai_efforts_by_model() {
        let gpt5 = target(Provider::OpenAi, "gpt-5");
        assert_eq!(chat_reasoning_effort(Effort::Minimal, &gpt5), Some("minimal"));
        assert_eq!(chat_reasoning_effort(Effort::None, &gpt5), None);
        assert_eq!(chat_reasoning_effort(Effort::Max, &gpt5), Some("high"));
        let gpt52 = target(Provider::OpenAi, "gpt-5.2");
        assert_eq!(chat_reasoning_effort(Effort::Max, &gpt52), Some("xhigh"));
        assert_eq!(chat_reasoning_effort(Effort::None, &gpt52), Some("none"));
        assert_eq!(chat_reasoning_effort(Effort::High, &target(Provider::OpenAi, "gpt-4o")), None);
        let flash = target(Provider::Gemini, "gemini-2.5-flash");
        assert_eq!(chat_reasoning_effort(Effort::Minimal, &flash), Some("low"));
        assert_eq!(chat_reasoning_effort(Effort::from_budget(10000), &flash), Some("medium"));
        assert!(sampling_blocks_thinking(Some("0.2"), None) && !sampling_blocks_thinking(Some("1"), Some("0.99")));
    }
}
