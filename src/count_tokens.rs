//! `POST /v1/messages/count_tokens`. Anthropic models are counted by
//! Anthropic's own endpoint, Bedrock's by Bedrock's `CountTokens`
//! (`POST /model/{id}/count-tokens`, the InvokeModel body base64-encoded in
//! `input.invokeModel.body`, answered as `{"inputTokens": n}`). No other
//! provider has a count for Messages bodies, so the gateway estimates: one
//! token per 3 bytes of the `system`, `messages` and `tools` JSON, which
//! overestimates (English runs near 4 bytes a token, and JSON adds more), so a
//! client that compacts its context by the count compacts early rather than late.
//! Estimates carry the header `x-posthog-token-count: estimated`.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::errors::LocalReply;
use crate::request::ParsedRequest;

/// Bytes of JSON per estimated token.
const BYTES_PER_TOKEN: usize = 3;

/// The gateway's estimate for a Messages body.
pub fn estimate(req: &ParsedRequest) -> u64 {
    let bytes: usize =
        ["system", "messages", "tools"].iter().filter_map(|k| req.fields.get(k)).map(|r| r.get().len()).sum();
    bytes.div_ceil(BYTES_PER_TOKEN) as u64
}

/// The estimate, as Anthropic's count endpoint answers.
pub fn estimate_reply(tokens: u64) -> LocalReply {
    LocalReply {
        status: 200,
        headers: vec![
            ("content-type", "application/json".to_string()),
            ("x-posthog-token-count", "estimated".to_string()),
        ],
        body: format!("{{\"input_tokens\":{tokens}}}"),
    }
}

/// The `CountTokens` body around an InvokeModel body. Anthropic's count
/// requests carry no `max_tokens`, which InvokeModel bodies require: 1 is set.
pub fn bedrock_body(invoke_body: &[u8]) -> Vec<u8> {
    let with_max = match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(invoke_body) {
        Ok(mut m) if !m.contains_key("max_tokens") => {
            m.insert("max_tokens".into(), 1.into());
            serde_json::to_vec(&m).unwrap_or_else(|_| invoke_body.to_vec())
        }
        _ => invoke_body.to_vec(),
    };
    let encoded = crate::bedrock::base64_encode(&with_max);
    format!("{{\"input\":{{\"invokeModel\":{{\"body\":\"{encoded}\"}}}}}}").into_bytes()
}

#[derive(Deserialize)]
struct BedrockCount<'a> {
    #[serde(rename = "inputTokens", borrow)]
    input_tokens: &'a RawValue,
}

/// Bedrock's answer in Anthropic's shape; `None` if it is not Bedrock's shape.
pub fn bedrock_answer(body: &[u8]) -> Option<Vec<u8>> {
    let c: BedrockCount = serde_json::from_slice(body).ok()?;
    let n: u64 = serde_json::from_str(c.input_tokens.get()).ok()?;
    Some(format!("{{\"input_tokens\":{n}}}").into_bytes())
}

/// Bedrock's answer to a count as the client gets it: the count, or the
/// error, in Anthropic's shapes.
pub fn bedrock_response(status: u16, amzn_error_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    if status == 200 {
        return bedrock_answer(body).unwrap_or_else(|| body.to_vec());
    }
    crate::bedrock::bedrock_error_to_anthropic(status, amzn_error_type, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Api;

    #[test]
    fn estimates_round_up_and_count_only_the_prompt() {
        let body = br#"{"model":"gpt-5","system":"abcd","messages":[{"role":"user","content":"hi"}],"max_tokens":9}"#;
        let req = crate::request::parse(body, Api::Messages).unwrap();
        let bytes = r#""abcd""#.len() + r#"[{"role":"user","content":"hi"}]"#.len();
        assert_eq!(estimate(&req), bytes.div_ceil(3) as u64);
        let reply = estimate_reply(12);
        assert_eq!(reply.body, r#"{"input_tokens":12}"#);
    }

    #[test]
    fn bedrock_bodies_and_answers() {
        let body = bedrock_body(br#"{"anthropic_version":"bedrock-2023-05-31","messages":[]}"#);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let inner = crate::bedrock::base64_decode(v["input"]["invokeModel"]["body"].as_str().unwrap().as_bytes());
        let inner: serde_json::Value = serde_json::from_slice(&inner.unwrap()).unwrap();
        assert_eq!(inner["max_tokens"], 1);
        assert_eq!(bedrock_answer(br#"{"inputTokens": 42}"#).unwrap(), br#"{"input_tokens":42}"#);
        assert!(bedrock_answer(br#"{"message":"no"}"#).is_none());
    }
}
