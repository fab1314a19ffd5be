//! Helpers shared by the translators: field decoding, JSON and SSE writing,
//! and the stop-reason and usage mappings both directions agree on.

use std::fmt::Display;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::TranslateError;
use crate::request::Fields;
pub(super) use crate::wire::Str;

pub(super) fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(message.into())
}

pub(super) fn unsupported(message: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported(message.into())
}

/// Lexes a body into its top-level members, values left raw.
pub(super) fn parse_fields(body: &[u8]) -> Result<Fields<'_>, TranslateError> {
    serde_json::from_slice(body).map_err(|e| invalid(format!("Invalid JSON body: {e}")))
}

/// Decodes one top-level member; `null` counts as absent. Errors name the member.
pub(super) fn field<'a, T: Deserialize<'a>>(fields: &Fields<'a>, key: &str) -> Result<Option<T>, TranslateError> {
    match fields.get(key) {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => decode(raw, key).map(Some),
    }
}

/// Decodes a raw value; errors name `what`.
/// `what` is formatted only for the error (`format_args!` costs nothing otherwise).
pub(super) fn decode<'a, T: Deserialize<'a>>(raw: &'a RawValue, what: impl Display) -> Result<T, TranslateError> {
    serde_json::from_str(raw.get()).map_err(|e| invalid_json(what, &e))
}

/// A member that did not decode, named, without serde's position in the member.
pub(super) fn invalid_json(what: impl Display, e: &serde_json::Error) -> TranslateError {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
    invalid(format!("Invalid '{what}': {msg}"))
}

/// Decodes a JSON string in one pass, borrowing it from the body unless it has escapes.
pub(super) fn decode_str<'a>(raw: &'a RawValue, what: &str) -> Result<Str<'a>, TranslateError> {
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Str<'a>);
    decode::<Text>(raw, what).map(|t| t.0)
}

/// A JSON string passed through as the client wrote it (a tool's description):
/// lexed, but never unescaped nor escaped again.
#[derive(Clone, Copy, Serialize)]
#[serde(transparent)]
pub(super) struct RawStr<'a>(&'a RawValue);

impl<'de: 'a, 'a> Deserialize<'de> for RawStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        match raw.get().starts_with('"') {
            true => Ok(RawStr(raw)),
            false => Err(serde::de::Error::invalid_type(serde::de::Unexpected::Other(raw.get()), &"a string")),
        }
    }
}

/// A tool without parameters takes none; Anthropic requires a schema.
pub(super) const EMPTY_TOOL_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// Raw JSON the gateway writes itself (a default schema), lexed where it is used.
pub(super) fn constant(json: &'static str) -> Result<&'static RawValue, TranslateError> {
    serde_json::from_str(json).map_err(|e| invalid(e.to_string()))
}

/// Serialises a value the translators built. Their types (structs with string
/// keys, strings, numbers, raw JSON) cannot fail to serialise, so the empty
/// fallback is never taken.
pub(super) fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Serialises `value` straight onto `buf`, not into a string copied in after;
/// `null` if it fails, which [`to_json`]'s types cannot.
pub(super) fn write_json<T: Serialize + ?Sized>(buf: &mut Vec<u8>, value: &T) {
    let start = buf.len();
    if serde_json::to_writer(&mut *buf, value).is_err() {
        buf.truncate(start);
        buf.extend_from_slice(b"null");
    }
}

/// Appends a named SSE event whose data is `value` as JSON.
pub(super) fn push_json_event<T: Serialize + ?Sized>(out: &mut Vec<u8>, event: &str, value: &T) {
    crate::wire::stream::push_named_with(out, event, |out| write_json(out, value));
}

/// Appends an unnamed SSE event (OpenAI's format) whose data is `value` as JSON.
pub(super) fn push_json_data<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    crate::wire::stream::push_data_with(out, |out| write_json(out, value));
}

/// Writes a JSON object member by member.
pub(super) struct ObjectWriter {
    buf: Vec<u8>,
    /// No member written yet.
    empty: bool,
}

impl ObjectWriter {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self::after(Vec::with_capacity(capacity))
    }

    /// An object written after `buf`'s bytes (an event's head), so a large
    /// object is not copied into its event afterwards.
    pub(super) fn after(mut buf: Vec<u8>) -> Self {
        buf.push(b'{');
        ObjectWriter { buf, empty: true }
    }

    fn key(&mut self, key: &str) {
        self.comma();
        write_json(&mut self.buf, key);
        self.buf.push(b':');
    }

    fn comma(&mut self) {
        if !std::mem::replace(&mut self.empty, false) {
            self.buf.push(b',');
        }
    }

    /// Adds a member whose value is already JSON text.
    pub(super) fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.buf.extend_from_slice(json.as_bytes());
    }

    /// Adds an array member whose items are already JSON text.
    pub(super) fn raw_array(&mut self, key: &str, items: impl IntoIterator<Item = String>) {
        self.key(key);
        self.buf.push(b'[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.buf.extend_from_slice(item.as_bytes());
        }
        self.buf.push(b']');
    }

    /// Adds members already written as JSON (`"a":1,"b":2`, no braces).
    pub(super) fn members(&mut self, json: &str) {
        if json.is_empty() {
            return;
        }
        self.comma();
        self.buf.extend_from_slice(json.as_bytes());
    }

    pub(super) fn value<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        self.key(key);
        write_json(&mut self.buf, value);
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        self.buf.push(b'}');
        self.buf
    }
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub(super) fn finish_reason_for(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn (a server tool paused the turn) and anything new.
        _ => "stop",
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`. A turn that produced tool
/// calls is `tool_use` whatever the provider said (Gemini's compatible
/// endpoint has answered `stop` there), since that is what tells an Anthropic
/// client to run the tools.
pub(super) fn stop_reason_for(finish_reason: Option<&str>, has_tool_calls: bool) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        Some("tool_calls") | Some("function_call") => "tool_use",
        _ if has_tool_calls => "tool_use",
        _ => "end_turn",
    }
}

/// Splits `data:<media type>;base64,<data>`; None for other URLs and for
/// data URLs that are not base64 (Anthropic sources take base64 only).
pub(super) fn parse_base64_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

/// An error body's `message`, or a short excerpt of a body that is not JSON.
pub(super) fn fallback_message(status: u16, body: &[u8]) -> String {
    const MAX: usize = 1000;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("HTTP {status} from the provider");
    }
    let mut end = text.len().min(MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        assert_eq!(parse_base64_data_url("data:image/png;base64,iVBO"), Some(("image/png", "iVBO")));
        assert_eq!(parse_base64_data_url("data:text/plain,hello"), None);
        assert_eq!(parse_base64_data_url("https://x/y.png"), None);
    }

    #[test]
    fn fallback_message_cuts_on_char_boundary() {
        let body = "é".repeat(600);
        let m = fallback_message(502, body.as_bytes());
        assert!(m.len() <= 1000 && m.chars().all(|c| c == 'é'));
        assert_eq!(fallback_message(503, b"  "), "HTTP 503 from the provider");
    }
}
