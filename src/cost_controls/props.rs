//! Property tests of the TTL upgrade over generated Messages bodies: random
//! breakpoint kinds and positions, random key order and whitespace, escaped
//! strings, decoy `cache_control` keys in user data. A seeded LCG makes every
//! case reproducible from its seed.

use serde_json::Value;

use super::ttl::*;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// A JSON tree whose objects are emitted in a random key order.
enum J {
    Obj(Vec<(&'static str, J)>),
    Arr(Vec<J>),
    Str(String),
    Num(i64),
    Null,
}

fn s(text: &str) -> J {
    J::Str(text.to_string())
}

fn obj(entries: Vec<(&'static str, J)>) -> J {
    J::Obj(entries)
}

fn ws(rng: &mut Lcg) -> &'static str {
    ["", "", "", " ", "\n", "\n    ", "\t", "\r\n  "][rng.below(8) as usize]
}

fn emit(j: &J, rng: &mut Lcg, out: &mut String) {
    match j {
        J::Obj(entries) => {
            let mut order: Vec<usize> = (0..entries.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            out.push('{');
            for (n, &i) in order.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(ws(rng));
                out.push_str(&serde_json::to_string(entries[i].0).unwrap());
                out.push_str(ws(rng));
                out.push(':');
                out.push_str(ws(rng));
                emit(&entries[i].1, rng, out);
                out.push_str(ws(rng));
            }
            out.push('}');
        }
        J::Arr(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(ws(rng));
                emit(item, rng, out);
                out.push_str(ws(rng));
            }
            out.push(']');
        }
        J::Str(text) => out.push_str(&serde_json::to_string(text).unwrap()),
        J::Num(n) => out.push_str(&n.to_string()),
        J::Null => out.push_str("null"),
    }
}

fn text(rng: &mut Lcg) -> J {
    let texts = ["hi", "héllo ☃ \"quoted\" \\ back", "cache_control", "{\"type\":\"ephemeral\"}", "", "line\nbreak"];
    s(texts[rng.below(texts.len() as u64) as usize])
}

/// Maybe a `cache_control` entry, of a random kind.
fn cache_control(rng: &mut Lcg, entries: &mut Vec<(&'static str, J)>) {
    let value = match rng.below(20) {
        0..=7 => return,
        8 => J::Null,
        9..=12 => obj(vec![("type", s("ephemeral"))]),
        13 | 14 => obj(vec![("type", s("ephemeral")), ("ttl", s("1h"))]),
        15 | 16 => obj(vec![("type", s("ephemeral")), ("ttl", s("5m"))]),
        17 => obj(vec![("type", s("persistent"))]),
        18 => obj(vec![("type", s("ephemeral")), ("scope", s("global"))]),
        _ => obj(vec![("ttl", s("1h"))]),
    };
    entries.push(("cache_control", value));
}

fn text_block(rng: &mut Lcg) -> J {
    let mut e = vec![("type", s("text")), ("text", text(rng))];
    cache_control(rng, &mut e);
    obj(e)
}

fn block(rng: &mut Lcg) -> J {
    let mut e = match rng.below(6) {
        0 | 1 => vec![("type", s("text")), ("text", text(rng))],
        2 => vec![
            ("type", s("image")),
            ("source", obj(vec![("type", s("base64")), ("media_type", s("image/png")), ("data", s("iVBORw0K"))])),
        ],
        3 => {
            // A decoy: `input` is user data even when it looks like a breakpoint.
            let input = obj(vec![("cache_control", obj(vec![("type", s("ephemeral"))])), ("n", J::Num(1))]);
            vec![("type", s("tool_use")), ("id", s("toolu_1")), ("name", s("f")), ("input", input)]
        }
        4 => {
            let content =
                if rng.percent(50) { text(rng) } else { J::Arr((0..rng.below(3)).map(|_| text_block(rng)).collect()) };
            vec![("type", s("tool_result")), ("tool_use_id", s("toolu_1")), ("content", content)]
        }
        _ => {
            let source = if rng.percent(50) {
                obj(vec![("type", s("text")), ("media_type", s("text/plain")), ("data", text(rng))])
            } else {
                obj(vec![
                    ("type", s("content")),
                    ("content", J::Arr((0..rng.below(3)).map(|_| text_block(rng)).collect())),
                ])
            };
            vec![("type", s("document")), ("source", source)]
        }
    };
    cache_control(rng, &mut e);
    obj(e)
}

fn body(rng: &mut Lcg) -> String {
    let mut top = vec![("model", s("claude-sonnet-4-5")), ("max_tokens", J::Num(1024))];
    if rng.percent(60) {
        let tools = (0..rng.below(4))
            .map(|i| {
                let schema = obj(vec![
                    ("type", s("object")),
                    ("properties", obj(vec![("cache_control", obj(vec![("type", s("ephemeral"))]))])),
                ]);
                let mut e = vec![("name", J::Str(format!("tool{i}"))), ("input_schema", schema)];
                cache_control(rng, &mut e);
                obj(e)
            })
            .collect();
        top.push(("tools", J::Arr(tools)));
    }
    match rng.below(3) {
        0 => {}
        1 => top.push(("system", text(rng))),
        _ => top.push(("system", J::Arr((0..rng.below(4)).map(|_| text_block(rng)).collect()))),
    }
    let messages = (0..1 + rng.below(4))
        .map(|i| {
            let content =
                if rng.percent(25) { text(rng) } else { J::Arr((0..1 + rng.below(3)).map(|_| block(rng)).collect()) };
            obj(vec![("role", s(if i % 2 == 0 { "user" } else { "assistant" })), ("content", content)])
        })
        .collect();
    top.push(("messages", J::Arr(messages)));
    top.push(("metadata", obj(vec![("user_id", s("u"))])));
    cache_control(rng, &mut top);
    let mut out = String::new();
    out.push_str(ws(rng));
    emit(&obj(top), rng, &mut out);
    out.push_str(ws(rng));
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum K {
    Upgradable,
    OneHour,
    Short,
}

/// Independent model of the walk, over a parsed `Value`: the ephemeral
/// breakpoints in prefix order, each with whether it is in `messages` or automatic.
fn oracle(v: &Value) -> Vec<(K, &'static str)> {
    fn kind(cc: &Value) -> Option<K> {
        let o = cc.as_object()?;
        if o.get("type")? != "ephemeral" {
            return None;
        }
        Some(match o.get("ttl") {
            None => K::Upgradable,
            Some(t) if t == "1h" => K::OneHour,
            Some(_) => K::Short,
        })
    }
    fn blocks(v: &Value, section: &'static str, out: &mut Vec<(K, &'static str)>) {
        for b in v.as_array().into_iter().flatten() {
            blocks(&b["content"], section, out);
            blocks(&b["source"]["content"], section, out);
            out.extend(b.get("cache_control").and_then(kind).map(|k| (k, section)));
        }
    }
    let mut out = Vec::new();
    for t in v["tools"].as_array().into_iter().flatten() {
        out.extend(t.get("cache_control").and_then(kind).map(|k| (k, "tools")));
    }
    blocks(&v["system"], "system", &mut out);
    for m in v["messages"].as_array().into_iter().flatten() {
        blocks(&m["content"], "messages", &mut out);
    }
    out.extend(v.get("cache_control").and_then(kind).map(|k| (k, "automatic")));
    out
}

fn short_before(bps: &[(K, &str)], later: K) -> bool {
    let first_short = bps.iter().position(|(k, _)| *k == K::Short);
    first_short.is_some_and(|i| bps[i..].iter().any(|(k, _)| *k == later))
}

fn count_key(v: &Value, key: &str) -> usize {
    match v {
        Value::Object(o) => o.iter().map(|(k, v)| usize::from(k == key) + count_key(v, key)).sum(),
        Value::Array(a) => a.iter().map(|v| count_key(v, key)).sum(),
        _ => 0,
    }
}

/// The input is the output with exactly `n` inserted `,"ttl":"1h"` removed.
fn only_ttl_inserted(input: &[u8], output: &[u8], n: usize) -> bool {
    const FIELD: &[u8] = br#","ttl":"1h""#;
    if output.len() != input.len() + n * FIELD.len() {
        return false;
    }
    let (mut i, mut j, mut skipped) = (0, 0, 0);
    while j < output.len() {
        if i < input.len() && input[i] == output[j] {
            i += 1;
            j += 1;
        } else if output[j..].starts_with(FIELD) {
            j += FIELD.len();
            skipped += 1;
        } else {
            return false;
        }
    }
    i == input.len() && skipped == n
}

#[test]
fn generated_bodies_satisfy_the_properties() {
    let mut outcomes = std::collections::BTreeMap::new();
    for seed in 0..4000u64 {
        let mut rng = Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
        let input = body(&mut rng);
        let parsed: Value = serde_json::from_str(&input).unwrap();
        let model = oracle(&parsed);
        let upgradable = model.iter().filter(|(k, _)| *k == K::Upgradable).count();
        let result = upgrade_cache_ttl(input.as_bytes());
        let label = match &result {
            Upgrade::Unchanged { reason } => *reason,
            Upgrade::Upgraded { .. } => "upgraded",
        };
        *outcomes.entry(label).or_insert(0) += 1;
        match result {
            Upgrade::Upgraded { body, breakpoints } => {
                let ctx = format!("seed {seed}: {input}");
                assert_eq!(breakpoints, upgradable, "{ctx}");
                assert!(only_ttl_inserted(input.as_bytes(), &body, breakpoints), "{ctx}");
                let out: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(count_key(&out, "cache_control"), count_key(&parsed, "cache_control"), "{ctx}");
                let after = oracle(&out);
                assert_eq!(after.len(), model.len(), "{ctx}");
                assert!(after.iter().all(|(k, _)| *k != K::Upgradable), "{ctx}");
                assert!(!short_before(&after, K::OneHour), "TTL order broken: {ctx}");
                assert_eq!(upgrade_cache_ttl(&body), Upgrade::Unchanged { reason: NOTHING_TO_UPGRADE }, "{ctx}");
                let counts = count_breakpoints(&body).unwrap();
                assert_eq!((counts.default_ttl, counts.ephemeral()), (0, model.len()), "{ctx}");
            }
            Upgrade::Unchanged { reason } => {
                let ctx = format!("seed {seed} ({reason}): {input}");
                let automatic_short = model.last() == Some(&(K::Short, "automatic"));
                let expected = if model.is_empty() {
                    // Non-ephemeral values count as breakpoints for the reason, not for the model.
                    [NO_BREAKPOINTS, NOTHING_TO_UPGRADE].contains(&reason)
                } else if upgradable == 0 {
                    reason == NOTHING_TO_UPGRADE
                } else if short_before(&model, K::Upgradable) {
                    reason == SHORT_PRECEDES_UPGRADABLE
                } else if short_before(&model, K::OneHour) {
                    reason == ORDER_ALREADY_BROKEN
                } else {
                    automatic_short && model.contains(&(K::Upgradable, "messages")) && reason == SHORT_AUTOMATIC
                };
                assert!(expected, "{ctx}");
            }
        }
    }
    // The generator reaches every outcome.
    for label in [
        "upgraded",
        NO_BREAKPOINTS,
        NOTHING_TO_UPGRADE,
        SHORT_PRECEDES_UPGRADABLE,
        ORDER_ALREADY_BROKEN,
        SHORT_AUTOMATIC,
    ] {
        assert!(outcomes.get(label).copied().unwrap_or(0) > 0, "{label} never produced: {outcomes:?}");
    }
}

#[test]
fn unchanged_bodies_are_not_copied() {
    // The API returns no bytes for an unchanged body: the caller forwards its own.
    let mut rng = Lcg(42);
    for _ in 0..200 {
        let input = body(&mut rng);
        if let Upgrade::Unchanged { reason } = upgrade_cache_ttl(input.as_bytes()) {
            assert_ne!(reason, NOT_A_JSON_OBJECT, "{input}");
        }
    }
}

#[test]
fn a_large_body_is_patched_in_place() {
    let big = "x".repeat(1 << 20);
    let input = format!(
        r#"{{"system":[{{"type":"text","text":"{big}","cache_control":{{"type":"ephemeral"}}}}],
           "messages":[{{"role":"user","content":[{{"type":"text","text":"{big}","cache_control":{{"type":"ephemeral"}}}}]}}]}}"#
    );
    match upgrade_cache_ttl(input.as_bytes()) {
        Upgrade::Upgraded { body, breakpoints } => {
            assert_eq!(breakpoints, 2);
            assert!(only_ttl_inserted(input.as_bytes(), &body, 2));
        }
        other => panic!("{other:?}"),
    }
}
