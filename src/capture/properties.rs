//! Client-supplied event properties and ids, made safe to put in an event.
//!
//! Everything here comes from request headers or bodies, so it is untrusted:
//! it is bounded in size and count, and it can never set a key the gateway
//! owns (billing region, team, product, token counts, ...).

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::wire::header_pairs::Headers;

/// Request headers `x-posthog-property-<name>: <value>` become event
/// properties (matched in any case).
pub const PROPERTY_HEADER_PREFIX: &str = "x-posthog-property-";
/// At most this many client properties per event; the rest are rejected.
pub const MAX_PROPERTIES: usize = 50;
/// Longer property names are rejected (not cut: cut names could collide).
pub const MAX_NAME_CHARS: usize = 200;
/// Longer property values are cut to this many characters.
pub const MAX_VALUE_CHARS: usize = 1_000;
/// Cap for client-supplied ids (trace id, distinct id).
pub const MAX_ID_CHARS: usize = 200;

/// Namespace the Python llm-gateway hashes non-UUID trace ids under
/// (`_TRACE_ID_NAMESPACE`, `services/llm-gateway/src/llm_gateway/callbacks/posthog.py`
/// in PostHog/posthog, commit 00c5d0b7). Same namespace, same input, same
/// trace id, so traces keep grouping across both gateways.
const TRACE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x8d4f6b7e_6a3e_4f3a_9f3b_3b6f4d2e8a1a);

/// Keys a client may never set, besides every key starting with `$`.
///
/// The `$` rule covers PostHog's whole system namespace at once (`$ai_*`,
/// `$groups`, `$group_N`, `$set`, `$set_once`, `$lib*`, `$feature/*`,
/// `$process_person_profile`, ...), including names PostHog adds later. The
/// list covers the plain names that the gateway sets or that PostHog reads
/// from the event envelope.
const RESERVED_PLAIN_KEYS: &[&str] =
    &["team_id", "distinct_id", "token", "api_key", "uuid", "timestamp", "event", "ai_product"];

/// Whether a property key is gateway-owned. Compared case-insensitively, so
/// `Team_ID` cannot shadow `team_id` in a case-insensitive query.
pub fn is_reserved(key: &str) -> bool {
    key.starts_with('$') || RESERVED_PLAIN_KEYS.iter().any(|reserved| key.eq_ignore_ascii_case(reserved))
}

/// Event properties from `x-posthog-property-*` request headers, and how many
/// headers were rejected (reserved, empty or over-long name, or over the
/// count limit).
///
/// Names are lowercased, as Envoy and the Python gateway do. Values lose
/// control characters (CR, LF, NUL, DEL, C1) and are cut to
/// [`MAX_VALUE_CHARS`]. A repeated name keeps the last value.
pub fn header_properties(headers: &Headers) -> (Map<String, Value>, usize) {
    let mut properties = Map::new();
    let mut rejected = 0;
    for (name, value) in headers.iter() {
        let Some(key) = strip_prefix_ignore_case(name, PROPERTY_HEADER_PREFIX) else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        let acceptable = !key.is_empty()
            && key.chars().count() <= MAX_NAME_CHARS
            && !key.chars().any(char::is_control)
            && !is_reserved(&key)
            && (properties.len() < MAX_PROPERTIES || properties.contains_key(&key));
        if !acceptable {
            rejected += 1;
            continue;
        }
        properties.insert(key, Value::String(clean_value(value)));
    }
    (properties, rejected)
}

fn strip_prefix_ignore_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        name.get(prefix.len()..)
    } else {
        None
    }
}

fn clean_value(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(MAX_VALUE_CHARS).collect()
}

/// Whether `c` may appear in a client id: PostHog's `$ai_trace_id` alphabet,
/// letters, digits and `- _ ~ . @ ( ) ! ' : |` (docs/protocols/posthog.md). ASCII only,
/// so ids stay safe in trace URLs.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_~.@()!':|".contains(c)
}

/// A client-supplied id, or `None` if it is unusable.
///
/// Surrounding whitespace is trimmed. An id with any character outside the
/// `$ai_trace_id` alphabet, or longer than `max` characters, is rejected
/// rather than repaired: stripping or cutting would silently merge distinct
/// ids (`a b` and `ab`, two ids sharing a long prefix) into one trace.
pub fn sanitize_id(s: &str, max: usize) -> Option<String> {
    let id = s.trim();
    if id.is_empty() || id.len() > max || !id.chars().all(is_id_char) {
        return None;
    }
    Some(id.to_string())
}

/// The `$ai_trace_id` of a call.
///
/// 1. The `x-posthog-trace-id` header, if [`sanitize_id`] accepts it.
/// 2. Else Anthropic's `metadata.user_id` (Claude Code puts a session JSON
///    blob there), normalised exactly as the Python gateway's
///    `_normalize_trace_id` does: a value that parses as a UUID becomes its
///    canonical lowercase form, anything else becomes UUIDv5 of its UTF-8
///    bytes under [`TRACE_ID_NAMESPACE`].
/// 3. Else `None`: the event gets a fresh UUIDv4 when it is built.
pub fn trace_id(header: Option<&str>, anthropic_user_id: Option<&str>) -> Option<String> {
    if let Some(id) = header.and_then(|h| sanitize_id(h, MAX_ID_CHARS)) {
        return Some(id);
    }
    match anthropic_user_id {
        Some(raw) if !raw.is_empty() => Some(match parse_uuid_like_python(raw) {
            Some(uuid) => hyphenated(uuid),
            None => hyphenated(Uuid::new_v5(&TRACE_ID_NAMESPACE, raw.as_bytes())),
        }),
        _ => None,
    }
}

/// Python's `uuid.UUID(str)` parsing: drop `urn:` and `uuid:`, strip braces
/// at both ends, drop every `-`, then exactly 32 hex digits. (Python's
/// `int(x, 16)` would also take surrounding spaces and `_` between digits;
/// ids like that do not occur in practice and hash instead.)
fn parse_uuid_like_python(raw: &str) -> Option<Uuid> {
    let hex: String = raw
        .replace("urn:", "")
        .replace("uuid:", "")
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|&c| c != '-')
        .collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok().map(Uuid::from_u128)
}

/// A fresh random UUIDv4, for event uuids and trace ids. uuid's `fast-rng`
/// draws them from rand's thread-local ChaCha generator, seeded (and reseeded)
/// from WASI `random_get`, so a request no longer makes two `random_get`
/// calls into Envoy.
pub fn new_uuid() -> String {
    hyphenated(Uuid::new_v4())
}

/// The lowercase hyphenated form, encoded directly (`to_string` goes through
/// the formatting machinery, several times slower in V8).
fn hyphenated(uuid: Uuid) -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid.hyphenated().encode_lower(&mut buf).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().copied().collect()
    }

    #[test]
    fn header_properties_take_the_prefixed_headers_in_any_case() {
        let (props, rejected) = header_properties(&headers(&[
            ("x-posthog-property-feature", "chat"),
            ("X-PostHog-Property-Run_ID", "r1"),
            ("x-posthog-flag-beta", "on"),
            ("content-type", "application/json"),
        ]));
        assert_eq!(rejected, 0);
        assert_eq!(props.len(), 2);
        assert_eq!(props["feature"], "chat");
        assert_eq!(props["run_id"], "r1");
    }

    #[test]
    fn reserved_keys_are_rejected_and_counted() {
        let reserved = [
            "$ai_model",
            "$ai_total_cost_usd",
            "$groups",
            "$group_1",
            "$group_0",
            "$set",
            "$set_once",
            "$lib",
            "$lib_version",
            "$process_person_profile",
            "$feature/beta",
            "$anything_new",
            "team_id",
            "TEAM_ID",
            "distinct_id",
            "token",
            "api_key",
            "uuid",
            "timestamp",
            "event",
            "ai_product",
        ];
        let list: Headers = reserved.iter().map(|k| (format!("x-posthog-property-{k}"), "evil")).collect();
        let (props, rejected) = header_properties(&list);
        assert!(props.is_empty(), "{props:?}");
        assert_eq!(rejected, reserved.len());
        for key in reserved {
            assert!(is_reserved(key), "{key}");
        }
        for key in ["feature", "team", "ai_product_name", "my$key", "tokens"] {
            assert!(!is_reserved(key), "{key}");
        }
    }

    #[test]
    fn values_lose_control_characters_and_are_capped() {
        let long = "é".repeat(MAX_VALUE_CHARS + 10);
        let (props, rejected) = header_properties(&headers(&[
            ("x-posthog-property-a", "line1\r\nline2\u{0}\u{7f}\u{85}!"),
            ("x-posthog-property-b", &long),
        ]));
        assert_eq!(rejected, 0);
        assert_eq!(props["a"], "line1line2!");
        assert_eq!(props["b"].as_str().map(|s| s.chars().count()), Some(MAX_VALUE_CHARS));
    }

    #[test]
    fn bad_names_are_rejected() {
        let long_name = format!("x-posthog-property-{}", "n".repeat(MAX_NAME_CHARS + 1));
        let ok_name = format!("x-posthog-property-{}", "n".repeat(MAX_NAME_CHARS));
        let (props, rejected) =
            header_properties(&headers(&[("x-posthog-property-", "empty name"), (&long_name, "v"), (&ok_name, "v")]));
        assert_eq!(rejected, 2);
        assert_eq!(props.len(), 1);
    }

    #[test]
    fn the_count_limit_rejects_the_rest_but_allows_repeats() {
        let mut list: Vec<(String, String)> =
            (0..MAX_PROPERTIES + 5).map(|i| (format!("x-posthog-property-p{i}"), i.to_string())).collect();
        list.push(("x-posthog-property-p0".to_string(), "last".to_string()));
        let (props, rejected) = header_properties(&list.into_iter().collect());
        assert_eq!(props.len(), MAX_PROPERTIES);
        assert_eq!(rejected, 5);
        assert_eq!(props["p0"], "last");
    }

    #[test]
    fn sanitize_id_accepts_the_trace_id_alphabet() {
        let id = "Ab9-_~.@()!':|";
        assert_eq!(sanitize_id(id, 200).as_deref(), Some(id));
        assert_eq!(sanitize_id("  abc  ", 200).as_deref(), Some("abc"));
    }

    #[test]
    fn sanitize_id_rejects_rather_than_repairs() {
        for bad in ["", "   ", "a b", "a/b", "a\nb", "a\"b", "ü", "a+b", "a#b", "a?b"] {
            assert_eq!(sanitize_id(bad, 200), None, "{bad:?}");
        }
        assert_eq!(sanitize_id(&"a".repeat(201), 200), None);
        assert!(sanitize_id(&"a".repeat(200), 200).is_some());
    }

    #[test]
    fn trace_id_prefers_a_valid_header() {
        assert_eq!(trace_id(Some("trace-1"), Some("user_abc")).as_deref(), Some("trace-1"));
    }

    #[test]
    fn trace_id_hashes_the_anthropic_user_id_like_the_python_gateway() {
        // Expected values from Python: uuid5(UUID("8d4f6b7e-..."), s).
        assert_eq!(trace_id(None, Some("user_abc")).as_deref(), Some("cb5c0786-681a-50bf-b34c-77da6fe23af9"));
        assert_eq!(
            trace_id(Some("bad header"), Some(r#"{"session_id":"s1","device_id":"d"}"#)).as_deref(),
            Some("7ab68061-a3b4-5ca9-8e1e-7aa91f021190")
        );
        assert_eq!(trace_id(None, Some("é")).as_deref(), Some("96ce2783-693e-5842-a4db-360342c0954e"));
    }

    #[test]
    fn trace_id_keeps_a_uuid_user_id_in_canonical_form() {
        let want = "550e8400-e29b-41d4-a716-446655440000";
        for raw in ["{550E8400-E29B-41D4-A716-446655440000}", "urn:uuid:550e8400e29b41d4a716446655440000", want] {
            assert_eq!(trace_id(None, Some(raw)).as_deref(), Some(want), "{raw}");
        }
    }

    #[test]
    fn a_call_that_names_no_trace_leaves_it_to_the_event() {
        assert_eq!(trace_id(None, None), None);
        assert_eq!(trace_id(Some(""), Some("")), None);
    }
}
