//! Client-controlled event properties and ids (`capture::properties`).
//!
//! `header_properties`: at most 50 properties; every key is lowercase, 1-200
//! chars, free of control characters and never reserved (`$...`, `team_id`,
//! `distinct_id`, ...); every value is a string free of control characters,
//! at most 1,000 chars; every prefixed header is either taken or counted as
//! rejected. Non-prefixed headers are ignored.
//!
//! `sanitize_id`: accepts exactly the trimmed ids of 1..=max chars from the
//! `$ai_trace_id` alphabet, unchanged. `trace_id`: the accepted header, else a
//! canonical lowercase UUID, the same one for the same `metadata.user_id`.

use arbitrary::Arbitrary;
use llm_gateway::capture::properties::{
    header_properties, is_reserved, sanitize_id, trace_id, MAX_NAME_CHARS, MAX_PROPERTIES, MAX_VALUE_CHARS,
    PROPERTY_HEADER_PREFIX,
};
use serde_json::Value;

#[derive(Arbitrary, Debug)]
struct Header {
    /// Prefix the name with `x-posthog-property-`, upper-casing the prefix's
    /// letters where this mask's bits are set.
    prefix: Option<u32>,
    name: String,
    value: String,
}

#[derive(Arbitrary, Debug)]
pub struct Input {
    headers: Vec<Header>,
    /// Repeat the header list to pass the 50-property cap.
    repeat: u8,
    trace_header: Option<String>,
    user_id: Option<String>,
    id: String,
    max: u8,
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_~.@()!':|".contains(c)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

pub fn run(input: Input) {
    let mut headers: Vec<(String, String)> = Vec::new();
    for _ in 0..=(input.repeat % 4) {
        for (i, h) in input.headers.iter().enumerate() {
            let name = match h.prefix {
                Some(mask) => {
                    let prefix: String = PROPERTY_HEADER_PREFIX
                        .chars()
                        .enumerate()
                        .map(|(j, c)| if mask >> (j % 32) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                        .collect();
                    format!("{prefix}{}{}", h.name, if input.repeat > 200 { i.to_string() } else { String::new() })
                }
                None => h.name.clone(),
            };
            headers.push((name, h.value.clone()));
        }
    }
    let (props, rejected) = header_properties(&headers.iter().map(|(n, v)| (n, v)).collect());
    let prefixed = headers
        .iter()
        .filter(|(n, _)| {
            n.get(..PROPERTY_HEADER_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(PROPERTY_HEADER_PREFIX))
        })
        .count();
    assert!(props.len() <= MAX_PROPERTIES, "{} properties", props.len());
    assert!(rejected <= prefixed, "rejected {rejected} of {prefixed} prefixed headers");
    assert!(props.len() <= prefixed - rejected);
    if rejected == 0 && props.len() < prefixed {
        // Only a repeated name may have been folded into an existing key.
        let names: std::collections::HashSet<String> = headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .filter(|n| n.starts_with(PROPERTY_HEADER_PREFIX))
            .collect();
        assert_eq!(names.len(), props.len());
    }
    for (key, value) in &props {
        assert!(!key.is_empty() && key.chars().count() <= MAX_NAME_CHARS, "key {key:?}");
        assert!(!key.chars().any(char::is_control), "control character in key {key:?}");
        assert_eq!(*key, key.to_ascii_lowercase(), "key not lowercased");
        assert!(!is_reserved(key) && !key.starts_with('$'), "reserved key {key:?} accepted");
        let Value::String(v) = value else { panic!("value not a string: {value:?}") };
        assert!(!v.chars().any(char::is_control), "control character in value {v:?}");
        assert!(v.chars().count() <= MAX_VALUE_CHARS, "value over the cap");
    }

    let max = usize::from(input.max);
    let trimmed = input.id.trim();
    let valid = !trimmed.is_empty() && trimmed.len() <= max && trimmed.chars().all(is_id_char);
    assert_eq!(sanitize_id(&input.id, max), valid.then(|| trimmed.to_string()), "sanitize_id({:?}, {max})", input.id);

    let id = trace_id(input.trace_header.as_deref(), input.user_id.as_deref());
    let named = input.user_id.as_deref().is_some_and(|u| !u.is_empty());
    match (input.trace_header.as_deref().and_then(|h| sanitize_id(h, 200)), id) {
        (Some(h), id) => assert_eq!(id, Some(h)),
        // A call that names no trace leaves it to the event (a fresh UUIDv4 then).
        (None, None) => assert!(!named, "a user_id gave no trace id"),
        (None, Some(id)) => {
            assert!(named, "a trace id from nothing: {id:?}");
            assert!(is_uuid(&id), "trace id {id:?} is not a canonical UUID");
            assert_eq!(trace_id(None, input.user_id.as_deref()), Some(id), "trace id from user_id not stable");
        }
    }
}
