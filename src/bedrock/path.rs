//! Bedrock runtime paths (docs/protocols/bedrock.md): `POST /model/{modelId}/invoke` and
//! `POST /model/{modelId}/invoke-with-response-stream`.

/// The path for a model id, inference-profile id or ARN. The id is one path
/// segment, so everything but RFC 3986 unreserved characters is
/// percent-encoded: `:` in `…-v1:0` and in ARNs, and `/` in ARNs
/// (`…:inference-profile/us.anthropic…`), as the AWS SDKs encode it.
pub fn invoke_path(model_id: &str, stream: bool) -> String {
    model_path(model_id, if stream { "invoke-with-response-stream" } else { "invoke" })
}

/// `CountTokens` for a model: Bedrock counts only foundation-model ids, so an
/// inference-profile region prefix (`us.`, `global.`, …) is removed.
pub fn count_tokens_path(model_id: &str) -> String {
    let bare = ["global.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov."]
        .iter()
        .find_map(|region| model_id.strip_prefix(region).filter(|rest| rest.starts_with("anthropic.")))
        .unwrap_or(model_id);
    model_path(bare, "count-tokens")
}

fn model_path(model_id: &str, action: &str) -> String {
    let mut path = String::with_capacity(model_id.len() * 3 + 36);
    path.push_str("/model/");
    for &b in model_id.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            path.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            path.push('%');
            path.push(char::from(HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0')));
            path.push(char::from(HEX.get(usize::from(b & 0x0F)).copied().unwrap_or(b'0')));
        }
    }
    path.push('/');
    path.push_str(action);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_tokens_takes_bare_ids() {
        assert_eq!(
            count_tokens_path("us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens"
        );
    }

    #[test]
    fn model_ids() {
        assert_eq!(
            invoke_path("anthropic.claude-sonnet-4-5-20250929-v1:0", false),
            "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
        );
        assert_eq!(
            invoke_path("us.anthropic.claude-haiku-4-5-20251001-v1:0", true),
            "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke-with-response-stream"
        );
        assert_eq!(invoke_path("anthropic.claude-sonnet-4-6", false), "/model/anthropic.claude-sonnet-4-6/invoke");
    }

    #[test]
    fn arns_are_one_segment() {
        assert_eq!(
            invoke_path("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0", true),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"
        );
        assert_eq!(invoke_path("a b?#%é", false), "/model/a%20b%3F%23%25%C3%A9/invoke");
    }
}
