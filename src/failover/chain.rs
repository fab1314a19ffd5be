//! Which targets a request may try, in order.

use super::config::{FailoverSettings, TargetSpec};
use crate::providers::{self, Provider};

/// A target of one request: the provider and the model it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub provider: Provider,
    pub model: String,
}

/// The request's chain: its chain by model name (`requested`, else the routed
/// model), else its provider's default chain, else only the routed target.
/// Targets whose model cannot be named (an Anthropic model without a Bedrock id)
/// are left out and counted in the second value; repeats are left out; at most
/// `max_attempts` remain. Never empty.
pub fn resolve(settings: &FailoverSettings, requested: &str, routed: (Provider, &str)) -> (Vec<Target>, usize) {
    let (provider, model) = routed;
    let specs: Option<&Vec<TargetSpec>> = settings
        .models
        .get(requested)
        .or_else(|| settings.models.get(model))
        .or_else(|| settings.providers.get(&provider));
    let Some(specs) = specs else {
        return (vec![Target { provider, model: model.to_string() }], 0);
    };
    let mut chain: Vec<Target> = Vec::new();
    let mut skipped = 0;
    for spec in specs {
        let named = match &spec.model {
            Some(m) => Some(m.clone()),
            None if spec.provider == provider => Some(model.to_string()),
            None if spec.provider == Provider::Bedrock => providers::bedrock_id(model).map(str::to_string),
            None => None,
        };
        match named {
            Some(m) => {
                let target = Target { provider: spec.provider, model: m };
                if !chain.contains(&target) {
                    chain.push(target);
                }
            }
            None => skipped += 1,
        }
    }
    if chain.is_empty() {
        chain.push(Target { provider, model: model.to_string() });
    }
    if chain.len() > settings.max_attempts {
        skipped += chain.len() - settings.max_attempts;
        chain.truncate(settings.max_attempts);
    }
    (chain, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::config::{compile, RawFailover};

    fn settings(json: &str) -> FailoverSettings {
        let raw: RawFailover = serde_json::from_str(json).unwrap();
        compile(raw, |m| providers::infer(m).map(|(p, m)| (p, m.to_string()))).unwrap()
    }

    fn names(chain: &[Target]) -> Vec<String> {
        chain.iter().map(|t| format!("{}:{}", t.provider, t.model)).collect()
    }

    #[test]
    fn by_model_then_provider_then_none() {
        let s = settings(
            r#"{"models": {"claude-sonnet-4-5": [{"provider": "anthropic"}, {"provider": "bedrock"},
                           {"provider": "openai", "model": "gpt-5"}]},
                "providers": {"openai": [{"provider": "openai"}, {"provider": "openai", "model": "gpt-4o-mini"}]}}"#,
        );
        let (chain, skipped) = resolve(&s, "claude-sonnet-4-5", (Provider::Anthropic, "claude-sonnet-4-5"));
        assert_eq!(
            names(&chain),
            ["anthropic:claude-sonnet-4-5", "bedrock:global.anthropic.claude-sonnet-4-5-20250929-v1:0", "openai:gpt-5"]
        );
        assert_eq!(skipped, 0);
        let (chain, _) = resolve(&s, "gpt-4o", (Provider::OpenAi, "gpt-4o"));
        assert_eq!(names(&chain), ["openai:gpt-4o", "openai:gpt-4o-mini"]);
        let (chain, _) = resolve(&s, "gemini-2.5-flash", (Provider::Gemini, "gemini-2.5-flash"));
        assert_eq!(names(&chain), ["gemini:gemini-2.5-flash"], "no chain: one target");
        // An alias is looked up by the model it routes to too.
        let (chain, _) = resolve(&s, "my-alias", (Provider::Anthropic, "claude-sonnet-4-5"));
        assert_eq!(chain.len(), 3);
    }

    #[test]
    fn unnamed_repeated_and_excess_targets_are_left_out() {
        let s = settings(
            r#"{"max_attempts": 2, "providers": {"anthropic": [{"provider": "anthropic"}, {"provider": "bedrock"},
                 {"provider": "anthropic"}, {"provider": "openai", "model": "gpt-5"}, {"provider": "gemini", "model": "gemini-2.5-pro"}]}}"#,
        );
        // No Bedrock id for this model: left out, and the repeat too.
        let (chain, skipped) = resolve(&s, "claude-unknown-9", (Provider::Anthropic, "claude-unknown-9"));
        assert_eq!(names(&chain), ["anthropic:claude-unknown-9", "openai:gpt-5"]);
        assert_eq!(skipped, 2, "the unnamed Bedrock target and the one past max_attempts");
    }
}
