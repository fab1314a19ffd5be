//! The `$ai_generation` event (`Generation::to_json`) from arbitrary call
//! data and client property headers.
//!
//! - The event is valid JSON with exactly `event`, `distinct_id`, `uuid`,
//!   `timestamp` and `properties`, and `event` is `$ai_generation`.
//! - Client properties that pass `header_properties` all arrive unchanged
//!   (no gateway key can collide with them: gateway keys are reserved).
//! - Reserved client keys handed straight to `Generation` change nothing: the
//!   event is byte-identical to the one without them.
//! - Size: when the event without content plus the truncation markers fits
//!   `max_bytes`, the event fits `max_bytes`.

use arbitrary::Arbitrary;
use llm_gateway::capture::event::{Generation, TRUNCATION_MARKER};
use llm_gateway::capture::properties::{header_properties, PROPERTY_HEADER_PREFIX};
use llm_gateway::wire::header_pairs::Headers;
use serde_json::{Map, Value};

#[derive(Arbitrary, Debug)]
pub struct Input {
    distinct_id: String,
    trace_id: String,
    model: String,
    model_served: Option<String>,
    timestamp_ms: u64,
    team_id: Option<i64>,
    tokens: [Option<u64>; 5],
    costs: [Option<f64>; 3],
    latency_s: f64,
    ttft_s: Option<f64>,
    http_status: u16,
    error: Option<String>,
    stream: bool,
    input: Option<String>,
    output_choices: Option<String>,
    /// `x-posthog-property-<name>: <value>`.
    properties: Vec<(String, String)>,
    /// Reserved keys a buggy caller might pass as client properties.
    reserved: Vec<(u8, String)>,
    save_mode: Option<bool>,
    max_bytes: u16,
    small: bool,
}

const RESERVED: [&str; 10] = [
    "$ai_model",
    "$ai_total_cost_usd",
    "$groups",
    "$group_1",
    "team_id",
    "distinct_id",
    "$set",
    "TEAM_ID",
    "uuid",
    "$ai_input",
];

fn member_cost(key: &str, value_len: usize) -> usize {
    key.len() + 4 + value_len
}

pub fn run(i: Input) {
    let headers: Headers = i.properties.iter().map(|(k, v)| (format!("{PROPERTY_HEADER_PREFIX}{k}"), v)).collect();
    let (client_properties, _) = header_properties(&headers);
    let mut gateway_properties = Map::new();
    if let Some(on) = i.save_mode {
        gateway_properties.insert("$ai_save_mode".into(), on.into());
        gateway_properties.insert("$ai_save_mode_reason".into(), "header".into());
    }
    let g = Generation {
        distinct_id: i.distinct_id,
        trace_id: i.trace_id,
        uuid: "0190a0d6-9b6e-7a3c-8e6b-1d2f3a4b5c6d".into(),
        timestamp_ms: i.timestamp_ms,
        model: i.model,
        model_served: i.model_served,
        provider: "anthropic".into(),
        product: "llm_gateway".into(),
        team_id: i.team_id,
        input_tokens: i.tokens[0],
        output_tokens: i.tokens[1],
        cache_read_input_tokens: i.tokens[2],
        cache_creation_input_tokens: i.tokens[3],
        reasoning_tokens: i.tokens[4],
        input_cost_usd: i.costs[0],
        output_cost_usd: i.costs[1],
        total_cost_usd: i.costs[2],
        latency_s: i.latency_s,
        time_to_first_token_s: i.ttft_s,
        http_status: i.http_status,
        is_error: i.error.is_some() || i.http_status >= 400,
        error: i.error,
        stream: i.stream,
        base_url: "https://api.anthropic.com".into(),
        api_format: "anthropic_messages".into(),
        input: i.input,
        output_choices: i.output_choices,
        gateway_properties,
        client_properties: client_properties.clone(),
    };
    let region = "https://us.posthog.com";
    let max_bytes = if i.small { usize::from(i.max_bytes) } else { 8 * 1024 * 1024 };
    let json = g.to_json(region, max_bytes);
    let event: Value = match serde_json::from_str(&json) {
        Ok(v) => v,
        Err(e) => panic!("event is not JSON: {e}"),
    };
    let Some(obj) = event.as_object() else { panic!("event is not an object") };
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["distinct_id", "event", "properties", "timestamp", "uuid"]);
    assert_eq!(obj["event"], "$ai_generation");
    let Some(props) = obj["properties"].as_object() else { panic!("properties is not an object") };
    for (k, v) in &client_properties {
        assert_eq!(props.get(k), Some(v), "client property {k:?} lost or overwritten");
    }

    // Reserved keys passed as client properties change nothing.
    let mut tainted = g.clone();
    for (which, value) in &i.reserved {
        let key = RESERVED[usize::from(*which) % RESERVED.len()];
        tainted.client_properties.insert(key.into(), Value::String(value.clone()));
    }
    assert_eq!(tainted.to_json(region, max_bytes), json, "a reserved client property reached the event");

    // Size bound.
    let bare = Generation { input: None, output_choices: None, ..g.clone() };
    let base = bare.to_json(region, max_bytes).len();
    let markers: usize = [("$ai_input", &g.input), ("$ai_output_choices", &g.output_choices)]
        .iter()
        .filter(|(_, raw)| raw.is_some())
        .map(|(key, _)| member_cost(key, TRUNCATION_MARKER.len() + 2))
        .sum();
    let flag = member_cost("$ai_content_truncated", 4);
    if base + markers + flag <= max_bytes {
        assert!(json.len() <= max_bytes, "event is {} bytes, over max_bytes {max_bytes} (base {base})", json.len());
    }
}
