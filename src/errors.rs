//! Error replies the filter makes itself, in the client's API format.
//!
//! One body serves both SDK families: OpenAI's `{"error": {message, type,
//! param, code}}`, and on Anthropic routes the same object plus Anthropic's
//! top-level `"type": "error"` and its error type names.

use serde_json::json;

use crate::wire::Api;

/// What went wrong, independent of the wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    TooLarge,
    UpgradeRequired,
    RateLimited,
    Internal,
    BadGateway,
    Unavailable,
    Timeout,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Permission => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::TooLarge => 413,
            ErrorKind::UpgradeRequired => 426,
            ErrorKind::RateLimited => 429,
            ErrorKind::Internal => 500,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
        }
    }

    /// The closest kind for a status the filter did not choose (Envoy's own replies).
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Authentication,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            405 => ErrorKind::MethodNotAllowed,
            408 => ErrorKind::RequestTimeout,
            413 => ErrorKind::TooLarge,
            429 => ErrorKind::RateLimited,
            502 => ErrorKind::BadGateway,
            503 => ErrorKind::Unavailable,
            504 => ErrorKind::Timeout,
            400..=499 => ErrorKind::InvalidRequest,
            _ => ErrorKind::Internal,
        }
    }

    fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::NotFound
            | ErrorKind::MethodNotAllowed
            | ErrorKind::RequestTimeout
            | ErrorKind::TooLarge
            | ErrorKind::UpgradeRequired => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Internal | ErrorKind::BadGateway => "server_error",
            ErrorKind::Unavailable => "service_unavailable_error",
            ErrorKind::Timeout => "timeout_error",
        }
    }

    /// Anthropic's documented error types (docs/protocols/anthropic-messages.md, Errors).
    fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::MethodNotAllowed
            | ErrorKind::RequestTimeout
            | ErrorKind::UpgradeRequired => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::TooLarge => "request_too_large",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Internal | ErrorKind::BadGateway => "api_error",
            ErrorKind::Unavailable => "overloaded_error",
            ErrorKind::Timeout => "timeout_error",
        }
    }

    fn default_code(self) -> Option<&'static str> {
        match self {
            ErrorKind::Authentication => Some("invalid_api_key"),
            ErrorKind::RateLimited => Some("rate_limit_exceeded"),
            ErrorKind::NotFound => Some("not_found"),
            ErrorKind::MethodNotAllowed => Some("method_not_allowed"),
            ErrorKind::TooLarge => Some("request_too_large"),
            ErrorKind::BadGateway => Some("upstream_unreachable"),
            ErrorKind::Timeout => Some("upstream_timeout"),
            _ => None,
        }
    }
}

/// A complete local reply: status, extra headers and a JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// Builder for an error reply; `param` and `code` are optional.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into(), param: None, code: kind.default_code(), headers: Vec::new() }
    }

    pub fn param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The reply in `api`'s error shape.
    pub fn reply(self, api: Api) -> LocalReply {
        let body = if api.anthropic_errors() {
            json!({"type": "error", "error": {
                "message": self.message,
                "type": self.kind.anthropic_type(),
                "param": self.param,
                "code": self.code,
            }})
        } else {
            json!({"error": {
                "message": self.message,
                "type": self.kind.openai_type(),
                "param": self.param,
                "code": self.code,
            }})
        };
        let mut headers = self.headers;
        headers.push(("content-type", "application/json".to_string()));
        LocalReply { status: self.kind.status(), headers, body: body.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn openai_shape_has_all_four_keys() {
        let r = ApiError::new(ErrorKind::InvalidRequest, "bad").param("model").reply(Api::Chat);
        assert_eq!(r.status, 400);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["message"], "bad");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert!(v["error"]["code"].is_null());
        assert!(v.get("type").is_none());
    }

    #[test]
    fn anthropic_shape_adds_top_level_type_and_anthropic_names() {
        let r = ApiError::new(ErrorKind::NotFound, "nope").reply(Api::Messages);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "not_found_error");
        assert_eq!(v["error"]["code"], "not_found");
    }

    #[test]
    fn statuses_round_trip() {
        for s in [401, 403, 404, 405, 408, 413, 429, 502, 503, 504] {
            assert_eq!(ErrorKind::from_status(s).status(), s);
        }
        assert_eq!(ErrorKind::from_status(418), ErrorKind::InvalidRequest);
        assert_eq!(ErrorKind::from_status(500), ErrorKind::Internal);
    }
}

/// Envoy's own error replies (upstream unreachable, timeout, body too large)
/// are plain text; this maps one to an API error, or `None` when the response
/// came from the provider (`code_details == "via_upstream"`) and must pass untouched.
pub fn from_envoy_reply(status: u16, code_details: &str, upstream: &str) -> Option<ApiError> {
    if code_details == "via_upstream" || status < 400 {
        return None;
    }
    let (kind, message) = if code_details.contains("timeout") {
        (ErrorKind::Timeout, format!("The provider {upstream} did not answer in time"))
    } else if code_details.contains("payload_too_large") {
        (ErrorKind::TooLarge, "Request body is larger than the gateway accepts".to_string())
    } else if code_details.starts_with("upstream_reset")
        || code_details.contains("no_healthy_upstream")
        || code_details.contains("cluster_not_found")
        || code_details.contains("no_route")
    {
        (ErrorKind::BadGateway, format!("The provider {upstream} could not be reached"))
    } else {
        let kind = ErrorKind::from_status(status);
        (kind, format!("The gateway could not complete the request ({status})"))
    };
    Some(ApiError::new(kind, message))
}

#[cfg(test)]
mod envoy_reply_tests {
    use super::*;

    #[test]
    fn maps_envoy_local_replies() {
        let cases = [
            (503, "upstream_reset_before_response_started{remote_connection_failure}", 502),
            (503, "no_healthy_upstream", 502),
            (504, "response_timeout", 504),
            (413, "request_payload_too_large", 413),
            (500, "filter_chain_not_found", 500),
        ];
        for (status, details, want) in cases {
            assert_eq!(from_envoy_reply(status, details, "openai").unwrap().status(), want, "{details}");
        }
        assert!(from_envoy_reply(500, "via_upstream", "openai").is_none());
        assert!(from_envoy_reply(200, "", "openai").is_none());
    }
}
