//! The client's request body, parsed once.
//!
//! The body is lexed a single time into its top-level fields, each kept as
//! borrowed raw JSON; only the few small fields the gateway needs are decoded
//! further. Large fields (`messages`, `input`, `tools`) are never copied or
//! turned into a `Value`, and a rewrite re-emits the untouched fields verbatim.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::wire::Api;

/// Top-level members of a JSON object, in order, values unparsed.
pub struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// A JSON string borrowed from the body, or copied when it has escapes (serde's
/// own `Cow<str>` always copies).
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                // Room for the members SDKs and agents send, without regrowing.
                let mut out: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::with_capacity(16);
                while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("duplicate key `{}`", key.escape_debug())));
                    }
                    out.push((key, map.next_value()?));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Fields<'a> {
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Re-emits the object with `set` fields replaced (or appended) and `remove` fields dropped.
    pub fn rewrite(&self, set: &[(&str, String)], remove: &[&str]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum::<usize>() + 64);
        out.push(b'{');
        let push = |out: &mut Vec<u8>, key: &str, raw: &str| {
            if out.len() > 1 {
                out.push(b',');
            }
            // Serialising a &str into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, key);
            out.push(b':');
            out.extend_from_slice(raw.as_bytes());
        };
        for (k, v) in &self.0 {
            if remove.contains(&k.as_ref()) {
                continue;
            }
            match set.iter().find(|(sk, _)| sk == k) {
                Some((_, new)) => push(&mut out, k, new),
                None => push(&mut out, k, v.get()),
            }
        }
        for (k, new) in set {
            if self.get(k).is_none() {
                push(&mut out, k, new);
            }
        }
        out.push(b'}');
        out
    }
}

/// What the gateway needs from a request body.
pub struct ParsedRequest<'a> {
    pub fields: Fields<'a>,
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// `stream_options.include_usage`, when the client set it.
    pub include_usage: Option<bool>,
    /// OpenAI `safety_identifier`, else `user`.
    pub user: Option<Cow<'a, str>>,
    /// Anthropic `metadata.user_id`.
    pub metadata_user_id: Option<Cow<'a, str>>,
    /// `max_tokens`, `max_completion_tokens` or `max_output_tokens`, whichever is set.
    pub max_output_tokens: Option<u64>,
}

/// A client error in the body, with the offending parameter when there is one.
#[derive(Debug, PartialEq, Eq)]
pub struct BodyError {
    pub message: String,
    pub param: Option<&'static str>,
}

fn err(message: impl Into<String>, param: Option<&'static str>) -> BodyError {
    BodyError { message: message.into(), param }
}

pub fn parse(body: &[u8], api: Api) -> Result<ParsedRequest<'_>, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(err("Request body is empty; expected a JSON object", None));
    }
    let fields: Fields = serde_json::from_slice(body).map_err(|e| err(format!("Invalid JSON body: {e}"), None))?;
    let Text(model) =
        field(&fields, "model")?.ok_or_else(|| err("Missing required parameter: 'model'", Some("model")))?;
    if model.is_empty() {
        return Err(err("'model' must not be empty", Some("model")));
    }
    let stream = field::<bool>(&fields, "stream")?.unwrap_or(false);
    let include_usage = match field::<StreamOptions>(&fields, "stream_options")? {
        Some(o) => o.include_usage,
        None => None,
    };
    let list_field = match api {
        Api::Chat | Api::Messages => Some("messages"),
        Api::Responses => None,
    };
    if let Some(name) = list_field {
        match fields.get(name) {
            None => return Err(err(format!("Missing required parameter: '{name}'"), Some(static_name(name)))),
            Some(raw) if !raw.get().starts_with('[') => {
                return Err(err(format!("'{name}' must be an array"), Some(static_name(name))))
            }
            Some(_) => {}
        }
    }
    let user = match field::<Text>(&fields, "safety_identifier")? {
        Some(s) => Some(s),
        None => field(&fields, "user")?,
    }
    .map(|Text(s)| s);
    let metadata_user_id = field::<Metadata>(&fields, "metadata")?.and_then(|m| m.user_id);
    // Each is checked for its type; the first one set counts.
    let mut max_output_tokens = None;
    for key in ["max_tokens", "max_completion_tokens", "max_output_tokens"] {
        let value = field::<u64>(&fields, key)?;
        max_output_tokens = max_output_tokens.or(value);
    }
    Ok(ParsedRequest { fields, model, stream, include_usage, user, metadata_user_id, max_output_tokens })
}

fn static_name(name: &str) -> &'static str {
    match name {
        "messages" => "messages",
        _ => "input",
    }
}

/// How deeply a field the gateway reads may nest (arrays and objects).
pub const MAX_NESTING: usize = 128;

/// Whether the JSON text `raw` nests arrays and objects more than `max` deep.
/// Stops at the first level past `max`: nothing more is read.
fn nests_deeper_than(raw: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in raw {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Decodes one top-level field; `null` counts as absent. A wrong type names the
/// field, and so does nesting past [`MAX_NESTING`].
fn field<'a, T: Deserialize<'a>>(fields: &Fields<'a>, key: &'static str) -> Result<Option<T>, BodyError> {
    match fields.get(key) {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) if nests_deeper_than(raw.get().as_bytes(), MAX_NESTING) => {
            Err(err(format!("'{key}' is nested more than {MAX_NESTING} levels deep"), Some(key)))
        }
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|e| err(format!("Invalid type for '{key}': {}", first_clause(&e.to_string())), Some(key))),
    }
}

fn first_clause(msg: &str) -> &str {
    msg.split(" at line ").next().unwrap_or(msg)
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow)]
    user_id: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn reads_the_needed_fields() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,
            "stream_options":{"include_usage":false},"user":"u1","max_completion_tokens":50}"#;
        let p = parse(body, Api::Chat).unwrap();
        assert_eq!(p.model, "gpt-4o");
        assert!(p.stream);
        assert_eq!(p.include_usage, Some(false));
        assert_eq!(p.user.as_deref(), Some("u1"));
        assert_eq!(p.max_output_tokens, Some(50));
    }

    #[test]
    fn anthropic_metadata_and_safety_identifier() {
        let body =
            br#"{"model":"claude-x","messages":[],"metadata":{"user_id":"abc"},"safety_identifier":"s","user":"u"}"#;
        let p = parse(body, Api::Messages).unwrap();
        assert_eq!(p.metadata_user_id.as_deref(), Some("abc"));
        assert_eq!(p.user.as_deref(), Some("s"));
        assert!(!p.stream);
    }

    #[test]
    fn client_errors() {
        let cases: [(&[u8], Api, &str); 11] = [
            (b"", Api::Chat, "empty"),
            (b"{", Api::Chat, "Invalid JSON"),
            (b"[1]", Api::Chat, "Invalid JSON"),
            (br#"{"messages":[]}"#, Api::Chat, "'model'"),
            (br#"{"model":5,"messages":[]}"#, Api::Chat, "Invalid type for 'model'"),
            (br#"{"model":"","messages":[]}"#, Api::Chat, "must not be empty"),
            (br#"{"model":"m","messages":[],"stream":"yes"}"#, Api::Chat, "'stream'"),
            (br#"{"model":"m","messages":"hi"}"#, Api::Messages, "'messages' must be an array"),
            (br#"{"model":"m"}"#, Api::Chat, "Missing required parameter: 'messages'"),
            (br#"{"model":"m","model":"n","messages":[]}"#, Api::Chat, "duplicate key"),
            (b"{\"model\":\"\xff\",\"messages\":[]}", Api::Chat, "Invalid JSON"),
        ];
        for (body, ep, needle) in cases {
            let e = parse(body, ep).err().unwrap();
            assert!(e.message.contains(needle), "{} should contain {needle}", e.message);
        }
        assert!(parse(br#"{"model":"m","input":"x"}"#, Api::Responses).is_ok());
    }

    #[test]
    fn deep_nesting_inside_skipped_fields_does_not_recurse() {
        // Raw fields are skipped without recursion; the provider judges their content.
        let deep = format!(r#"{{"model":"m","messages":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(deep.as_bytes(), Api::Chat).is_ok());
        let deep_meta =
            format!(r#"{{"model":"m","messages":[],"metadata":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(deep_meta.as_bytes(), Api::Chat).is_err());
    }

    /// The errors table's promise: nesting past 128 levels in a field the gateway
    /// reads is a 400 naming the field, objects (skipped by the decoder) included.
    #[test]
    fn nesting_past_128_levels_in_a_read_field_is_refused() {
        let nested = |levels: usize| format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels));
        for (key, endpoint) in [("metadata", Api::Messages), ("stream_options", Api::Chat), ("user", Api::Chat)] {
            for levels in [129, 200, 100_000] {
                let body = format!(r#"{{"model":"m","messages":[],"{key}":{}}}"#, nested(levels));
                let e = parse(body.as_bytes(), endpoint).err().unwrap_or_else(|| panic!("{key} {levels} accepted"));
                assert_eq!(e.param, Some(key), "{key} {levels}");
                assert!(e.message.contains("nested more than 128 levels"), "{key}: {}", e.message);
            }
        }
        // 128 levels of an object the gateway reads past are fine; so is any depth elsewhere.
        let body = format!(r#"{{"model":"m","messages":[],"metadata":{{"user_id":"u","x":{}}}}}"#, nested(127));
        assert_eq!(parse(body.as_bytes(), Api::Messages).unwrap().metadata_user_id.as_deref(), Some("u"));
        let body = format!(r#"{{"model":"m","messages":[],"tools":{}}}"#, nested(100_000));
        assert!(parse(body.as_bytes(), Api::Messages).is_ok());
        // Brackets inside strings do not count.
        let body = format!(r#"{{"model":"m","messages":[],"metadata":{{"user_id":"{}"}}}}"#, "[{".repeat(500));
        assert!(parse(body.as_bytes(), Api::Messages).is_ok());
        assert!(!nests_deeper_than(br#"{"a":"\"[[[[["}"#, 2));
    }

    #[test]
    fn rewrite_keeps_untouched_fields_verbatim() {
        let body = br#"{"model":"alias","messages":[ {"a" : 1} ],"x\"y":2}"#;
        let p = parse(body, Api::Chat).unwrap();
        let out = p.fields.rewrite(
            &[("model", "\"real\"".into()), ("stream_options", r#"{"include_usage":true}"#.into())],
            &["x\"y"],
        );
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"real","messages":[ {"a" : 1} ],"stream_options":{"include_usage":true}}"#
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "real");
    }
}
