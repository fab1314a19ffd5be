//! Claude's `anthropic-beta` flags on Bedrock. InvokeModel takes them in the
//! body (`anthropic_beta`), under Bedrock's names, and answers 400 "invalid
//! beta flag" to one it does not know; Claude Code sends a long list, most of
//! them first-party only. The flags Bedrock takes, with their Bedrock names,
//! are generated from LiteLLM's maintained map (`betas.tsv`, `make model-limits`).

use crate::request::Fields;

const TABLE: &str = include_str!("betas.tsv");

/// The Bedrock names of the flags in an `anthropic-beta` header value, in
/// order and once each, and how many flags Bedrock does not take (left out).
pub fn bedrock_betas(header: &str) -> (Vec<&'static str>, usize) {
    let mut kept: Vec<&'static str> = Vec::new();
    let mut dropped = 0;
    for flag in header.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let bedrock = TABLE
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t'))
            .find_map(|(anthropic, bedrock)| (anthropic == flag).then_some(bedrock));
        match bedrock {
            Some(b) if !kept.contains(&b) => kept.push(b),
            Some(_) => {}
            None => dropped += 1,
        }
    }
    (kept, dropped)
}

/// The InvokeModel body with `betas` added to its `anthropic_beta` (kept, if
/// the client set one in the body itself). `None` when the body is not an object.
pub fn with_betas(body: &[u8], betas: &[&str]) -> Option<Vec<u8>> {
    let fields: Fields = serde_json::from_slice(body).ok()?;
    let mut all: Vec<String> = fields
        .get("anthropic_beta")
        .and_then(|raw| serde_json::from_str::<Vec<String>>(raw.get()).ok())
        .unwrap_or_default();
    for b in betas {
        if !all.iter().any(|a| a == b) {
            all.push((*b).to_string());
        }
    }
    let json = serde_json::to_string(&all).ok()?;
    Some(fields.rewrite(&[("anthropic_beta", json)], &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_codes_flags_on_bedrock() {
        let header = "claude-code-20250219, interleaved-thinking-2025-05-14,context-management-2025-06-27,\
                      advanced-tool-use-2025-11-20,tool-search-tool-2025-10-19";
        let (kept, dropped) = bedrock_betas(header);
        // Bedrock knows advanced tool use as its tool-search flag: once.
        assert_eq!(kept, ["context-management-2025-06-27", "tool-search-tool-2025-10-19"]);
        assert_eq!(dropped, 2);
        let body =
            with_betas(br#"{"anthropic_version":"bedrock-2023-05-31","anthropic_beta":["a"],"messages":[]}"#, &kept)
                .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["anthropic_beta"],
            serde_json::json!(["a", "context-management-2025-06-27", "tool-search-tool-2025-10-19"])
        );
        assert_eq!(v["anthropic_version"], "bedrock-2023-05-31");
    }
}
