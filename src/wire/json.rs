//! Lenient readers for provider JSON.
//!
//! Wire structs that keep a field as borrowed `&RawValue` (so a field of an
//! unexpected type never makes the whole body unreadable, losing its usage)
//! decode it with these helpers, which ignore what does not fit. The usage
//! readers' per-event path reads in one pass instead ([`super::lenient`]).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// Decodes an optional raw member into `T`, or `None` if it does not fit.
pub fn decode<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
}

/// A JSON string member.
pub fn string(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    decode(raw)
}

/// A token count: a non-negative number (an integral float is accepted).
pub fn count(raw: Option<&RawValue>) -> Option<u64> {
    let number: serde_json::Number = decode(raw)?;
    number.as_u64().or_else(|| number.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))
}

/// A human-readable message from an error member: the string itself, its
/// `message`, a nested `error.message`, or else the raw JSON.
pub fn error_message(raw: Option<&RawValue>) -> Option<String> {
    let raw = raw?;
    if let Some(s) = string(Some(raw)) {
        return Some(s.into_owned());
    }
    #[derive(Deserialize)]
    struct Obj<'a> {
        #[serde(borrow, default)]
        message: Option<&'a RawValue>,
        #[serde(borrow, default)]
        error: Option<&'a RawValue>,
    }
    let obj: Option<Obj> = decode(Some(raw));
    if let Some(obj) = obj {
        if let Some(message) = string(obj.message) {
            return Some(message.into_owned());
        }
        if let Some(message) = obj.error.and_then(|e| error_message(Some(e))) {
            return Some(message);
        }
    }
    Some(raw.get().to_owned())
}

/// Appends `s` as a JSON string literal, escaped as serde_json escapes it
/// (`"`, `\\`, and control characters), without building a `Value`.
pub fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// `s` as a JSON string literal.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_quoted(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> &RawValue {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn quoted_strings_match_serde_json() {
        let every_ascii: String = (0u8..128).map(char::from).collect();
        for s in ["", "plain", "a\"b\\c", "line\nbreak\ttab\r", "\u{0}\u{1f}\u{7f}", "é ✓ 😀 \u{2028}", &every_ascii]
        {
            assert_eq!(quoted(s), serde_json::Value::from(s).to_string(), "{s:?}");
        }
    }

    #[test]
    fn counts_accept_integers_and_integral_floats_only() {
        assert_eq!(count(Some(raw("12"))), Some(12));
        assert_eq!(count(Some(raw("12.0"))), Some(12));
        assert_eq!(count(Some(raw("-1"))), None);
        assert_eq!(count(Some(raw("\"12\""))), None);
        assert_eq!(count(None), None);
    }

    #[test]
    fn error_messages() {
        assert_eq!(error_message(Some(raw("\"boom\""))).unwrap(), "boom");
        assert_eq!(error_message(Some(raw(r#"{"type":"x","message":"Overloaded"}"#))).unwrap(), "Overloaded");
        assert_eq!(error_message(Some(raw(r#"{"error":{"message":"inner"}}"#))).unwrap(), "inner");
        assert_eq!(error_message(Some(raw(r#"{"code":5}"#))).unwrap(), r#"{"code":5}"#);
    }
}
