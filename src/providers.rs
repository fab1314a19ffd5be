//! Upstream providers: which one serves a model, and how to address it.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
    /// Azure OpenAI: OpenAI's APIs on an Azure resource, models by deployment.
    Azure,
}

impl Provider {
    pub const ALL: [Provider; 5] =
        [Provider::OpenAi, Provider::Anthropic, Provider::Gemini, Provider::Bedrock, Provider::Azure];

    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
            Provider::Bedrock => "bedrock",
            Provider::Azure => "azure",
        }
    }

    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// VM environment variable holding the gateway's own key for this provider.
    pub fn key_env_var(self) -> &'static str {
        match self {
            Provider::OpenAi => "LLM_GATEWAY_OPENAI_API_KEY",
            Provider::Anthropic => "LLM_GATEWAY_ANTHROPIC_API_KEY",
            Provider::Gemini => "LLM_GATEWAY_GEMINI_API_KEY",
            Provider::Bedrock => "LLM_GATEWAY_BEDROCK_API_KEY",
            Provider::Azure => "LLM_GATEWAY_AZURE_API_KEY",
        }
    }

    pub fn default_authority(self) -> &'static str {
        match self {
            Provider::OpenAi => "api.openai.com",
            Provider::Anthropic => "api.anthropic.com",
            Provider::Gemini => "generativelanguage.googleapis.com",
            Provider::Bedrock => "bedrock-runtime.us-east-1.amazonaws.com",
            // Each Azure resource has its own host, `<resource>.openai.azure.com`:
            // there is no default (`providers.azure.authority`).
            Provider::Azure => "",
        }
    }

    /// Prefix replacing the client's `/v1` (Gemini serves OpenAI's API under its
    /// own path; Azure's v1 API is under `/openai/v1`).
    pub fn default_base_path(self) -> &'static str {
        match self {
            Provider::Gemini => "/v1beta/openai",
            Provider::Azure => "/openai/v1",
            _ => "/v1",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Provider by model-name convention, and the model name the provider expects.
/// Explicit model-table entries in config take precedence over this.
pub fn infer(model: &str) -> Option<(Provider, &str)> {
    // A prefix with no model after it names nothing a provider would serve.
    for (prefix, provider) in
        [("gemini/", Provider::Gemini), ("bedrock/", Provider::Bedrock), ("azure/", Provider::Azure)]
    {
        if let Some(rest) = model.strip_prefix(prefix) {
            return (!rest.is_empty()).then_some((provider, rest));
        }
    }
    if is_bedrock_id(model) {
        return Some((Provider::Bedrock, model));
    }
    const OPENAI: [&str; 8] = ["gpt-", "o1", "o3", "o4", "chatgpt-", "codex-", "computer-use-", "gpt5"];
    if OPENAI.iter().any(|p| model.starts_with(p)) {
        return Some((Provider::OpenAi, model));
    }
    if model.starts_with("claude-") {
        return Some((Provider::Anthropic, model));
    }
    if model.starts_with("gemini-") {
        return Some((Provider::Gemini, model));
    }
    None
}

/// The Bedrock id of a first-party Claude model, for requests sent to Bedrock by
/// the provider header (global cross-region profiles where Bedrock offers them;
/// docs/protocols/bedrock.md, Inference profiles). A Bedrock id passes through.
pub fn bedrock_id(model: &str) -> Option<&str> {
    if is_bedrock_id(model) {
        return Some(model);
    }
    const IDS: [(&str, &str); 9] = [
        ("claude-sonnet-4-6", "global.anthropic.claude-sonnet-4-6"),
        ("claude-opus-4-6", "global.anthropic.claude-opus-4-6-v1"),
        ("claude-opus-4-5", "global.anthropic.claude-opus-4-5-20251101-v1:0"),
        ("claude-sonnet-4-5", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("claude-haiku-4-5", "global.anthropic.claude-haiku-4-5-20251001-v1:0"),
        ("claude-sonnet-4", "global.anthropic.claude-sonnet-4-20250514-v1:0"),
        ("claude-opus-4-1", "us.anthropic.claude-opus-4-1-20250805-v1:0"),
        ("claude-opus-4", "us.anthropic.claude-opus-4-20250514-v1:0"),
        ("claude-3-7-sonnet", "us.anthropic.claude-3-7-sonnet-20250219-v1:0"),
    ];
    let bare = strip_date(model);
    IDS.iter().find(|(name, _)| *name == bare).map(|(_, id)| *id)
}

/// `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`.
fn strip_date(model: &str) -> &str {
    match model.rsplit_once('-') {
        Some((head, tail)) if tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => model,
    }
}

/// Bedrock model ids and inference profiles: `anthropic.…`, `us.anthropic.…`, ARNs.
pub fn is_bedrock_id(model: &str) -> bool {
    const REGION_PREFIXES: [&str; 7] = ["us.", "eu.", "apac.", "global.", "jp.", "au.", "us-gov."];
    let bare = REGION_PREFIXES.iter().find_map(|p| model.strip_prefix(p)).unwrap_or(model);
    bare.starts_with("anthropic.") || model.starts_with("arn:aws:bedrock:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rules() {
        let cases = [
            ("gpt-4o-mini", Provider::OpenAi, "gpt-4o-mini"),
            ("o3-mini", Provider::OpenAi, "o3-mini"),
            ("o4-mini", Provider::OpenAi, "o4-mini"),
            ("chatgpt-4o-latest", Provider::OpenAi, "chatgpt-4o-latest"),
            ("claude-sonnet-4-5", Provider::Anthropic, "claude-sonnet-4-5"),
            ("gemini-2.5-flash", Provider::Gemini, "gemini-2.5-flash"),
            ("gemini/gemini-2.5-pro", Provider::Gemini, "gemini-2.5-pro"),
            (
                "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                Provider::Bedrock,
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            ),
            ("anthropic.claude-haiku-4-5-20251001-v1:0", Provider::Bedrock, "anthropic.claude-haiku-4-5-20251001-v1:0"),
            (
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                Provider::Bedrock,
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            ),
            (
                "apac.anthropic.claude-3-haiku-20240307-v1:0",
                Provider::Bedrock,
                "apac.anthropic.claude-3-haiku-20240307-v1:0",
            ),
            ("azure/gpt-4o", Provider::Azure, "gpt-4o"),
        ];
        for (model, provider, upstream) in cases {
            assert_eq!(infer(model), Some((provider, upstream)), "{model}");
        }
    }

    #[test]
    fn unknown_models() {
        for m in ["llama-3", "", "mistral-large", "anthropic", "Claude-3", "gemini/", "bedrock/", "azure/"] {
            assert_eq!(infer(m), None, "{m}");
        }
    }

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(Provider::from_name(p.name()), Some(p));
        }
    }
}
