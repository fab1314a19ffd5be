//! One call's books: who it is attributed to, what it cost, and the
//! `$ai_generation` event that reports it.

use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::capture::event::Generation;
use crate::capture::properties::{sanitize_id, MAX_ID_CHARS};
use crate::pricing::{self, Cost, PriceTable};
use crate::providers::Provider;
use crate::request::ParsedRequest;
use crate::usage::{Extracted, Usage};

/// The end user a call is attributed to: OpenAI `safety_identifier`/`user`,
/// then Anthropic `metadata.user_id`, then the `x-posthog-distinct-id`
/// header, then the key owner. Client values that are not valid ids are skipped.
pub fn end_user(req: &ParsedRequest, header: Option<&str>, principal: &Principal) -> String {
    let client = [req.user.as_deref(), req.metadata_user_id.as_deref(), header];
    client
        .into_iter()
        .flatten()
        .find_map(|v| sanitize_id(v, MAX_ID_CHARS))
        .or_else(|| principal.distinct_id.clone())
        .unwrap_or_else(|| format!("team_{}", principal.team_id))
}

/// What is known about a call when it is sent upstream.
#[derive(Debug, Clone, Default)]
pub struct CallInfo {
    pub started_ms: u64,
    /// The trace the call names (`x-posthog-trace-id`, Claude Code's session); else the
    /// event gets a fresh one. The event's own uuid is drawn when it is built.
    pub trace_id: Option<String>,
    pub distinct_id: String,
    pub team_id: i64,
    pub product: String,
    pub api_format: &'static str,
    pub provider: &'static str,
    pub model: String,
    pub upstream_model: String,
    pub base_url: String,
    pub stream: bool,
    /// Request messages/input as raw JSON, when content capture is on.
    pub input: Option<String>,
    pub client_properties: Map<String, Value>,
    /// Properties set by gateway features (Save Mode telemetry, budget tier).
    pub gateway_properties: Map<String, Value>,
}

/// How the call ended.
#[derive(Debug, Default)]
pub struct Outcome {
    pub status: u16,
    pub ended_ms: u64,
    pub first_token_ms: Option<u64>,
    pub extracted: Extracted,
    /// Why the call did not complete normally (client gone, stream cut), if so.
    pub interrupted: Option<String>,
}

/// The call's cost: priced from usage; a successful call whose usage never
/// arrived costs the fallback amount; a failed call without usage costs nothing.
///
/// The model that answered is priced first (a dated snapshot may cost more
/// than its alias), then the one sent upstream; the table's unknown-model
/// policy applies only when neither has a price.
pub fn call_cost(prices: &PriceTable, info: &CallInfo, out: &Outcome, fallback_usd: f64) -> Option<Cost> {
    match &out.extracted.usage {
        Some(u) => {
            let provider = Provider::from_name(info.provider);
            let served = out.extracted.served_model.as_deref();
            let models: Vec<&str> = served.into_iter().chain([info.upstream_model.as_str()]).collect();
            Some(prices.cost(provider, &models, u, pricing::day_of(info.started_ms), fallback_usd))
        }
        None if (200..300).contains(&out.status) => Some(Cost::flat(fallback_usd)),
        None => None,
    }
}

/// What the event says about how the call was priced: `$ai_cost_fallback`
/// (`family`, `flat`, or `usage_missing` when a successful call reported no
/// usage), `$ai_cost_model` (the row used), and the web searches billed.
fn pricing_properties(out: &Outcome, cost: Option<&Cost>, props: &mut Map<String, Value>) {
    let usage = out.extracted.usage.as_ref();
    if let Some(c) = cost {
        let label = if usage.is_none() { Some("usage_missing") } else { c.source.fallback_label() };
        if let Some(label) = label {
            props.insert("$ai_cost_fallback".into(), label.into());
        }
        if let Some(model) = &c.priced_as {
            props.insert("$ai_cost_model".into(), model.as_ref().into());
        }
        if c.tools_usd > 0.0 {
            if let Some(n) = serde_json::Number::from_f64(c.tools_usd) {
                props.insert("$ai_web_search_cost_usd".into(), Value::Number(n));
            }
        }
    }
    if let Some(n) = usage.and_then(|u| u.web_search_requests) {
        props.insert("$ai_web_search_count".into(), n.into());
    }
}

/// The event for a finished call, which it consumes.
pub fn generation(info: CallInfo, out: &Outcome, cost: Option<&Cost>, content: bool) -> Generation {
    let usage: Option<&Usage> = out.extracted.usage.as_ref();
    let error = out
        .extracted
        .error
        .clone()
        .or_else(|| out.interrupted.clone())
        .or_else(|| (out.status >= 400).then(|| format!("HTTP {}", out.status)));
    let served = out.extracted.served_model.clone().filter(|m| *m != info.model);
    let output_choices = (content && !out.extracted.output_text.is_empty()).then(|| {
        let mut choices = String::from(r#"[{"role":"assistant","content":"#);
        crate::wire::json::push_quoted(&mut choices, &out.extracted.output_text);
        choices.push_str("}]");
        choices
    });
    let mut gateway_properties = info.gateway_properties;
    pricing_properties(out, cost, &mut gateway_properties);
    Generation {
        distinct_id: info.distinct_id,
        trace_id: info.trace_id.unwrap_or_else(crate::capture::properties::new_uuid),
        uuid: crate::capture::properties::new_uuid(),
        timestamp_ms: info.started_ms,
        model: info.model,
        model_served: served,
        provider: info.provider.to_string(),
        product: info.product,
        team_id: Some(info.team_id),
        input_tokens: usage.map(|u| u.input_tokens),
        output_tokens: usage.map(|u| u.output_tokens),
        cache_read_input_tokens: usage.and_then(|u| u.cache_read_tokens),
        cache_creation_input_tokens: usage.and_then(|u| u.cache_creation_tokens),
        reasoning_tokens: usage.and_then(|u| u.reasoning_tokens),
        input_cost_usd: cost.map(|c| c.input_usd),
        output_cost_usd: cost.map(|c| c.output_usd),
        total_cost_usd: cost.map(|c| c.total_usd),
        latency_s: out.ended_ms.saturating_sub(info.started_ms) as f64 / 1000.0,
        time_to_first_token_s: if info.stream {
            out.first_token_ms.map(|t| t.saturating_sub(info.started_ms) as f64 / 1000.0)
        } else {
            None
        },
        http_status: out.status,
        is_error: error.is_some(),
        error,
        stream: info.stream,
        base_url: info.base_url,
        api_format: info.api_format.to_string(),
        input: info.input.filter(|_| content),
        output_choices,
        gateway_properties,
        client_properties: info.client_properties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse;
    use crate::wire::Api;

    fn owner() -> Principal {
        Principal { team_id: 9, distinct_id: Some("owner".into()), ..Default::default() }
    }

    #[test]
    fn end_user_precedence() {
        let body = br#"{"model":"m","messages":[],"user":"u-1","metadata":{"user_id":"meta"}}"#;
        let req = parse(body, Api::Chat).unwrap();
        assert_eq!(end_user(&req, Some("hdr"), &owner()), "u-1");
        let body = br#"{"model":"m","messages":[],"metadata":{"user_id":"meta"}}"#;
        let req = parse(body, Api::Messages).unwrap();
        assert_eq!(end_user(&req, Some("hdr"), &owner()), "meta");
        let body = br#"{"model":"m","messages":[],"user":"bad id with spaces"}"#;
        let req = parse(body, Api::Chat).unwrap();
        assert_eq!(end_user(&req, Some("hdr"), &owner()), "hdr");
        assert_eq!(end_user(&req, None, &owner()), "owner");
        assert_eq!(end_user(&req, None, &Principal { team_id: 3, ..Default::default() }), "team_3");
    }

    use crate::pricing::CostSource;

    #[test]
    fn cost_rules() {
        let prices = PriceTable::builtin();
        let info = CallInfo { upstream_model: "gpt-4o".into(), ..Default::default() };
        let ok_no_usage = Outcome { status: 200, ..Default::default() };
        assert_eq!(call_cost(&prices, &info, &ok_no_usage, 0.01).unwrap().source, CostSource::Fallback);
        let failed = Outcome { status: 500, ..Default::default() };
        assert!(call_cost(&prices, &info, &failed, 0.01).is_none());
        let usage = Usage { input_tokens: 1_000_000, input_includes_cache: true, ..Default::default() };
        let priced = Outcome {
            status: 200,
            extracted: Extracted { usage: Some(usage), ..Default::default() },
            ..Default::default()
        };
        let c = call_cost(&prices, &info, &priced, 0.01).unwrap();
        assert_eq!(c.source, CostSource::Table);
        assert!((c.total_usd - 2.5).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn generation_marks_errors_and_interruptions() {
        let info = CallInfo { model: "gpt-4o".into(), stream: true, started_ms: 1000, ..Default::default() };
        let out = Outcome {
            status: 200,
            ended_ms: 3000,
            first_token_ms: Some(1500),
            interrupted: Some("client disconnected".into()),
            ..Default::default()
        };
        let g = generation(info.clone(), &out, None, true);
        assert!(g.is_error);
        assert_eq!(g.error.as_deref(), Some("client disconnected"));
        assert_eq!(g.time_to_first_token_s, Some(0.5));
        assert_eq!(g.latency_s, 2.0);
        let g = generation(info.clone(), &Outcome { status: 502, ..Default::default() }, None, true);
        assert_eq!(g.error.as_deref(), Some("HTTP 502"));
    }

    #[test]
    fn events_say_how_the_call_was_priced() {
        let prices = PriceTable::builtin();
        let info = CallInfo {
            model: "claude-opus".into(),
            upstream_model: "claude-opus".into(),
            provider: "anthropic",
            ..Default::default()
        };
        let usage = Usage { input_tokens: 1000, output_tokens: 10, web_search_requests: Some(2), ..Default::default() };
        let out = |served: &str| Outcome {
            status: 200,
            extracted: Extracted {
                usage: Some(usage.clone()),
                served_model: Some(served.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        // The answering model is priced, and the searches with it.
        let answered = out("claude-opus-5-5-20270101");
        let c = call_cost(&prices, &info, &answered, 0.01).unwrap();
        let p = generation(info.clone(), &answered, Some(&c), false).gateway_properties;
        assert_eq!(p["$ai_cost_model"], "claude-opus-5-5");
        assert_eq!(p["$ai_web_search_count"], 2);
        assert!((p["$ai_web_search_cost_usd"].as_f64().unwrap() - 0.02).abs() < 1e-12);
        assert!(p.get("$ai_cost_fallback").is_none());
        // An unknown answer of a known family is priced as the family's most expensive model.
        let unknown = out("claude-opus-9");
        let c = call_cost(&prices, &info, &unknown, 0.01).unwrap();
        let p = generation(info.clone(), &unknown, Some(&c), false).gateway_properties;
        assert_eq!(
            (p["$ai_cost_fallback"].as_str(), p["$ai_cost_model"].as_str()),
            (Some("family"), Some("claude-3-opus-latest"))
        );
        // A success without usage.
        let missing = Outcome { status: 200, ..Default::default() };
        let c = call_cost(&prices, &info, &missing, 0.01).unwrap();
        assert_eq!(
            generation(info.clone(), &missing, Some(&c), false).gateway_properties["$ai_cost_fallback"],
            "usage_missing"
        );
    }
}
