//! The 1-hour prompt-cache TTL upgrade: a pure function of the request body.
//!
//! Every existing `{"type": "ephemeral"}` breakpoint without a `ttl` gains
//! `"ttl": "1h"`. Nothing else changes: no breakpoint is added, one that has a
//! `ttl` keeps it, other types are left alone, and every byte outside the
//! patched `cache_control` objects is copied as it was (the body is never
//! re-serialised). The edit is an insertion of `,"ttl":"1h"` before the
//! closing brace of each upgraded object, so any other key the object holds
//! stays too.
//!
//! Anthropic's rule: "Cache entries with longer TTL must appear before shorter
//! TTLs", in prefix order `tools`, `system`, `messages`, with the automatic
//! (top-level) breakpoint on the last cacheable block, i.e. last. As
//! implemented, the body is left unchanged when:
//! - a short breakpoint (explicit `"5m"`, or any `ttl` other than `"1h"`)
//!   comes before one that would become 1h;
//! - a short breakpoint comes before an existing 1h one (the body already
//!   breaks the rule; the provider's answer should be the one the client
//!   would get without the gateway);
//! - the automatic breakpoint has a short `ttl` while a message block has an
//!   upgradable breakpoint: the automatic one may land on that very block,
//!   and a block with two different TTLs is a 400. This may refuse a body the
//!   provider would accept (when the marked block is not the last cacheable
//!   one), which costs only the saving, never the request.
//!
//! After an upgrade, the breakpoints read 1h up to the first short one and
//! short after it, so the result respects the order whenever the input did.

use super::walk::{self, Found, Kind, Section};

/// What the upgrade did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// Forward the original bytes; `reason` says why nothing changed.
    Unchanged { reason: &'static str },
    /// Forward `body` instead (and fix `content-length`); `breakpoints` were upgraded.
    Upgraded { body: Vec<u8>, breakpoints: usize },
}

impl Upgrade {
    /// Number of breakpoints upgraded (0 when unchanged).
    pub fn breakpoints(&self) -> usize {
        match self {
            Upgrade::Unchanged { .. } => 0,
            Upgrade::Upgraded { breakpoints, .. } => *breakpoints,
        }
    }
}

/// Reasons for [`Upgrade::Unchanged`].
pub const NOT_A_JSON_OBJECT: &str = "body is not a JSON object";
pub const NO_BREAKPOINTS: &str = "no cache_control breakpoints";
pub const NOTHING_TO_UPGRADE: &str = "no ephemeral breakpoint without a ttl";
pub const SHORT_PRECEDES_UPGRADABLE: &str = "explicit 5m breakpoint precedes an upgradable one";
pub const ORDER_ALREADY_BROKEN: &str = "explicit 5m breakpoint already precedes a 1h one";
pub const SHORT_AUTOMATIC: &str = "explicit 5m automatic breakpoint may share a block with an upgradable one";
/// Should not happen: a found value did not lie inside the body.
pub const SPAN_NOT_FOUND: &str = "cache_control span not found";

/// The text inserted before the closing brace of an upgraded breakpoint.
const TTL_FIELD: &[u8] = br#","ttl":"1h""#;

/// Breakpoints of a body by kind, for telemetry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BreakpointCounts {
    /// Ephemeral without a `ttl` (upgradable).
    pub default_ttl: usize,
    /// `"ttl": "1h"`.
    pub one_hour: usize,
    /// Any other `ttl`.
    pub short: usize,
    /// `cache_control` values that are not ephemeral breakpoints.
    pub not_ephemeral: usize,
}

impl BreakpointCounts {
    /// Ephemeral breakpoints, whatever their TTL.
    pub fn ephemeral(&self) -> usize {
        self.default_ttl + self.one_hour + self.short
    }
}

/// Counts the `cache_control` values of a Messages body; `None` when the body
/// is not a JSON object this module can read.
pub fn count_breakpoints(body: &[u8]) -> Option<BreakpointCounts> {
    let mut counts = BreakpointCounts::default();
    if !mentions_cache_control(body) {
        return Some(counts);
    }
    let text = std::str::from_utf8(body).ok()?;
    for (_, kind) in classified(text).ok()? {
        match kind {
            Kind::Upgradable => counts.default_ttl += 1,
            Kind::OneHour => counts.one_hour += 1,
            Kind::Short => counts.short += 1,
            Kind::NotEphemeral => counts.not_ephemeral += 1,
        }
    }
    Some(counts)
}

/// Upgrades every ephemeral breakpoint without a `ttl` to `"ttl": "1h"`, or
/// says why the body must be forwarded as it is.
pub fn upgrade_cache_ttl(body: &[u8]) -> Upgrade {
    // A body that never spells the key has nothing to upgrade. (A key written
    // with escapes is missed here, which only forgoes the saving.)
    if !mentions_cache_control(body) {
        return unchanged(NO_BREAKPOINTS);
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return unchanged(NOT_A_JSON_OBJECT);
    };
    let Ok(breakpoints) = classified(text) else {
        return unchanged(NOT_A_JSON_OBJECT);
    };
    if let Some(reason) = refusal(&breakpoints) {
        return unchanged(reason);
    }
    let mut at = Vec::new();
    for (found, kind) in &breakpoints {
        if *kind == Kind::Upgradable {
            match insertion_point(text, found) {
                Some(offset) => at.push(offset),
                None => return unchanged(SPAN_NOT_FOUND),
            }
        }
    }
    // Prefix order is not byte order (keys come in any order): patch front to back.
    at.sort_unstable();
    let mut out = Vec::with_capacity(body.len() + at.len() * TTL_FIELD.len());
    let mut copied = 0;
    for &offset in &at {
        let Some(chunk) = body.get(copied..offset) else {
            return unchanged(SPAN_NOT_FOUND);
        };
        out.extend_from_slice(chunk);
        out.extend_from_slice(TTL_FIELD);
        copied = offset;
    }
    let Some(rest) = body.get(copied..) else {
        return unchanged(SPAN_NOT_FOUND);
    };
    out.extend_from_slice(rest);
    Upgrade::Upgraded { body: out, breakpoints: at.len() }
}

fn unchanged(reason: &'static str) -> Upgrade {
    Upgrade::Unchanged { reason }
}

fn mentions_cache_control(body: &[u8]) -> bool {
    const KEY: &[u8] = b"cache_control";
    body.windows(KEY.len()).any(|w| w == KEY)
}

/// Breakpoints in prefix order with their kind; `null` values dropped.
fn classified(text: &str) -> Result<Vec<(Found<'_>, Kind)>, serde_json::Error> {
    let mut out = Vec::new();
    for found in walk::find(text)? {
        if let Some(kind) = walk::classify(found.raw)? {
            out.push((found, kind));
        }
    }
    Ok(out)
}

/// Why the body must stay as it is, if it must (see the module docs).
fn refusal(breakpoints: &[(Found<'_>, Kind)]) -> Option<&'static str> {
    let mut short_seen = false;
    let mut upgradable_after_short = false;
    let mut one_hour_after_short = false;
    let mut upgradable = 0;
    let mut upgradable_in_messages = false;
    let mut automatic_short = false;
    for (found, kind) in breakpoints {
        match kind {
            Kind::Short => {
                short_seen = true;
                automatic_short |= found.section == Section::Automatic;
            }
            Kind::Upgradable => {
                upgradable += 1;
                upgradable_after_short |= short_seen;
                upgradable_in_messages |= found.section == Section::Messages;
            }
            Kind::OneHour => one_hour_after_short |= short_seen,
            Kind::NotEphemeral => {}
        }
    }
    if breakpoints.is_empty() {
        Some(NO_BREAKPOINTS)
    } else if upgradable == 0 {
        Some(NOTHING_TO_UPGRADE)
    } else if upgradable_after_short {
        Some(SHORT_PRECEDES_UPGRADABLE)
    } else if one_hour_after_short {
        Some(ORDER_ALREADY_BROKEN)
    } else if automatic_short && upgradable_in_messages {
        Some(SHORT_AUTOMATIC)
    } else {
        None
    }
}

/// Byte offset in the body where `,"ttl":"1h"` goes: just after the last
/// member of the `cache_control` object, before any whitespace and the `}`.
fn insertion_point(text: &str, found: &Found<'_>) -> Option<usize> {
    let value = found.raw.get();
    // The raw value borrows from `text`, so its offset is pointer arithmetic.
    let start = (value.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    if start.checked_add(value.len())? > text.len() {
        return None;
    }
    let members = value.strip_suffix('}')?.trim_end();
    // An upgradable object holds at least `"type"`, so there is a member to follow.
    if !value.starts_with('{') || members.len() <= 1 {
        return None;
    }
    start.checked_add(members.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn upgraded(body: &str) -> (String, usize) {
        match upgrade_cache_ttl(body.as_bytes()) {
            Upgrade::Upgraded { body, breakpoints } => (String::from_utf8(body).unwrap(), breakpoints),
            other => panic!("expected an upgrade of {body}, got {other:?}"),
        }
    }

    fn reason(body: &str) -> &'static str {
        match upgrade_cache_ttl(body.as_bytes()) {
            Upgrade::Unchanged { reason } => reason,
            other => panic!("expected no change to {body}, got {other:?}"),
        }
    }

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    const EPH: &str = r#"{"type":"ephemeral"}"#;
    const ONE_H: &str = r#"{"type":"ephemeral","ttl":"1h"}"#;

    #[test]
    fn block_system_and_tools_and_messages_are_upgraded() {
        let body = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "tools": [
                {"name": "a", "input_schema": {"type": "object"}},
                {"name": "b", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}
            ],
            "system": [{"type": "text", "text": "You are", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
            ]}]
        })
        .to_string();
        let (out, n) = upgraded(&body);
        assert_eq!(n, 3);
        let out = v(&out);
        assert_eq!(out["tools"][1]["cache_control"], v(ONE_H));
        assert!(out["tools"][0].get("cache_control").is_none());
        assert_eq!(out["system"][0]["cache_control"], v(ONE_H));
        assert_eq!(out["messages"][0]["content"][0]["cache_control"], v(ONE_H));
    }

    #[test]
    fn string_system_holds_no_breakpoint() {
        let body = r#"{"system":"be brief, cache_control","messages":[{"role":"user","content":"hi"}]}"#;
        assert_eq!(reason(body), NO_BREAKPOINTS);
        let body = format!(
            r#"{{"system":"s","messages":[{{"role":"user","content":[{{"type":"text","text":"x","cache_control":{EPH}}}]}}]}}"#
        );
        let (out, n) = upgraded(&body);
        assert_eq!(n, 1);
        assert_eq!(v(&out)["system"], "s");
    }

    #[test]
    fn images_documents_tool_use_and_tool_results_are_upgraded() {
        let body = json!({"messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                 "cache_control": {"type": "ephemeral"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"},
                 "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"cache_control": {"type": "ephemeral"}},
                 "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1",
                 "content": [{"type": "text", "text": "r", "cache_control": {"type": "ephemeral"}}],
                 "cache_control": {"type": "ephemeral"}}
            ]}
        ]})
        .to_string();
        let (out, n) = upgraded(&body);
        assert_eq!(n, 5);
        let out = v(&out);
        let m = &out["messages"];
        assert_eq!(m[0]["content"][0]["cache_control"], v(ONE_H));
        assert_eq!(m[0]["content"][1]["cache_control"], v(ONE_H));
        assert_eq!(m[1]["content"][0]["cache_control"], v(ONE_H));
        // Tool input is user data, never a breakpoint.
        assert_eq!(m[1]["content"][0]["input"]["cache_control"], v(EPH));
        assert_eq!(m[2]["content"][0]["cache_control"], v(ONE_H));
        assert_eq!(m[2]["content"][0]["content"][0]["cache_control"], v(ONE_H));
    }

    #[test]
    fn automatic_top_level_breakpoint_is_upgraded() {
        let body = r#"{"model":"m","cache_control":{"type":"ephemeral"},"messages":[{"role":"user","content":"hi"}]}"#;
        let (out, n) = upgraded(body);
        assert_eq!(n, 1);
        assert_eq!(
            out,
            r#"{"model":"m","cache_control":{"type":"ephemeral","ttl":"1h"},"messages":[{"role":"user","content":"hi"}]}"#
        );
    }

    #[test]
    fn explicit_5m_before_an_upgradable_one_leaves_the_body() {
        let body = format!(
            r#"{{"tools":[{{"name":"a","cache_control":{{"type":"ephemeral","ttl":"5m"}}}}],
               "messages":[{{"role":"user","content":[{{"type":"text","text":"x","cache_control":{EPH}}}]}}]}}"#
        );
        assert_eq!(reason(&body), SHORT_PRECEDES_UPGRADABLE);
        // Same when the 5m breakpoint is written later in the JSON but comes first in prefix order.
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"text","text":"x","cache_control":{EPH}}}]}}],
               "system":[{{"type":"text","text":"s","cache_control":{{"type":"ephemeral","ttl":"5m"}}}}]}}"#
        );
        assert_eq!(reason(&body), SHORT_PRECEDES_UPGRADABLE);
        // Automatic breakpoint comes last: a 5m block breakpoint precedes it.
        let body = r#"{"cache_control":{"type":"ephemeral"},
            "messages":[{"role":"user","content":[{"type":"text","text":"x","cache_control":{"type":"ephemeral","ttl":"5m"}}]}]}"#;
        assert_eq!(reason(body), SHORT_PRECEDES_UPGRADABLE);
    }

    #[test]
    fn explicit_5m_after_upgradable_ones_is_fine() {
        let body = format!(
            r#"{{"tools":[{{"name":"a","cache_control":{EPH}}}],
               "messages":[{{"role":"user","content":[{{"type":"text","text":"x","cache_control":{{"type":"ephemeral","ttl":"5m"}}}}]}}]}}"#
        );
        let (out, n) = upgraded(&body);
        assert_eq!(n, 1);
        let out = v(&out);
        assert_eq!(out["tools"][0]["cache_control"], v(ONE_H));
        assert_eq!(out["messages"][0]["content"][0]["cache_control"]["ttl"], "5m");
    }

    #[test]
    fn nested_breakpoints_come_before_their_block() {
        // The tool_result's own breakpoint covers its content: a 5m inside it
        // precedes the outer upgradable one, whatever the key order.
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"tool_result","tool_use_id":"t","cache_control":{EPH},
               "content":[{{"type":"text","text":"r","cache_control":{{"type":"ephemeral","ttl":"5m"}}}}]}}]}}]}}"#
        );
        assert_eq!(reason(&body), SHORT_PRECEDES_UPGRADABLE);
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":[{{"type":"document","source":{{"type":"content",
               "content":[{{"type":"text","text":"d","cache_control":{EPH}}}]}},"cache_control":{{"type":"ephemeral","ttl":"5m"}}}}]}}]}}"#
        );
        let (out, n) = upgraded(&body);
        assert_eq!(n, 1);
        assert_eq!(v(&out)["messages"][0]["content"][0]["source"]["content"][0]["cache_control"], v(ONE_H));
    }

    #[test]
    fn one_hour_breakpoints_stay_and_mix_with_upgrades() {
        let body = format!(
            r#"{{"system":[{{"type":"text","text":"s","cache_control":{ONE_H}}}],
               "messages":[{{"role":"user","content":[{{"type":"text","text":"x","cache_control":{EPH}}}]}}]}}"#
        );
        let (out, n) = upgraded(&body);
        assert_eq!(n, 1);
        assert_eq!(v(&out)["system"][0]["cache_control"], v(ONE_H));
        assert_eq!(v(&out)["messages"][0]["content"][0]["cache_control"], v(ONE_H));
    }

    #[test]
    fn already_upgraded_and_breakpoint_free_bodies_are_unchanged() {
        let body = format!(r#"{{"system":[{{"type":"text","text":"s","cache_control":{ONE_H}}}],"messages":[]}}"#);
        assert_eq!(reason(&body), NOTHING_TO_UPGRADE);
        assert_eq!(reason(r#"{"messages":[{"role":"user","content":"hi"}]}"#), NO_BREAKPOINTS);
        assert_eq!(reason(r#"{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#), NO_BREAKPOINTS);
        assert_eq!(reason(r#"{"cache_control":null,"messages":[]}"#), NO_BREAKPOINTS);
    }

    #[test]
    fn existing_order_violation_is_left_to_the_provider() {
        let body = format!(
            r#"{{"tools":[{{"name":"a","cache_control":{{"type":"ephemeral","ttl":"5m"}}}}],
               "system":[{{"type":"text","text":"s","cache_control":{ONE_H}}}],"messages":[]}}"#
        );
        assert_eq!(reason(&body), NOTHING_TO_UPGRADE);
        let body = format!(
            r#"{{"tools":[{{"name":"a","cache_control":{EPH}}},{{"name":"b","cache_control":{{"type":"ephemeral","ttl":"5m"}}}}],
               "system":[{{"type":"text","text":"s","cache_control":{ONE_H}}}],"messages":[]}}"#
        );
        assert_eq!(reason(&body), ORDER_ALREADY_BROKEN);
    }

    #[test]
    fn short_automatic_breakpoint_with_upgradable_message_blocks_is_refused() {
        let body = format!(
            r#"{{"cache_control":{{"type":"ephemeral","ttl":"5m"}},
               "messages":[{{"role":"user","content":[{{"type":"text","text":"x","cache_control":{EPH}}}]}}]}}"#
        );
        assert_eq!(reason(&body), SHORT_AUTOMATIC);
        // Tools and system cannot hold the last cacheable block: fine.
        let body = format!(
            r#"{{"cache_control":{{"type":"ephemeral","ttl":"5m"}},"tools":[{{"name":"a","cache_control":{EPH}}}],
               "messages":[{{"role":"user","content":"x"}}]}}"#
        );
        assert_eq!(upgraded(&body).1, 1);
    }

    #[test]
    fn non_ephemeral_and_odd_ttls_are_untouched() {
        let body = r#"{"messages":[{"role":"user","content":[
            {"type":"text","text":"a","cache_control":{"type":"persistent"}},
            {"type":"text","text":"b","cache_control":{"ttl":"1h"}},
            {"type":"text","text":"c","cache_control":"ephemeral"}]}]}"#;
        assert_eq!(reason(body), NOTHING_TO_UPGRADE);
        // An unknown ttl counts as short for the order rule.
        let body = format!(
            r#"{{"tools":[{{"name":"a","cache_control":{{"type":"ephemeral","ttl":"30m"}}}}],
               "system":[{{"type":"text","text":"s","cache_control":{EPH}}}],"messages":[]}}"#
        );
        assert_eq!(reason(&body), SHORT_PRECEDES_UPGRADABLE);
        let body = format!(
            r#"{{"tools":[{{"name":"a","cache_control":{{"type":"ephemeral","ttl":null}}}}],
               "system":[{{"type":"text","text":"s","cache_control":{EPH}}}],"messages":[]}}"#
        );
        assert_eq!(reason(&body), SHORT_PRECEDES_UPGRADABLE);
    }

    #[test]
    fn other_keys_of_the_cache_control_object_are_kept() {
        let body = r#"{"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral","scope":"x"}}]}"#;
        let (out, _) = upgraded(body);
        assert_eq!(
            out,
            r#"{"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral","scope":"x","ttl":"1h"}}]}"#
        );
    }

    #[test]
    fn pretty_printed_input_is_preserved_outside_the_patch() {
        let body = "{\n  \"system\" : [\n    {\n      \"type\": \"text\",\n      \"text\": \"s \\u00e9\",\n      \
                    \"cache_control\": {\n        \"type\": \"ephemeral\"\n      }\n    }\n  ],\n  \
                    \"messages\": [ ]\n}\n";
        let (out, n) = upgraded(body);
        assert_eq!(n, 1);
        assert_eq!(out, body.replacen("\"ephemeral\"\n", "\"ephemeral\",\"ttl\":\"1h\"\n", 1));
    }

    #[test]
    fn escaped_keys_and_values_are_read() {
        let body = r#"{"system":[{"type":"text","text":"s","cache\u005fcontrol":{"typ\u0065":"\u0065phemeral"}}]}"#;
        // The fast pre-check only looks for the plain spelling: an escaped-only body is left alone.
        assert_eq!(reason(body), NO_BREAKPOINTS);
        let body = r#"{"tools":[{"name":"cache_control","cache_control":{"type":"\u0065phemeral"}}],
            "system":[{"type":"text","text":"s","cache\u005fcontrol":{"type":"ephemeral","ttl":"5m"}}]}"#;
        let (out, n) = upgraded(body);
        assert_eq!(n, 1);
        assert_eq!(v(&out)["tools"][0]["cache_control"]["ttl"], "1h");
    }

    #[test]
    fn invalid_or_ambiguous_bodies_are_unchanged() {
        for body in [
            r#"["cache_control"]"#,
            r#"{"cache_control":{"type":"ephemeral"}"#,
            r#"{"cache_control":{"type":"ephemeral"}} trailing"#,
            "\"cache_control\"",
            r#"{"cache_control":{"type":"ephemeral"},"cache_control":{"type":"ephemeral"}}"#,
            r#"{"system":[{"cache_control":{"type":"ephemeral"},"cache_control":null}]}"#,
            r#"{"system":[{"cache_control":{"type":"ephemeral","type":"ephemeral"}}]}"#,
        ] {
            assert_eq!(reason(body), NOT_A_JSON_OBJECT, "{body}");
        }
        let mut bytes = br#"{"system":[{"cache_control":{"type":"ephemeral"}}],"x":""#.to_vec();
        bytes.extend_from_slice(&[0xff, b'"', b'}']);
        assert_eq!(upgrade_cache_ttl(&bytes), Upgrade::Unchanged { reason: NOT_A_JSON_OBJECT });
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        // Node's WASI runner segfaults after this test passes at 100,000 levels
        // (after the last test, so outside the filter's code); 10,000 is as far past 128.
        let depth = if cfg!(target_arch = "wasm32") { 10_000 } else { 100_000 };
        let nested = format!("{}{}", r#"{"type":"tool_result","content":["#.repeat(depth), "]}".repeat(depth));
        let body = format!(
            r#"{{"cache_control":{{"type":"ephemeral"}},"messages":[{{"role":"user","content":[{nested}]}}]}}"#
        );
        assert_eq!(reason(&body), NOT_A_JSON_OBJECT);
    }

    #[test]
    fn odd_shapes_are_skipped_not_failed() {
        let body = r#"{"tools":{"cache_control":{"type":"ephemeral"}},"system":[1,"x",null,[{"cache_control":{"type":"ephemeral"}}]],
            "messages":[null,{"role":"user","content":{"cache_control":{"type":"ephemeral"}}},
            {"role":"user","content":[{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}]}]}"#;
        let (out, n) = upgraded(body);
        assert_eq!(n, 1);
        assert_eq!(v(&out)["tools"]["cache_control"], v(EPH));
    }

    #[test]
    fn counts_breakpoints_by_kind() {
        let body = format!(
            r#"{{"cache_control":{EPH},"tools":[{{"name":"a","cache_control":{ONE_H}}}],
               "system":[{{"type":"text","text":"s","cache_control":{{"type":"ephemeral","ttl":"5m"}}}},
                         {{"type":"text","text":"t","cache_control":{{"type":"other"}}}}]}}"#
        );
        let counts = count_breakpoints(body.as_bytes()).unwrap();
        assert_eq!(counts, BreakpointCounts { default_ttl: 1, one_hour: 1, short: 1, not_ephemeral: 1 });
        assert_eq!(counts.ephemeral(), 3);
        assert_eq!(count_breakpoints(b"{}"), Some(BreakpointCounts::default()));
        assert_eq!(count_breakpoints(b"[\"cache_control\"]"), None);
    }
}
