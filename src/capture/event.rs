//! The `$ai_generation` event one gateway call produces, and the batch body
//! that carries events to PostHog.

use serde_json::{Map, Value};

use super::properties::is_reserved;
use super::timestamp::rfc3339_millis;
use crate::wire::json::push_quoted;

/// `$lib` and `$ai_lib`: lets PostHog tell gateway events from SDK events.
pub const LIB: &str = "llm-gateway-envoy";
/// posthog-python's `AI_MAX_MSG_SIZE` (8 MiB) per AI event (docs/protocols/posthog.md, Size limits).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;
/// Error messages are cut to this many characters.
pub const MAX_ERROR_CHARS: usize = 2_000;
/// What replaces `$ai_input` / `$ai_output_choices` when they do not fit.
pub const TRUNCATION_MARKER: &str = "[truncated: content too large for capture]";

/// What the filter knows about a call once it ends.
///
/// Token counts are `Some` only when the provider reported them, so "not
/// reported" never reads as "zero" in PostHog (its schema is nullable).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generation {
    /// End user's PostHog distinct id.
    pub distinct_id: String,
    pub trace_id: String,
    /// Event uuid; the primary and the secondary copy share it.
    pub uuid: String,
    /// When the call happened, unix milliseconds.
    pub timestamp_ms: u64,
    /// Model the client asked for.
    pub model: String,
    /// Model the provider says it served, if it said.
    pub model_served: Option<String>,
    pub provider: String,
    pub product: String,
    pub team_id: Option<i64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub input_cost_usd: Option<f64>,
    pub output_cost_usd: Option<f64>,
    pub total_cost_usd: Option<f64>,
    pub latency_s: f64,
    /// Streams only.
    pub time_to_first_token_s: Option<f64>,
    pub http_status: u16,
    pub is_error: bool,
    pub error: Option<String>,
    pub stream: bool,
    /// Provider base URL the call went to.
    pub base_url: String,
    /// The API the client spoke: `openai_chat`, `openai_responses`, `anthropic_messages`.
    pub api_format: String,
    /// Request messages/input as raw JSON, when content capture is on.
    pub input: Option<String>,
    /// Response choices/content as raw JSON, when content capture is on.
    pub output_choices: Option<String>,
    /// Properties from other gateway features (e.g. Save Mode telemetry).
    /// Trusted, but the core keys below still win.
    pub gateway_properties: Map<String, Value>,
    /// Untrusted `x-posthog-property-*` properties; reserved keys are dropped.
    pub client_properties: Map<String, Value>,
}

impl Generation {
    /// The event as PostHog's capture API takes it:
    /// `{"event": "$ai_generation", "distinct_id", "uuid", "timestamp", "properties"}`,
    /// serialised in at most `max_bytes` when content allows it.
    ///
    /// Properties, in merge order (a later layer overwrites an earlier one):
    /// client properties (never a reserved key, see
    /// [`is_reserved`]), then `gateway_properties`, then:
    ///
    /// | property | when | value |
    /// |---|---|---|
    /// | `$ai_trace_id` | always | trace id |
    /// | `$ai_span_id` | always | the event uuid |
    /// | `$ai_model` | always | model that answered (the provider's `model`), else the one asked for |
    /// | `$ai_model_requested` | provider named a different model | model the client asked for |
    /// | `$ai_provider` | always | `openai`, `anthropic`, `gemini`, ... |
    /// | `$ai_api_format` | always | client API: `openai_chat`, `openai_responses`, `anthropic_messages` |
    /// | `$ai_input_tokens` | provider reported it | integer |
    /// | `$ai_output_tokens` | provider reported it | integer |
    /// | `$ai_cache_read_input_tokens` | provider reported it | integer |
    /// | `$ai_cache_creation_input_tokens` | provider reported it | integer |
    /// | `$ai_reasoning_tokens` | provider reported it | integer |
    /// | `$ai_input_cost_usd` | cost known | USD |
    /// | `$ai_output_cost_usd` | cost known | USD |
    /// | `$ai_total_cost_usd` | cost known | USD |
    /// | `$ai_latency` | always | seconds |
    /// | `$ai_time_to_first_token` | streams | seconds |
    /// | `$ai_http_status` | always | status the client got |
    /// | `$ai_is_error` | always | bool |
    /// | `$ai_error` | errors | message (or `HTTP <status>`), ≤ 2,000 chars |
    /// | `$ai_stream` | always | bool |
    /// | `$ai_base_url` | always | provider base URL |
    /// | `$ai_product`, `ai_product` | always | product |
    /// | `team_id` | team known | integer |
    /// | `$groups` | always | `{"instance": region_url, "project": "<team_id>"}` (`project` when team known) |
    /// | `$group_1` | always | region_url (the usage report filters on this slot) |
    /// | `$lib`, `$ai_lib` | always | `llm-gateway-envoy` |
    /// | `$lib_version` | always | crate version |
    /// | `$ai_input` | content given | request messages/input (JSON) |
    /// | `$ai_output_choices` | content given | response output (JSON) |
    /// | `$ai_content_truncated` | content cut | `true` |
    ///
    /// Content that does not fit the budget is replaced by
    /// [`TRUNCATION_MARKER`], largest field first; content whose raw JSON
    /// alone exceeds the budget is not parsed at all. Raw content that is not
    /// valid JSON is sent as a string.
    pub fn to_event(&self, region_url: &str, max_bytes: usize) -> Value {
        serde_json::from_str(&self.to_json(region_url, max_bytes)).unwrap_or_default()
    }

    /// [`Self::to_event`], serialised straight into one string, no `Value`
    /// tree. The core properties go first; a gateway or client property whose
    /// key a later layer of the merge order sets is left out, so each key is
    /// written once. Content is spliced in as the raw JSON it arrived as: a
    /// large prompt is copied once, never parsed into a tree.
    pub fn to_json(&self, region_url: &str, max_bytes: usize) -> String {
        let mut out = String::with_capacity(1024 + self.content_len());
        out.push_str(r#"{"event":"$ai_generation","distinct_id":"#);
        push_quoted(&mut out, &self.distinct_id);
        out.push_str(r#","uuid":"#);
        push_quoted(&mut out, &self.uuid);
        out.push_str(r#","timestamp":""#);
        out.push_str(&rfc3339_millis(self.timestamp_ms));
        out.push_str(r#"","properties":{"#);
        let mut members = Members { out: &mut out, first: true };
        self.write_core(&mut members, region_url);
        for (key, value) in &self.gateway_properties {
            if !CORE_KEYS.contains(&key.as_str()) {
                members.display(key, value);
            }
        }
        for (key, value) in &self.client_properties {
            if !is_reserved(key) && !self.gateway_properties.contains_key(key) {
                members.display(key, value);
            }
        }
        // The core keys are always there, so the object has at least one member.
        self.push_content(&mut out, "}}".len(), max_bytes);
        out.push_str("}}");
        out
    }

    /// The core properties (the table above). Every key written here is in [`CORE_KEYS`].
    fn write_core(&self, m: &mut Members<'_>, region_url: &str) {
        m.string("$ai_trace_id", &self.trace_id);
        m.string("$ai_span_id", &self.uuid);
        // As PostHog's SDKs report it: `$ai_model` is the model that answered.
        match self.model_served.as_ref().filter(|m| **m != self.model) {
            Some(served) => {
                m.string("$ai_model", served);
                m.string("$ai_model_requested", &self.model);
            }
            None => m.string("$ai_model", &self.model),
        }
        m.string("$ai_provider", &self.provider);
        m.string("$ai_api_format", &self.api_format);
        let counts = [
            ("$ai_input_tokens", self.input_tokens),
            ("$ai_output_tokens", self.output_tokens),
            ("$ai_cache_read_input_tokens", self.cache_read_input_tokens),
            ("$ai_cache_creation_input_tokens", self.cache_creation_input_tokens),
            ("$ai_reasoning_tokens", self.reasoning_tokens),
        ];
        for (key, count) in counts {
            if let Some(count) = count {
                m.display(key, count);
            }
        }
        let amounts = [
            ("$ai_input_cost_usd", self.input_cost_usd),
            ("$ai_output_cost_usd", self.output_cost_usd),
            ("$ai_total_cost_usd", self.total_cost_usd),
            ("$ai_latency", Some(self.latency_s)),
            ("$ai_time_to_first_token", self.time_to_first_token_s.filter(|_| self.stream)),
        ];
        for (key, amount) in amounts {
            // JSON has no NaN/inf; a non-finite number is left out, not nulled.
            if let Some(number) = amount.and_then(serde_json::Number::from_f64) {
                m.display(key, number);
            }
        }
        m.display("$ai_http_status", self.http_status);
        m.display("$ai_is_error", self.is_error);
        if self.is_error {
            match &self.error {
                Some(message) => match message.char_indices().nth(MAX_ERROR_CHARS) {
                    Some((cut, _)) => m.string("$ai_error", message.get(..cut).unwrap_or_default()),
                    None => m.string("$ai_error", message),
                },
                None => m.string("$ai_error", &format!("HTTP {}", self.http_status)),
            }
        }
        m.display("$ai_stream", self.stream);
        m.string("$ai_base_url", &self.base_url);
        m.string("$ai_product", &self.product);
        m.string("ai_product", &self.product);
        if let Some(team_id) = self.team_id {
            m.display("team_id", team_id);
        }
        m.key("$groups");
        m.out.push_str(r#"{"instance":"#);
        push_quoted(m.out, region_url);
        if let Some(team_id) = self.team_id {
            m.out.push_str(r#","project":""#);
            m.out.push_str(&team_id.to_string());
            m.out.push('"');
        }
        m.out.push('}');
        // Stamped directly: the billing query reads `$group_1` whatever the
        // destination's group type mapping is (docs/protocols/reference-gateway.md).
        m.string("$group_1", region_url);
        m.string("$lib", LIB);
        m.string("$ai_lib", LIB);
        m.string("$lib_version", env!("CARGO_PKG_VERSION"));
    }

    fn content_len(&self) -> usize {
        [&self.input, &self.output_choices].iter().map(|c| c.as_ref().map_or(0, String::len)).sum()
    }

    /// Appends `$ai_input` / `$ai_output_choices` as members, replacing the
    /// largest with the marker until the event fits `max_bytes`. `out` holds
    /// the event so far; `closing` more bytes will end it.
    fn push_content(&self, out: &mut String, closing: usize, max_bytes: usize) {
        let base_len = out.len() + closing;
        let mut kept: Vec<(&str, std::borrow::Cow<'_, str>, usize)> = Vec::new();
        let mut cut: Vec<&str> = Vec::new();
        for (key, raw) in [("$ai_input", &self.input), ("$ai_output_choices", &self.output_choices)] {
            match raw {
                None => {}
                // Cannot fit: skip a body that may be tens of MiB.
                Some(raw) if raw.len() > max_bytes => cut.push(key),
                Some(raw) => {
                    // Validated without building a tree; anything else goes as a string.
                    let value = match serde_json::from_str::<ParsesAsValue>(raw) {
                        Ok(_) => std::borrow::Cow::Borrowed(raw.trim()),
                        Err(_) => std::borrow::Cow::Owned(Value::from(raw.as_str()).to_string()),
                    };
                    let cost = member_cost(key, value.len());
                    kept.push((key, value, cost));
                }
            }
        }
        let marker_cost = |key: &str| member_cost(key, TRUNCATION_MARKER.len() + 2);
        let flag_cost = member_cost("$ai_content_truncated", "true".len());
        loop {
            let kept_cost: usize = kept.iter().map(|(_, _, cost)| cost).sum();
            let cut_cost: usize = cut.iter().map(|key| marker_cost(key)).sum();
            let flag = if cut.is_empty() { 0 } else { flag_cost };
            if base_len + kept_cost + cut_cost + flag <= max_bytes {
                break;
            }
            let largest = (0..kept.len()).max_by_key(|&i| kept.get(i).map(|(_, _, cost)| *cost));
            let Some(largest) = largest else { break };
            let (key, _, _) = kept.swap_remove(largest);
            cut.push(key);
        }
        // A marker can outweigh a small field: when even markers do not fit, the flag alone says it.
        let markers = base_len + cut.iter().map(|key| marker_cost(key)).sum::<usize>() + flag_cost <= max_bytes;
        let mut member = |key: &str, value: &str| {
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":");
            out.push_str(value);
        };
        for (key, value, _) in &kept {
            member(key, value);
        }
        for key in cut.iter().filter(|_| markers) {
            member(key, &Value::from(TRUNCATION_MARKER).to_string());
        }
        if !cut.is_empty() {
            member("$ai_content_truncated", "true");
        }
    }
}

/// Every key [`Generation::write_core`] may write: gateway properties never replace them.
const CORE_KEYS: &[&str] = &[
    "$ai_trace_id",
    "$ai_span_id",
    "$ai_model",
    "$ai_model_requested",
    "$ai_provider",
    "$ai_api_format",
    "$ai_input_tokens",
    "$ai_output_tokens",
    "$ai_cache_read_input_tokens",
    "$ai_cache_creation_input_tokens",
    "$ai_reasoning_tokens",
    "$ai_input_cost_usd",
    "$ai_output_cost_usd",
    "$ai_total_cost_usd",
    "$ai_latency",
    "$ai_time_to_first_token",
    "$ai_http_status",
    "$ai_is_error",
    "$ai_error",
    "$ai_stream",
    "$ai_base_url",
    "$ai_product",
    "ai_product",
    "team_id",
    "$groups",
    "$group_1",
    "$lib",
    "$ai_lib",
    "$lib_version",
    "$ai_input",
    "$ai_output_choices",
    "$ai_content_truncated",
];

/// Writes the members of a JSON object being built in `out`.
struct Members<'a> {
    out: &'a mut String,
    first: bool,
}

impl Members<'_> {
    fn key(&mut self, key: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        push_quoted(self.out, key);
        self.out.push(':');
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        push_quoted(self.out, value);
    }

    /// A value whose `Display` is its JSON (numbers, booleans, `Value`).
    fn display(&mut self, key: &str, value: impl std::fmt::Display) {
        use std::fmt::Write;
        self.key(key);
        let _ = write!(self.out, "{value}");
    }
}

/// Deserialises from exactly the JSON that `serde_json::Value` accepts
/// (numbers within f64, nesting within serde_json's limit), keeping nothing:
/// raw content spliced into an event must parse wherever PostHog parses it,
/// or one event would make its whole batch unreadable (found by fuzzing:
/// `1e400` is valid JSON syntax but out of range).
struct ParsesAsValue;

impl<'de> serde::Deserialize<'de> for ParsesAsValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParsesAsValue)
    }
}

impl<'de> serde::de::Visitor<'de> for ParsesAsValue {
    type Value = ParsesAsValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<ParsesAsValue>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value::<ParsesAsValue>()?;
        }
        Ok(self)
    }
}

/// Bytes one more `,"key":<value>` adds to a non-empty JSON object (keys
/// here need no escaping).
fn member_cost(key: &str, value_len: usize) -> usize {
    key.len() + 4 + value_len
}

/// `{"api_key": ..., "batch": [...], "sent_at": ...}` from events already
/// serialised, spliced in as they are (no re-parse).
pub fn batch_body(api_key: &str, events: &[&str], sent_at: &str) -> String {
    let events_len: usize = events.iter().map(|e| e.len() + 1).sum();
    let mut body = String::with_capacity(events_len + api_key.len() + sent_at.len() + 48);
    body.push_str("{\"api_key\":");
    push_quoted(&mut body, api_key);
    body.push_str(",\"batch\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(event);
    }
    body.push_str("],\"sent_at\":");
    push_quoted(&mut body, sent_at);
    body.push('}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const REGION: &str = "https://eu.posthog.com";

    fn generation() -> Generation {
        Generation {
            distinct_id: "user_1".into(),
            trace_id: "trace_1".into(),
            uuid: "0190f3c2-0000-4000-8000-000000000001".into(),
            timestamp_ms: 1_769_774_400_123,
            model: "gpt-4o".into(),
            provider: "openai".into(),
            product: "llm_gateway".into(),
            team_id: Some(456),
            input_tokens: Some(150),
            output_tokens: Some(280),
            input_cost_usd: Some(0.000375),
            output_cost_usd: Some(0.0028),
            total_cost_usd: Some(0.003175),
            latency_s: 2.45,
            http_status: 200,
            base_url: "https://api.openai.com/v1".into(),
            api_format: "openai_chat".into(),
            ..Generation::default()
        }
    }

    #[test]
    fn a_successful_call_becomes_an_ai_generation_event() {
        let event = generation().to_event(REGION, DEFAULT_MAX_EVENT_BYTES);
        assert_eq!(event["event"], "$ai_generation");
        assert_eq!(event["distinct_id"], "user_1");
        assert_eq!(event["uuid"], "0190f3c2-0000-4000-8000-000000000001");
        assert_eq!(event["timestamp"], "2026-01-30T12:00:00.123Z");
        let p = &event["properties"];
        assert_eq!(p["$ai_trace_id"], "trace_1");
        assert_eq!(p["$ai_span_id"], "0190f3c2-0000-4000-8000-000000000001");
        assert_eq!(p["$ai_model"], "gpt-4o");
        assert_eq!(p["$ai_provider"], "openai");
        assert_eq!(p["$ai_api_format"], "openai_chat");
        assert_eq!(p["$ai_input_tokens"], 150);
        assert_eq!(p["$ai_output_tokens"], 280);
        assert_eq!(p["$ai_total_cost_usd"], 0.003175);
        assert_eq!(p["$ai_latency"], 2.45);
        assert_eq!(p["$ai_http_status"], 200);
        assert_eq!(p["$ai_is_error"], false);
        assert_eq!(p["$ai_stream"], false);
        assert_eq!(p["$ai_base_url"], "https://api.openai.com/v1");
        assert_eq!(p["$ai_product"], "llm_gateway");
        assert_eq!(p["ai_product"], "llm_gateway");
        assert_eq!(p["team_id"], 456);
        assert_eq!(p["$groups"], json!({"instance": REGION, "project": "456"}));
        assert_eq!(p["$group_1"], REGION);
        assert_eq!(p["$lib"], LIB);
        assert_eq!(p["$ai_lib"], LIB);
        for absent in [
            "$ai_cache_read_input_tokens",
            "$ai_cache_creation_input_tokens",
            "$ai_reasoning_tokens",
            "$ai_time_to_first_token",
            "$ai_error",
            "$ai_model_requested",
            "$ai_input",
            "$ai_output_choices",
            "$ai_content_truncated",
        ] {
            assert!(p.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn optional_fields_appear_only_when_known() {
        let mut g = generation();
        g.cache_read_input_tokens = Some(0);
        g.cache_creation_input_tokens = Some(8741);
        g.reasoning_tokens = Some(64);
        g.stream = true;
        g.time_to_first_token_s = Some(0.3);
        g.model_served = Some("gpt-4o-2024-08-06".into());
        let p = &g.to_event(REGION, DEFAULT_MAX_EVENT_BYTES)["properties"];
        assert_eq!(p["$ai_cache_read_input_tokens"], 0);
        assert_eq!(p["$ai_cache_creation_input_tokens"], 8741);
        assert_eq!(p["$ai_reasoning_tokens"], 64);
        assert_eq!(p["$ai_time_to_first_token"], 0.3);
        assert_eq!(p["$ai_model"], "gpt-4o-2024-08-06", "the model that answered");
        assert_eq!(p["$ai_model_requested"], "gpt-4o");

        g.stream = false;
        g.model_served = Some("gpt-4o".into());
        g.team_id = None;
        g.input_tokens = None;
        g.total_cost_usd = Some(f64::NAN);
        let p = &g.to_event(REGION, DEFAULT_MAX_EVENT_BYTES)["properties"];
        assert!(p.get("$ai_time_to_first_token").is_none());
        assert!(p.get("$ai_model_requested").is_none());
        assert_eq!(p["$ai_model"], "gpt-4o");
        assert!(p.get("team_id").is_none());
        assert!(p.get("$ai_input_tokens").is_none());
        assert!(p.get("$ai_total_cost_usd").is_none());
        assert_eq!(p["$groups"], json!({"instance": REGION}));
    }

    #[test]
    fn errors_carry_a_bounded_message() {
        let mut g = generation();
        g.is_error = true;
        g.http_status = 502;
        let p = &g.to_event(REGION, DEFAULT_MAX_EVENT_BYTES)["properties"];
        assert_eq!(p["$ai_is_error"], true);
        assert_eq!(p["$ai_error"], "HTTP 502");
        g.error = Some("x".repeat(MAX_ERROR_CHARS * 2));
        let p = &g.to_event(REGION, DEFAULT_MAX_EVENT_BYTES)["properties"];
        assert_eq!(p["$ai_error"].as_str().map(str::len), Some(MAX_ERROR_CHARS));
    }

    #[test]
    fn every_core_key_is_listed_as_one() {
        let mut g = generation();
        g.model_served = Some("gpt-4o-2024-08-06".into());
        g.cache_read_input_tokens = Some(1);
        g.cache_creation_input_tokens = Some(1);
        g.reasoning_tokens = Some(1);
        g.stream = true;
        g.time_to_first_token_s = Some(0.1);
        g.is_error = true;
        g.input = Some("[]".into());
        g.output_choices = Some("[]".into());
        let event = g.to_event(REGION, DEFAULT_MAX_EVENT_BYTES);
        let written: Vec<&String> = event["properties"].as_object().unwrap().keys().collect();
        let unlisted: Vec<_> = written.iter().filter(|k| !CORE_KEYS.contains(&k.as_str())).collect();
        assert!(unlisted.is_empty(), "core keys missing from CORE_KEYS: {unlisted:?}");
    }

    #[test]
    fn client_properties_never_override_gateway_keys() {
        let mut g = generation();
        for (key, value) in [
            ("$group_1", "https://evil.example"),
            ("team_id", "1"),
            ("$ai_total_cost_usd", "0"),
            ("ai_product", "other"),
            ("feature", "chat"),
            ("save_mode", "client"),
        ] {
            g.client_properties.insert(key.into(), value.into());
        }
        g.gateway_properties.insert("save_mode".into(), "on".into());
        g.gateway_properties.insert("$ai_model".into(), "ignored".into());
        let p = &g.to_event(REGION, DEFAULT_MAX_EVENT_BYTES)["properties"];
        assert_eq!(p["$group_1"], REGION);
        assert_eq!(p["team_id"], 456);
        assert_eq!(p["$ai_total_cost_usd"], 0.003175);
        assert_eq!(p["ai_product"], "llm_gateway");
        assert_eq!(p["feature"], "chat");
        assert_eq!(p["save_mode"], "on");
        assert_eq!(p["$ai_model"], "gpt-4o");
        // Written once each: a parser that keeps the first duplicate would read the same.
        let json = g.to_json(REGION, DEFAULT_MAX_EVENT_BYTES);
        for key in ["\"$group_1\":", "\"team_id\":", "\"save_mode\":", "\"$ai_model\":", "\"ai_product\":"] {
            assert_eq!(json.matches(key).count(), 1, "{key}");
        }
    }

    #[test]
    fn content_is_embedded_as_json() {
        let mut g = generation();
        g.input = Some(r#"[{"role": "user", "content": "Hi"}]"#.into());
        g.output_choices = Some("not json".into());
        let p = &g.to_event(REGION, DEFAULT_MAX_EVENT_BYTES)["properties"];
        assert_eq!(p["$ai_input"], json!([{"role": "user", "content": "Hi"}]));
        assert_eq!(p["$ai_output_choices"], "not json");
        assert!(p.get("$ai_content_truncated").is_none());
    }

    #[test]
    fn content_is_truncated_largest_first_to_fit_the_budget() {
        let mut g = generation();
        let big = format!(r#"[{{"role":"user","content":"{}"}}]"#, "a".repeat(5_000));
        let small = format!(r#"[{{"text":"{}"}}]"#, "b".repeat(1_000));
        g.input = Some(big);
        g.output_choices = Some(small);
        let full = g.to_json(REGION, DEFAULT_MAX_EVENT_BYTES).len();

        // Room for the small field only.
        let budget = full - 3_000;
        let json = g.to_json(REGION, budget);
        assert!(json.len() <= budget, "{} > {budget}", json.len());
        let event: Value = serde_json::from_str(&json).expect("json");
        let p = &event["properties"];
        assert_eq!(p["$ai_input"], TRUNCATION_MARKER);
        assert!(p["$ai_output_choices"].is_array());
        assert_eq!(p["$ai_content_truncated"], true);

        // Room for neither.
        let budget = full - 5_500;
        let json = g.to_json(REGION, budget);
        assert!(json.len() <= budget, "{} > {budget}", json.len());
        let event: Value = serde_json::from_str(&json).expect("json");
        assert_eq!(event["properties"]["$ai_output_choices"], TRUNCATION_MARKER);
    }

    #[test]
    fn content_fits_exactly_at_the_budget() {
        let mut g = generation();
        g.input = Some(format!(r#"["hello", {{"a": [1, 2.5, null, "{}"]}}]"#, "z".repeat(100)));
        g.output_choices = Some(format!("\"quote \\\" and é {}\"", "y".repeat(100)));
        let exact = g.to_json(REGION, DEFAULT_MAX_EVENT_BYTES).len();
        let json = g.to_json(REGION, exact);
        assert_eq!(json.len(), exact);
        assert!(!json.contains("$ai_content_truncated"));
        let json = g.to_json(REGION, exact - 1);
        assert!(json.len() < exact);
        assert!(json.contains("$ai_content_truncated"));
        assert!(json.contains("yyyy"), "only the larger field is cut");
    }

    #[test]
    fn markers_are_left_out_when_even_they_do_not_fit() {
        let mut g = generation();
        g.input = Some(format!("[\"{}\"]", "x".repeat(100)));
        // The event with no content but the flag, plus less than a marker.
        let budget = g.to_json(REGION, 0).len() + 10;
        let json = g.to_json(REGION, budget);
        assert!(json.len() <= budget);
        let event: Value = serde_json::from_str(&json).expect("json");
        assert!(event["properties"].get("$ai_input").is_none());
        assert_eq!(event["properties"]["$ai_content_truncated"], true);
    }

    #[test]
    fn content_larger_than_the_budget_is_not_parsed() {
        let mut g = generation();
        g.input = Some("x".repeat(10_000));
        let json = g.to_json(REGION, 5_000);
        assert!(json.len() <= 5_000);
        let event: Value = serde_json::from_str(&json).expect("json");
        assert_eq!(event["properties"]["$ai_input"], TRUNCATION_MARKER);
        assert_eq!(event["properties"]["$ai_content_truncated"], true);
    }

    #[test]
    fn batch_body_splices_events_verbatim() {
        let events = [r#"{"event":"a"}"#, r#"{"event":"b"}"#];
        let body = batch_body("phc_\"key", &events, "2026-01-30T12:00:01.000Z");
        assert_eq!(
            body,
            r#"{"api_key":"phc_\"key","batch":[{"event":"a"},{"event":"b"}],"sent_at":"2026-01-30T12:00:01.000Z"}"#
        );
        let parsed: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(parsed["batch"][1]["event"], "b");
        assert_eq!(batch_body("k", &[], "t"), r#"{"api_key":"k","batch":[],"sent_at":"t"}"#);
    }

    #[test]
    fn content_that_value_would_refuse_goes_as_a_string() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for raw in [r#"[{"n": 1e400}]"#, deep.as_str(), r#"[{"role":"user"}] x"#] {
            let g = Generation { input: Some(raw.to_string()), ..generation() };
            let json = g.to_json(REGION, DEFAULT_MAX_EVENT_BYTES);
            let event: Value = serde_json::from_str(&json).expect("the event parses as a Value");
            assert_eq!(event["properties"]["$ai_input"], raw, "sent as a string");
        }
        let g = Generation { input: Some(r#" [{"n": 1e300, "s": "\u00e9"}] "#.to_string()), ..generation() };
        let event: Value = serde_json::from_str(&g.to_json(REGION, DEFAULT_MAX_EVENT_BYTES)).unwrap();
        assert_eq!(event["properties"]["$ai_input"][0]["s"], "é", "valid JSON is spliced in as JSON");
    }
}
