//! Redis over HTTP: `EVAL` through webdis, and its JSON answers.

use std::fmt;

use serde_json::Value;

/// One webdis call for the filter to dispatch on `limits.cluster`:
/// `POST /` with the command path as the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebdisRequest {
    pub method: &'static str,
    pub path: &'static str,
    /// `EVAL/<script>/<numkeys>/<key>…/<arg>…`, every segment percent-encoded.
    pub body: String,
}

impl WebdisRequest {
    /// `EVAL` of `script` with `keys` and `args`.
    pub fn eval<K: AsRef<str>, A: AsRef<str>>(script: &str, keys: &[K], args: &[A]) -> WebdisRequest {
        let mut body = String::with_capacity(script.len() * 2 + 64 * (keys.len() + args.len()));
        body.push_str("EVAL/");
        push_encoded(&mut body, script);
        body.push('/');
        body.push_str(&keys.len().to_string());
        for segment in keys.iter().map(AsRef::as_ref).chain(args.iter().map(AsRef::as_ref)) {
            body.push('/');
            push_encoded(&mut body, segment);
        }
        WebdisRequest { method: "POST", path: "/", body }
    }

    /// Headers for `dispatch_http_call`, with `authority` from `limits.authority`.
    pub fn headers<'a>(&'a self, authority: &'a str) -> Vec<(&'static str, &'a str)> {
        vec![(":method", self.method), (":path", self.path), (":authority", authority), ("content-type", "text/plain")]
    }
}

/// Percent-encodes everything but `A-Z a-z 0-9 - _`: webdis splits on `/`,
/// reads a `.` in the last segment as an output format and `+` as a space.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    push_encoded(&mut out, s);
    out
}

fn push_encoded(out: &mut String, s: &str) {
    use std::fmt::Write;
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// The store could not answer: the filter fails open or closed on any of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// No response: connection failure or timeout (status 0).
    NoResponse,
    /// webdis answered a non-200 status (503: Redis unreachable; 403: command not allowed).
    Status(u32),
    /// Redis answered an error (`{"EVAL": [false, "ERR …"]}`), e.g. a script error.
    Redis(String),
    /// The answer is not what the script returns.
    Malformed(String),
}

/// Redis (or Envoy's `redis_proxy` in front of a Redis Cluster) refused the
/// command before running it: a slot moving or failing over (`TRYAGAIN`,
/// `CLUSTERDOWN`, `MOVED`, `ASK`, `READONLY`, `MASTERDOWN`), a node still
/// loading or busy, or no node for the slot (Envoy's `no upstream host`).
const NOT_RUN: [&str; 9] =
    ["TRYAGAIN", "CLUSTERDOWN", "MOVED ", "ASK ", "READONLY", "MASTERDOWN", "LOADING", "BUSY ", "no upstream host"];

impl StoreError {
    /// Whether the command certainly did not run, so sending it again cannot
    /// count anything twice: webdis's 503 (it could not reach Redis), or one of
    /// the refusals above. Envoy's `upstream failure` is not one: it also
    /// answers a command that timed out after reaching Redis.
    pub fn nothing_applied(&self) -> bool {
        match self {
            StoreError::Status(503) => true,
            StoreError::Redis(e) => NOT_RUN.iter().any(|p| e.starts_with(p)),
            _ => false,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NoResponse => f.write_str("no response from the store"),
            StoreError::Status(s) => write!(f, "store answered status {s}"),
            StoreError::Redis(e) => write!(f, "redis error: {e}"),
            StoreError::Malformed(e) => write!(f, "unexpected store answer: {e}"),
        }
    }
}

const MAX_ERROR_CHARS: usize = 200;

/// The array an `EVAL` returned, from webdis's `{"EVAL": [...]}`.
pub(crate) fn eval_array(status: u32, body: &[u8]) -> Result<Vec<Value>, StoreError> {
    match status {
        200 => {}
        0 => return Err(StoreError::NoResponse),
        s => return Err(StoreError::Status(s)),
    }
    let mut v: Value = serde_json::from_slice(body).map_err(|_| StoreError::Malformed("not JSON".into()))?;
    match v.get_mut("EVAL").map(Value::take) {
        Some(Value::Array(items)) => match items.as_slice() {
            [Value::Bool(false), Value::String(e)] => Err(StoreError::Redis(e.chars().take(MAX_ERROR_CHARS).collect())),
            _ => Ok(items),
        },
        Some(other) => Err(StoreError::Malformed(format!("EVAL returned {}", kind(&other)))),
        None => Err(StoreError::Malformed("no EVAL member".into())),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_webdis_could_misread() {
        assert_eq!(percent_encode("aZ09-_"), "aZ09-_");
        assert_eq!(percent_encode("a/b.c+d e%"), "a%2Fb%2Ec%2Bd%20e%25");
        assert_eq!(percent_encode("--x\n\ty"), "--x%0A%09y");
        assert_eq!(percent_encode("ü"), "%C3%BC");
    }

    #[test]
    fn eval_body() {
        let r = WebdisRequest::eval("return 1\n", &["k:1"], &["10", "a.b"]);
        assert_eq!((r.method, r.path), ("POST", "/"));
        assert_eq!(r.body, "EVAL/return%201%0A/1/k%3A1/10/a%2Eb");
        let none: [&str; 0] = [];
        assert_eq!(WebdisRequest::eval("x", &none, &none).body, "EVAL/x/0");
        let h = r.headers("webdis");
        assert!(h.contains(&(":authority", "webdis")) && h.contains(&(":method", "POST")));
        assert!(!h.iter().any(|(k, _)| k.eq_ignore_ascii_case("connection")));
    }

    #[test]
    fn eval_answers() {
        assert_eq!(eval_array(200, br#"{"EVAL":[1,"a"]}"#).unwrap(), vec![Value::from(1), Value::from("a")]);
        assert_eq!(eval_array(0, b""), Err(StoreError::NoResponse));
        assert_eq!(eval_array(503, b""), Err(StoreError::Status(503)));
        assert_eq!(eval_array(200, br#"{"EVAL":[false,"ERR boom"]}"#), Err(StoreError::Redis("ERR boom".into())));
        for garbage in [&b"<html>"[..], b"{}", br#"{"GET":[1]}"#, br#"{"EVAL":1}"#, br#"{"EVAL":null}"#, b""] {
            assert!(matches!(eval_array(200, garbage), Err(StoreError::Malformed(_))), "{garbage:?}");
        }
        let long = format!(r#"{{"EVAL":[false,"{}"]}}"#, "x".repeat(5000));
        match eval_array(200, long.as_bytes()) {
            Err(StoreError::Redis(e)) => assert_eq!(e.len(), MAX_ERROR_CHARS),
            other => panic!("{other:?}"),
        }
        assert!(StoreError::Status(503).to_string().contains("503"));
    }

    #[test]
    fn refusals_before_running_are_told_from_maybe_applied_failures() {
        for e in [
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "MOVED 1409 127.0.0.1:7104",
            "ASK 1409 127.0.0.1:7104",
            "no upstream host",
            "LOADING Redis is loading",
        ] {
            assert!(StoreError::Redis(e.into()).nothing_applied(), "{e}");
        }
        assert!(StoreError::Status(503).nothing_applied());
        for e in [
            StoreError::Redis("upstream failure".into()),
            StoreError::Redis("ERR script".into()),
            StoreError::NoResponse,
            StoreError::Status(500),
            StoreError::Malformed("x".into()),
        ] {
            assert!(!e.nothing_applied(), "{e:?}");
        }
    }
}
