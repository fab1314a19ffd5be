//! Provider error bodies in the client's format (docs/protocols/openai-chat.md and anthropic-messages.md,
//! "Errors"). SDKs pick their exception class from the HTTP status, so the
//! status passes through unchanged; the body is rewritten so the client's SDK
//! can read the message. Type names follow `crate::errors` for the same
//! statuses.

use serde::{Deserialize, Serialize};

use super::common::{fallback_message, to_json, Str};
use crate::wire::ErrorDetail;

/// Anthropic's error type for an HTTP status (docs/protocols/anthropic-messages.md, Errors).
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

fn openai_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        503 | 529 => "service_unavailable_error",
        504 => "timeout_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// An Anthropic error type (from a body or an in-stream `error` event) as an OpenAI one.
pub(super) fn openai_type_for_anthropic(kind: &str, status: u16) -> &'static str {
    match kind {
        "invalid_request_error" | "not_found_error" | "request_too_large" => "invalid_request_error",
        "authentication_error" => "authentication_error",
        "permission_error" => "permission_error",
        "billing_error" => "insufficient_quota",
        "rate_limit_error" => "rate_limit_error",
        "timeout_error" => "timeout_error",
        "overloaded_error" => "service_unavailable_error",
        "api_error" => "server_error",
        _ => openai_error_type(status),
    }
}

/// An OpenAI error type (or code) as an Anthropic one.
pub(super) fn anthropic_type_for_openai(kind: &str, status: u16) -> &'static str {
    match kind {
        "invalid_request_error" => "invalid_request_error",
        "authentication_error" | "invalid_api_key" => "authentication_error",
        "permission_error" => "permission_error",
        "rate_limit_error" | "rate_limit_exceeded" | "tokens" | "requests" => "rate_limit_error",
        "insufficient_quota" => "billing_error",
        "timeout_error" => "timeout_error",
        "service_unavailable_error" | "server_is_overloaded" | "slow_down" => "overloaded_error",
        "server_error" | "api_error" => "api_error",
        _ => anthropic_error_type(status),
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    error: Option<ErrorDetail<'a>>,
}

#[derive(Serialize)]
pub(super) struct OpenAiError<'a> {
    pub error: OpenAiErrorBody<'a>,
}

#[derive(Serialize)]
pub(super) struct OpenAiErrorBody<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<()>,
    pub code: Option<()>,
}

#[derive(Serialize)]
pub(super) struct AnthropicError<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: AnthropicErrorBody<'a>,
}

#[derive(Serialize)]
pub(super) struct AnthropicErrorBody<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub message: &'a str,
}

/// An OpenAI error object as JSON text.
pub(super) fn openai_error_json(kind: &str, message: &str) -> String {
    to_json(&OpenAiError { error: OpenAiErrorBody { message, kind, param: None, code: None } })
}

/// An Anthropic error object as JSON text.
pub(super) fn anthropic_error_json(kind: &str, message: &str) -> String {
    to_json(&AnthropicError { kind: "error", error: AnthropicErrorBody { kind, message } })
}

/// Reads `{"error": {...}}`; Gemini's OpenAI-compatible endpoint wraps it in a one-element array.
fn parse_envelope(body: &[u8]) -> Option<ErrorDetail<'_>> {
    // Checked first: serde would also read an array positionally into the struct.
    if body.trim_ascii_start().starts_with(b"[") {
        return serde_json::from_slice::<Vec<Envelope>>(body).ok()?.into_iter().next()?.error;
    }
    serde_json::from_slice::<Envelope>(body).ok()?.error
}

/// An Anthropic error body (`{"type":"error","error":{"type","message"}}`)
/// as an OpenAI one (`{"error":{"message","type","param":null,"code":null}}`).
/// A body that is not Anthropic's shape is quoted as the message.
pub fn anthropic_error_to_openai(status: u16, body: &[u8]) -> Vec<u8> {
    let detail = parse_envelope(body);
    let kind = detail.as_ref().and_then(|d| d.kind.as_deref()).unwrap_or_default();
    let message = match detail.as_ref().and_then(|d| d.message.as_deref()) {
        Some(m) => m.to_owned(),
        None => fallback_message(status, body),
    };
    openai_error_json(openai_type_for_anthropic(kind, status), &message).into_bytes()
}

/// An OpenAI-format error body in OpenAI's own shape: Gemini's compatible
/// endpoint wraps it in an array and leaves out `type`, which OpenAI SDKs read.
pub fn openai_error_normalised(status: u16, body: &[u8]) -> Vec<u8> {
    let detail = parse_envelope(body);
    let message = match detail.as_ref().and_then(|d| d.message.as_deref()) {
        Some(m) => m.to_owned(),
        None => fallback_message(status, body),
    };
    let kind = match detail.as_ref().and_then(|d| d.kind.as_deref()) {
        Some(k) if !k.is_empty() => k.to_owned(),
        _ => openai_error_type(status).to_owned(),
    };
    // A string `code` (`rate_limit_exceeded`, `context_length_exceeded`) is what clients branch on.
    let code: Option<Str> = detail.as_ref().and_then(|d| d.code).and_then(|c| serde_json::from_str(c.get()).ok());
    #[derive(Serialize)]
    struct Body<'a> {
        message: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
        param: Option<()>,
        code: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Envelope<'a> {
        error: Body<'a>,
    }
    to_json(&Envelope { error: Body { message: &message, kind: &kind, param: None, code: code.as_deref() } })
        .into_bytes()
}

/// An OpenAI error body as an Anthropic one, typed by Anthropic's names (see
/// [`anthropic_type_for_detail`]).
pub fn openai_error_to_anthropic(status: u16, body: &[u8]) -> Vec<u8> {
    let detail = parse_envelope(body);
    let message = match detail.as_ref().and_then(|d| d.message.as_deref()) {
        Some(m) => m.to_owned(),
        None => fallback_message(status, body),
    };
    anthropic_error_json(anthropic_type_for_detail(detail.as_ref(), status), &message).into_bytes()
}

/// The Anthropic type for an OpenAI error object. The HTTP status decides,
/// as it does for the SDKs, except that an exhausted quota (a 429 at OpenAI)
/// is Anthropic's `billing_error`; an in-stream error (status 200) is typed
/// by its `code`, else its `type`.
pub(super) fn anthropic_type_for_detail(detail: Option<&ErrorDetail>, status: u16) -> &'static str {
    let code: Option<Str> = detail.and_then(|d| d.code).and_then(|c| serde_json::from_str(c.get()).ok());
    let kind = detail.and_then(|d| d.kind.as_deref()).unwrap_or_default();
    if code.as_deref() == Some("insufficient_quota") || kind == "insufficient_quota" {
        return "billing_error";
    }
    if status >= 400 {
        return anthropic_error_type(status);
    }
    let by_code = code.as_deref().map(|c| anthropic_type_for_openai(c, 500)).filter(|t| *t != "api_error");
    by_code.unwrap_or_else(|| anthropic_type_for_openai(kind, 500))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn parse(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn anthropic_to_openai() {
        let body =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
        assert_eq!(
            parse(&anthropic_error_to_openai(529, body)),
            json!({"error": {"message": "Overloaded", "type": "service_unavailable_error", "param": null, "code": null}})
        );
        let body =
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        assert_eq!(parse(&anthropic_error_to_openai(400, body))["error"]["type"], "invalid_request_error");
        let v = parse(&anthropic_error_to_openai(
            401,
            br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
        ));
        assert_eq!(v["error"]["type"], "authentication_error");
        assert_eq!(v["error"]["message"], "invalid x-api-key");
    }

    #[test]
    fn non_json_bodies_become_the_message() {
        let v = parse(&anthropic_error_to_openai(502, b"<html>Bad Gateway</html>"));
        assert_eq!(v["error"]["message"], "<html>Bad Gateway</html>");
        assert_eq!(v["error"]["type"], "server_error");
        let v = parse(&openai_error_to_anthropic(504, b""));
        assert_eq!(
            v,
            json!({"type": "error", "error": {"type": "timeout_error", "message": "HTTP 504 from the provider"}})
        );
    }

    #[test]
    fn openai_to_anthropic() {
        let body = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        assert_eq!(
            parse(&openai_error_to_anthropic(401, body)),
            json!({"type": "error", "error": {"type": "authentication_error", "message": "Incorrect API key provided"}})
        );
        let body = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(parse(&openai_error_to_anthropic(429, body))["error"]["type"], "rate_limit_error");
        let body = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert_eq!(parse(&openai_error_to_anthropic(429, body))["error"]["type"], "billing_error");
        let body = br#"{"error":{"message":"The model `gpt-9` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        assert_eq!(parse(&openai_error_to_anthropic(404, body))["error"]["type"], "not_found_error");
        let body = br#"{"error":{"message":"boom","type":"server_error","param":null,"code":null}}"#;
        assert_eq!(parse(&openai_error_to_anthropic(500, body))["error"]["type"], "api_error");
    }

    #[test]
    fn openai_shaped_bodies_are_normalised() {
        let body = br#"[{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}]"#;
        assert_eq!(
            parse(&openai_error_normalised(400, body)),
            json!({"error": {"message": "API key not valid.", "type": "invalid_request_error", "param": null, "code": null}})
        );
        let body = br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#;
        let v = parse(&openai_error_normalised(429, body));
        assert_eq!(
            (v["error"]["type"].as_str(), v["error"]["code"].as_str()),
            (Some("requests"), Some("rate_limit_exceeded"))
        );
        assert_eq!(parse(&openai_error_normalised(502, b"<html>"))["error"]["message"], "<html>");
    }

    #[test]
    fn gemini_array_envelope() {
        let body = br#"[{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}]"#;
        let v = parse(&openai_error_to_anthropic(400, body));
        assert_eq!(
            v,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "API key not valid."}})
        );
    }

    #[test]
    fn status_table() {
        let cases = [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (409, "invalid_request_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
        ];
        for (status, kind) in cases {
            assert_eq!(anthropic_error_type(status), kind, "{status}");
        }
    }
}
