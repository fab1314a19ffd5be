//! Anthropic Messages body → Bedrock InvokeModel body (docs/protocols/bedrock.md).
//!
//! Bedrock takes the model from the path and streaming from the operation, so
//! `model` and `stream` go; `anthropic_version` becomes Bedrock's. Bedrock does
//! not support automatic caching, so the top-level `cache_control` goes, and
//! it rejects `ttl` in `cache_control` (the reference gateway's finding), so
//! `ttl` is removed from every block breakpoint (tools, system blocks,
//! message blocks and blocks nested in tool results). Members are re-emitted
//! byte for byte; only `system`, `messages` or `tools` holding a `"ttl"` are
//! re-serialised.

use serde_json::Value;

use crate::request::Fields;
use crate::translate::TranslateError;

pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

pub fn messages_to_bedrock_body(body: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let fields: Fields =
        serde_json::from_slice(body).map_err(|e| TranslateError::Invalid(format!("Invalid JSON body: {e}")))?;
    let mut set = vec![("anthropic_version", format!("\"{BEDROCK_ANTHROPIC_VERSION}\""))];
    for key in ["system", "messages", "tools"] {
        let Some(raw) = fields.get(key) else { continue };
        if !raw.get().contains("\"ttl\"") {
            continue;
        }
        let mut value: Value =
            serde_json::from_str(raw.get()).map_err(|e| TranslateError::Invalid(format!("Invalid '{key}': {e}")))?;
        strip_ttls(key, &mut value);
        set.push((key, value.to_string()));
    }
    Ok(fields.rewrite(&set, &["model", "stream", "cache_control"]))
}

/// Removes `ttl` from the `cache_control` of the blocks a member holds.
fn strip_ttls(key: &str, value: &mut Value) {
    let Value::Array(items) = value else { return };
    for item in items {
        match key {
            "messages" => {
                if let Some(Value::Array(blocks)) = item.get_mut("content") {
                    for block in blocks {
                        strip_block(block);
                        if let Some(Value::Array(nested)) = block.get_mut("content") {
                            nested.iter_mut().for_each(strip_block);
                        }
                    }
                }
            }
            _ => strip_block(item),
        }
    }
}

fn strip_block(block: &mut Value) {
    if let Some(Value::Object(cache_control)) = block.get_mut("cache_control") {
        cache_control.remove("ttl");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn removes_model_stream_and_automatic_caching_and_sets_version() {
        let body =
            br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"cache_control":{"type":"ephemeral"},
            "messages":[{"role":"user","content":"Hello"}],"metadata":{"user_id":"u1"}}"#;
        let out = messages_to_bedrock_body(body).unwrap();
        assert_eq!(
            parse(&out),
            json!({"max_tokens": 1024, "messages": [{"role": "user", "content": "Hello"}],
                   "metadata": {"user_id": "u1"}, "anthropic_version": "bedrock-2023-05-31"})
        );
    }

    #[test]
    fn untouched_members_keep_their_bytes() {
        let body = br#"{"model":"m","max_tokens":5,"messages":[ {"role":"user","content":"a  b"} ],"system":"s"}"#;
        let out = String::from_utf8(messages_to_bedrock_body(body).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"max_tokens":5,"messages":[ {"role":"user","content":"a  b"} ],"system":"s","anthropic_version":"bedrock-2023-05-31"}"#
        );
    }

    #[test]
    fn strips_ttl_from_every_breakpoint() {
        let body = json!({
            "model": "claude-sonnet-4-5", "max_tokens": 10,
            "tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "messages": [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "x", "content": [
                    {"type": "text", "text": "r", "cache_control": {"type": "ephemeral", "ttl": "5m"}}]},
                {"type": "text", "text": "the word \"ttl\" in text stays", "cache_control": {"type": "ephemeral", "ttl": "5m"}}
            ]}]
        });
        let out = parse(&messages_to_bedrock_body(body.to_string().as_bytes()).unwrap());
        let eph = json!({"type": "ephemeral"});
        assert_eq!(out["tools"][0]["cache_control"], eph);
        assert_eq!(out["system"][0]["cache_control"], eph);
        assert_eq!(out["messages"][0]["content"][0]["content"][0]["cache_control"], eph);
        assert_eq!(out["messages"][0]["content"][1]["cache_control"], eph);
        assert_eq!(out["messages"][0]["content"][1]["text"], "the word \"ttl\" in text stays");
        assert_eq!(out["anthropic_version"], "bedrock-2023-05-31");
        assert!(out.get("model").is_none());
    }

    #[test]
    fn invalid_json_is_an_error() {
        assert!(matches!(messages_to_bedrock_body(b"{"), Err(TranslateError::Invalid(_))));
        assert!(matches!(messages_to_bedrock_body(b"[]"), Err(TranslateError::Invalid(_))));
    }
}
