//! Bedrock errors in Anthropic's shape, so an Anthropic client (or the
//! Chat translator after it) reads them like the first-party API's.
//!
//! Bedrock names errors by exception (the `x-amzn-errortype` header on a
//! response, `:exception-type` on a stream message) and puts the text in
//! `{"message": …}` (some services write `Message`).

use serde::{Deserialize, Serialize};

use crate::translate::anthropic_error_type;

/// Anthropic's error type for a Bedrock exception name, or None for names
/// without a counterpart. Accepts `ThrottlingException`,
/// `throttlingException` and the header form `ThrottlingException:http://…`.
pub fn exception_error_type(exception: &str) -> Option<&'static str> {
    let name = exception.split(':').next().unwrap_or_default().trim();
    let kind = match name.to_ascii_lowercase().as_str() {
        "throttlingexception" | "servicequotaexceededexception" => "rate_limit_error",
        "validationexception" => "invalid_request_error",
        "accessdeniedexception" => "permission_error",
        // Bad IAM credentials or a bad SigV4 signature (AWS's common errors).
        "unrecognizedclientexception"
        | "expiredtokenexception"
        | "invalidsignatureexception"
        | "incompletesignatureexception"
        | "missingauthenticationtokenexception" => "authentication_error",
        "resourcenotfoundexception" => "not_found_error",
        "modeltimeoutexception" => "timeout_error",
        "serviceunavailableexception" => "overloaded_error",
        "internalserverexception" | "modelstreamerrorexception" | "modelerrorexception" => "api_error",
        _ => return None,
    };
    Some(kind)
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// `{"type":"error","error":{"type","message"}}` as JSON text.
pub(super) fn anthropic_error_json(kind: &str, message: &str) -> String {
    let envelope = ErrorEnvelope { kind: "error", error: ErrorBody { kind, message } };
    // A struct of strings always serialises.
    serde_json::to_string(&envelope).unwrap_or_default()
}

#[derive(Deserialize)]
struct Body {
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

/// A Bedrock error response as an Anthropic error body; `error_type` is the
/// `x-amzn-errortype` header when there was one.
pub fn bedrock_error_to_anthropic(status: u16, error_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let kind = error_type.and_then(exception_error_type).unwrap_or_else(|| anthropic_error_type(status));
    let message = serde_json::from_slice::<Body>(body).ok().and_then(|b| b.message).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body).trim().chars().take(1000).collect::<String>();
        if text.is_empty() {
            format!("HTTP {status} from Bedrock")
        } else {
            text
        }
    });
    anthropic_error_json(kind, &message).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn exception_names() {
        assert_eq!(exception_error_type("throttlingException"), Some("rate_limit_error"));
        assert_eq!(
            exception_error_type("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            Some("invalid_request_error")
        );
        assert_eq!(exception_error_type("modelStreamErrorException"), Some("api_error"));
        assert_eq!(exception_error_type("InvalidSignatureException"), Some("authentication_error"));
        assert_eq!(exception_error_type("somethingNew"), None);
    }

    #[test]
    fn error_bodies() {
        let out = bedrock_error_to_anthropic(
            400,
            Some("ValidationException"),
            br#"{"message":"max_tokens: field required"}"#,
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap(),
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: field required"}})
        );
        let out = bedrock_error_to_anthropic(429, None, br#"{"Message":"Too many requests"}"#);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"], json!({"type": "rate_limit_error", "message": "Too many requests"}));
        let out = bedrock_error_to_anthropic(503, None, b"");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"], json!({"type": "overloaded_error", "message": "HTTP 503 from Bedrock"}));
    }
}
