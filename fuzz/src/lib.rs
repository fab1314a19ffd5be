//! The fuzz targets (`targets::*`, and [`check_tracker`] for the four usage
//! wires) and their helpers: deterministic "random" split points derived from
//! the input itself, so every crash reproduces from its file alone.

pub mod targets;

use llm_gateway::accounting::{self, CallInfo, Outcome};
use llm_gateway::pricing::PriceTable;
use llm_gateway::usage::{Extracted, Limits, Problem, UsageTracker};
use llm_gateway::wire::Api;

/// SplitMix64 seeded with FNV-1a of the input.
pub struct Rng(u64);

impl Rng {
    pub fn new(data: &[u8]) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Rng(h ^ (data.len() as u64).rotate_left(32))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// `data` cut at up to `max_cuts` random points (empty pieces included: a
/// zero-length chunk must be a no-op).
pub fn pieces<'a>(data: &'a [u8], rng: &mut Rng, max_cuts: usize) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = (0..rng.below(max_cuts + 1)).map(|_| rng.below(data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        out.push(&data[start..cut]);
        start = cut;
    }
    out.push(&data[start..]);
    out
}

/// Every byte its own chunk.
pub fn bytewise(data: &[u8]) -> Vec<&[u8]> {
    data.chunks(1).collect()
}

/// Whether `small` is `big` with some bytes removed (nothing added or reordered).
pub fn is_subsequence(small: &[u8], big: &[u8]) -> bool {
    let mut it = big.iter();
    small.iter().all(|b| it.any(|c| c == b))
}

fn track(wire: Api, streaming: bool, limits: Limits, chunks: &[&[u8]]) -> (Extracted, usize) {
    let mut t = UsageTracker::with_limits(wire, streaming, limits);
    let mut first_token_signals = 0;
    for chunk in chunks {
        if t.feed(chunk).first_token {
            first_token_signals += 1;
        }
    }
    (t.finish(), first_token_signals)
}

/// Properties of one wire's tracker on arbitrary bytes, read both as a JSON
/// body and as a stream:
/// - the result does not depend on how the bytes are chunked (random cuts,
///   two halves, byte by byte);
/// - caps hold (error <= 512 chars, output text <= its byte cap);
/// - "first token" is signalled at most once, and only if it is in the result;
/// - the wire's token semantics flags are the documented ones;
/// - the call prices to a finite, non-negative cost, and the resulting
///   `$ai_generation` event serialises to valid JSON.
pub fn check_tracker(wire: Api, data: &[u8]) {
    let mut rng = Rng::new(data);
    let defaults = Limits::default();
    let limits = match rng.below(3) {
        0 => defaults,
        // Small caps, so the over-cap paths run on small inputs too.
        _ => Limits {
            max_body_bytes: 1 + rng.below(2 * data.len() + 1),
            max_event_bytes: 1 + rng.below(2 * data.len() + 1),
            max_output_text_bytes: rng.below(64),
        },
    };
    for streaming in [false, true] {
        let (whole, signals) = track(wire, streaming, limits, &[data]);
        let max_cuts = if rng.below(2) == 0 { 4 } else { 64 };
        let split = track(wire, streaming, limits, &pieces(data, &mut rng, max_cuts));
        assert_eq!(whole, split.0, "streaming={streaming}: result depends on chunking");
        let (head, tail) = data.split_at(data.len() / 2);
        let halves = track(wire, streaming, limits, &[head, tail]);
        assert_eq!(whole, halves.0, "streaming={streaming}: result differs when fed in two halves");
        if data.len() <= 512 {
            let bytes = track(wire, streaming, limits, &bytewise(data));
            assert_eq!(whole, bytes.0, "streaming={streaming}: result differs when fed byte by byte");
            assert!(bytes.1 <= 1);
            assert!(bytes.1 == 0 || whole.first_token);
        }
        assert!(signals <= 1 && split.1 <= 1, "first token signalled more than once");
        assert!(signals == 0 || whole.first_token);
        if let Some(e) = &whole.error {
            assert!(e.chars().count() <= 512, "error longer than 512 chars");
        }
        assert!(whole.output_text.len() <= limits.max_output_text_bytes, "output text over its cap");
        if whole.problem == Some(Problem::BodyOverCap) {
            assert!(whole.usage.is_none() && whole.served_model.is_none());
        }
        if let Some(m) = &whole.served_model {
            assert!(!m.is_empty());
        }
        if let Some(u) = &whole.usage {
            let (includes_cache, excludes_reasoning) = match wire {
                Api::Chat | Api::Responses => (true, false),
                Api::Messages => (false, false),
            };
            assert_eq!(u.input_includes_cache, includes_cache);
            assert_eq!(u.output_excludes_reasoning, excludes_reasoning);
            assert!(u.total_input_tokens() >= u.input_tokens);
            assert!(u.billed_output_tokens() >= u.output_tokens);
        }
        books(wire, streaming, whole);
    }
}

/// Prices the call and builds its event, as the filter does at the end of a call.
fn books(wire: Api, streaming: bool, extracted: Extracted) {
    let api_format = wire.event_name();
    let info = CallInfo {
        model: "requested-model".into(),
        upstream_model: "claude-sonnet-4-5".into(),
        api_format,
        stream: streaming,
        ..CallInfo::default()
    };
    let out = Outcome { status: 200, ended_ms: 10, first_token_ms: Some(5), extracted, interrupted: None };
    thread_local! {
        static PRICES: PriceTable = PriceTable::builtin();
    }
    let cost = PRICES.with(|prices| accounting::call_cost(prices, &info, &out, 0.01));
    if let Some(c) = &cost {
        for v in [c.input_usd, c.output_usd, c.total_usd] {
            assert!(v.is_finite() && v >= 0.0, "cost not a finite non-negative number: {c:?}");
        }
    }
    let g = accounting::generation(info, &out, cost.as_ref(), true);
    let json = g.to_json("https://us.posthog.com", 64 * 1024);
    let parsed: Result<serde_json::Value, _> = serde_json::from_str(&json);
    assert!(parsed.is_ok(), "event is not valid JSON");
    assert!(json_without_duplicates(&json), "event repeats a key");
}

/// Whether `text` is JSON in which no object repeats a key. (Readers differ
/// on duplicates: serde's derived structs refuse them, `Value` keeps the last.
/// Providers never send them, so cross-module agreement is only checked without.)
pub fn json_without_duplicates(text: &str) -> bool {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    struct NoDup;
    impl<'de> Deserialize<'de> for NoDup {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(NoDupVisitor)
        }
    }
    struct NoDupVisitor;
    impl<'de> Visitor<'de> for NoDupVisitor {
        type Value = NoDup;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<NoDup, E> {
            Ok(NoDup)
        }
        fn visit_i64<E>(self, _: i64) -> Result<NoDup, E> {
            Ok(NoDup)
        }
        fn visit_u64<E>(self, _: u64) -> Result<NoDup, E> {
            Ok(NoDup)
        }
        fn visit_f64<E>(self, _: f64) -> Result<NoDup, E> {
            Ok(NoDup)
        }
        fn visit_str<E>(self, _: &str) -> Result<NoDup, E> {
            Ok(NoDup)
        }
        fn visit_unit<E>(self) -> Result<NoDup, E> {
            Ok(NoDup)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDup, A::Error> {
            while seq.next_element::<NoDup>()?.is_some() {}
            Ok(NoDup)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDup, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key) {
                    return Err(serde::de::Error::custom("duplicate key"));
                }
                map.next_value::<NoDup>()?;
            }
            Ok(NoDup)
        }
    }
    serde_json::from_str::<NoDup>(text).is_ok()
}

/// Whether every `usage` object in `json` has the provider's field types
/// (counts are integers; Anthropic's or OpenAI Chat's names). Readers
/// differ on a wrongly typed count (the usage reader skips the field, the
/// translators the object), so cross-module agreement is only checked on
/// well-typed usage, the only kind providers send.
pub fn usage_well_typed(anthropic: bool, json: &str) -> bool {
    use serde::Deserialize;
    use serde_json::Value;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Split {
        ephemeral_5m_input_tokens: Option<u64>,
        ephemeral_1h_input_tokens: Option<u64>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct AnthropicUsage {
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
        cache_creation_input_tokens: Option<u64>,
        cache_read_input_tokens: Option<u64>,
        cache_creation: Option<Split>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct PromptDetails {
        cached_tokens: Option<u64>,
        cache_write_tokens: Option<u64>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct CompletionDetails {
        reasoning_tokens: Option<u64>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct ChatUsage {
        prompt_tokens: Option<u64>,
        completion_tokens: Option<u64>,
        prompt_tokens_details: Option<PromptDetails>,
        completion_tokens_details: Option<CompletionDetails>,
    }
    fn walk(anthropic: bool, v: &Value) -> bool {
        match v {
            Value::Object(m) => m.iter().all(|(k, v)| {
                let typed = k != "usage"
                    || v.is_null()
                    || if anthropic {
                        AnthropicUsage::deserialize(v).is_ok()
                    } else {
                        ChatUsage::deserialize(v).is_ok()
                    };
                typed && walk(anthropic, v)
            }),
            Value::Array(a) => a.iter().all(|v| walk(anthropic, v)),
            _ => true,
        }
    }
    serde_json::from_str::<Value>(json).is_ok_and(|v| walk(anthropic, &v))
}
