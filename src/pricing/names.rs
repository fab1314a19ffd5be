//! Model-id spellings: the forms a name is looked up under, its family for
//! the `family` unknown-model policy, and the fixed metric bucket it counts in.

/// Maps provider spellings onto the first-party name: `gemini/` and
/// `models/` prefixes, `bedrock/[converse/|invoke/][region/]id` and ARNs,
/// Bedrock inference-profile regions, `anthropic.`, `-v1:0`.
pub fn normalise(model: &str) -> String {
    let mut m = model.trim().to_ascii_lowercase();
    for prefix in ["gemini/", "models/"] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest.to_owned();
        }
    }
    // `bedrock/[converse/|invoke/][region/]id` and ARNs end in the id.
    if m.starts_with("bedrock/") || m.starts_with("arn:") {
        m = m.rsplit('/').next().unwrap_or_default().to_owned();
    }
    const REGIONS: [&str; 10] = ["global.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "in.", "us-gov.", "regional."];
    for region in REGIONS {
        if let Some(rest) = m.strip_prefix(region) {
            if rest.starts_with("anthropic.") {
                m = rest.to_owned();
                break;
            }
        }
    }
    if let Some(rest) = m.strip_prefix("anthropic.") {
        m = rest.to_owned();
    }
    strip_version(&m).to_owned()
}

/// `-v1:0`, `-v2:0`, `-v1` Bedrock version suffixes.
pub fn strip_version(m: &str) -> &str {
    let Some((base, version)) = m.rsplit_once("-v") else {
        return m;
    };
    let mut parts = version.splitn(2, ':');
    let digits = |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let major = parts.next();
    let minor = parts.next();
    if digits(major) && (minor.is_none() || digits(minor)) {
        base
    } else {
        m
    }
}

/// Removes a trailing release date (`-20250929`, `@20250929`, `-2024-08-06`) or `-latest`.
pub fn strip_date(m: &str) -> Option<&str> {
    if let Some(base) = m.strip_suffix("-latest") {
        return Some(base);
    }
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if let Some((base, date)) = m.rsplit_once(['-', '@']) {
        if date.len() == 8 && date.starts_with("20") && is_digits(date) {
            return Some(base);
        }
    }
    let cut = m.len().checked_sub(11)?;
    let (base, date) = (m.get(..cut)?, m.get(cut..)?);
    let fields: Vec<&str> = date.split('-').collect();
    match fields.as_slice() {
        ["", y, mo, d]
            if y.len() == 4 && mo.len() == 2 && d.len() == 2 && is_digits(y) && is_digits(mo) && is_digits(d) =>
        {
            Some(base)
        }
        _ => None,
    }
}

/// The names `model` is looked up under, most specific first, without repeats:
/// as sent (lower-cased), without its date, in its first-party spelling, and that without its date.
pub fn forms(model: &str) -> Vec<String> {
    let raw = model.trim().to_ascii_lowercase();
    let normal = normalise(model);
    let mut out: Vec<String> = Vec::with_capacity(4);
    let candidates = [Some(raw.as_str()), strip_date(&raw), Some(normal.as_str()), strip_date(&normal)];
    for c in candidates.into_iter().flatten() {
        if !c.is_empty() && !out.iter().any(|o| o == c) {
            out.push(c.to_owned());
        }
    }
    out
}

/// A model's family: its first-party name without version numbers, dates and
/// release words, e.g. `claude-opus-5-5` and `claude-3-opus-20240229` are both
/// `claude-opus`, `gpt-5.4-mini` is `gpt-mini`, `gemini-2.5-flash-lite` is
/// `gemini-flash-lite`. Empty when nothing but numbers is left.
pub fn family(model: &str) -> String {
    let normal = normalise(model);
    let base = strip_date(&normal).unwrap_or(&normal);
    let mut out = String::with_capacity(base.len());
    for token in base.split(['-', '@', ':', '_']) {
        let numeric = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        let release = matches!(token, "latest" | "preview" | "exp" | "experimental" | "");
        // `o3`, `o4`: the reasoning series is its own family name.
        let series = token.len() > 1 && token.starts_with('o') && token.bytes().skip(1).all(|b| b.is_ascii_digit());
        if numeric || release {
            continue;
        }
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(if series { "o" } else { token });
    }
    out
}

/// The fixed buckets unpriced calls are counted in (`cost_fallback_<bucket>_total`):
/// model names are unbounded, metric names must not be.
pub const BUCKETS: [&str; 8] = ["opus", "sonnet", "haiku", "claude", "gpt", "o_series", "gemini", "other"];

/// The bucket of `model` in [`BUCKETS`].
pub fn bucket(model: &str) -> &'static str {
    let m = normalise(model);
    let first = m.split('-').next().unwrap_or_default();
    if m.contains("opus") {
        "opus"
    } else if m.contains("sonnet") {
        "sonnet"
    } else if m.contains("haiku") {
        "haiku"
    } else if m.contains("claude") {
        "claude"
    } else if m.starts_with("gpt") || m.starts_with("chatgpt") {
        "gpt"
    } else if first.len() > 1 && first.starts_with('o') && first.bytes().skip(1).all(|b| b.is_ascii_digit()) {
        "o_series"
    } else if m.contains("gemini") {
        "gemini"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_stripping_is_exact() {
        assert_eq!(strip_date("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(strip_date("claude-opus-4-20250514"), Some("claude-opus-4"));
        assert_eq!(strip_date("claude-opus-4-5@20251101"), Some("claude-opus-4-5"));
        assert_eq!(strip_date("gpt-4-0613"), None);
        assert_eq!(strip_date("gpt-4o"), None);
        assert_eq!(strip_date("é-2024-08-0é"), None);
        assert_eq!(strip_version("claude-x-v1:0"), "claude-x");
        assert_eq!(strip_version("claude-x-v2"), "claude-x");
        assert_eq!(strip_version("model-vision"), "model-vision");
    }

    #[test]
    fn provider_spellings_normalise_to_first_party_names() {
        let cases = [
            ("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929"),
            ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5-20251001"),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
                "claude-3-5-haiku-20241022",
            ),
            ("regional.anthropic.claude-opus-5-5", "claude-opus-5-5"),
            ("gemini/gemini-2.5-pro", "gemini-2.5-pro"),
            ("models/gemini-2.0-flash", "gemini-2.0-flash"),
            ("GPT-4o", "gpt-4o"),
        ];
        for (model, want) in cases {
            assert_eq!(normalise(model), want, "{model}");
        }
        assert_eq!(forms("Claude-Opus-5-5-20260101"), ["claude-opus-5-5-20260101", "claude-opus-5-5"]);
        assert_eq!(
            forms("us.anthropic.claude-opus-5-5-v1:0"),
            ["us.anthropic.claude-opus-5-5-v1:0", "claude-opus-5-5"]
        );
    }

    #[test]
    fn families_drop_versions_dates_and_release_words() {
        let cases = [
            ("claude-opus-5-5", "claude-opus"),
            ("claude-opus-9-20300101", "claude-opus"),
            ("claude-3-opus-latest", "claude-opus"),
            ("us.anthropic.claude-opus-7-v1:0", "claude-opus"),
            ("claude-haiku-4.5", "claude-haiku"),
            ("gpt-5.4-mini", "gpt-mini"),
            ("gpt-5-codex", "gpt-codex"),
            ("gpt-9", "gpt"),
            ("o3-mini", "o-mini"),
            ("o4-mini-2025-04-16", "o-mini"),
            ("gemini-2.5-flash-lite-preview-09-2025", "gemini-flash-lite"),
            ("gemini-3.1-pro-preview", "gemini-pro"),
            ("12345", ""),
        ];
        for (model, want) in cases {
            assert_eq!(family(model), want, "{model}");
        }
    }

    #[test]
    fn buckets_are_a_fixed_set() {
        let cases = [
            ("claude-opus-9", "opus"),
            ("bedrock/eu.anthropic.claude-sonnet-9-v1:0", "sonnet"),
            ("claude-haiku-9", "haiku"),
            ("claude-fable-9", "claude"),
            ("gpt-9", "gpt"),
            ("o7-mini", "o_series"),
            ("gemini/gemini-9-pro", "gemini"),
            ("llama-9000", "other"),
            ("", "other"),
        ];
        for (model, want) in cases {
            assert_eq!(bucket(model), want, "{model}");
            assert!(BUCKETS.contains(&bucket(model)));
        }
    }
}
