//! The whole response path (`pipeline::ResponsePipeline`): every client /
//! provider pairing the gateway routes, streamed or whole, any status.
//! The plan is the one `forward::plan` makes for a request drawn from the
//! input, as are the status and the content type.
//!
//! - What the client receives, and the usage read, do not depend on how the
//!   provider's bytes are chunked.
//! - A held body (a translated answer, a Bedrock error) comes back as JSON.
//! - The client's terminal event (`completion`) is reported at most once, and
//!   whether it is does not depend on the chunking either.

use llm_gateway::config::Config;
use llm_gateway::forward::{plan, ProviderKeys};
use llm_gateway::pipeline::{ResponsePipeline, ResponsePlan};
use llm_gateway::request::parse;
use llm_gateway::usage::Extracted;
use llm_gateway::wire::Api;

use crate::{pieces, Rng};

/// Requests whose plans (from `forward::plan`, as the filter makes them)
/// cover every client / provider pairing: api, model, provider header.
const REQUESTS: [(Api, &str, Option<&str>); 12] = [
    (Api::Chat, "gpt-4o", None),
    (Api::Chat, "gemini/gemini-2.5-flash", None),
    (Api::Chat, "claude-sonnet-4-5", None),
    (Api::Chat, "claude-sonnet-4-5", Some("bedrock")),
    (Api::Responses, "gpt-4o", None),
    (Api::Responses, "claude-sonnet-4-5", None),
    (Api::Responses, "gemini-2.5-flash", None),
    (Api::Responses, "claude-sonnet-4-5", Some("bedrock")),
    (Api::Responses, "us.anthropic.claude-sonnet-4-5-20250929-v1:0", None),
    (Api::Messages, "claude-sonnet-4-5", None),
    (Api::Messages, "gpt-4o", None),
    (Api::Messages, "us.anthropic.claude-sonnet-4-5-20250929-v1:0", None),
];
const TYPES: [Option<&str>; 4] =
    [Some("text/event-stream"), Some("application/json"), Some("application/vnd.amazon.eventstream"), None];

fn respond(plan: &ResponsePlan, status: u16, ct: Option<&str>, chunks: &[&[u8]]) -> (Vec<u8>, Extracted, usize) {
    let mut p = ResponsePipeline::start(plan.clone(), status, ct, Some("ThrottlingException".into()), 1_741_569_952);
    let mut out = Vec::new();
    let mut held = Vec::new();
    let last = chunks.len().saturating_sub(1);
    let mut terminals = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let fed = p.feed(chunk, i == last);
        terminals += usize::from(fed.terminal);
        if p.holds_body() {
            held.extend_from_slice(chunk);
        } else {
            out.extend(fed.replace.unwrap_or_else(|| chunk.to_vec()));
        }
    }
    if p.holds_body() {
        let (body, _) = p.finish_whole(&held);
        if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() && plan.client != plan.provider.api() {
            panic!("held body is not JSON: {}", String::from_utf8_lossy(&body));
        }
        out = body;
    }
    (out, p.finish(), terminals)
}

/// The plan the gateway makes for one of `REQUESTS`, streaming or not, with
/// or without the client's `include_usage`.
fn make_plan(rng: &mut Rng) -> ResponsePlan {
    // Per thread: the config's price table memoises lookups (not `Sync`).
    thread_local! {
        static SETUP: &'static (Config, ProviderKeys) = Box::leak(Box::new(match Config::parse(b"{}") {
            Ok(c) => (c, ProviderKeys::from_env(|name| Some(format!("key-for-{name}")))),
            Err(e) => panic!("default config: {e}"),
        }));
    }
    let (config, keys) = SETUP.with(|s| *s);
    let (api, model, header) = REQUESTS[rng.below(REQUESTS.len())];
    let stream = rng.below(4) != 0;
    let usage = [", \"stream_options\": {\"include_usage\": true}", ""][rng.below(2)];
    let body = format!(
        r#"{{"model": "{model}", "max_tokens": 10, "stream": {stream}{usage}, "input": "hi",
            "messages": [{{"role": "user", "content": "hi"}}]}}"#
    );
    let req = match parse(body.as_bytes(), api) {
        Ok(r) => r,
        Err(e) => panic!("request {body}: {}", e.message),
    };
    match plan(config, keys, 0, api, &req, body.as_bytes(), header) {
        Ok(up) => up.response,
        Err(e) => panic!("no plan for {api:?} {model} {header:?}: {}", e.message),
    }
}

pub fn run(data: &[u8]) {
    let mut rng = Rng::new(data);
    let plan = make_plan(&mut rng);
    let status = [200, 200, 200, 400, 429, 500, 529][rng.below(7)];
    let ct = TYPES[rng.below(TYPES.len())];
    let whole = respond(&plan, status, ct, &[data]);
    let split = respond(&plan, status, ct, &pieces(data, &mut rng, 16));
    assert_eq!(
        String::from_utf8_lossy(&split.0),
        String::from_utf8_lossy(&whole.0),
        "{plan:?}: client bytes depend on chunking"
    );
    assert_eq!(split.1, whole.1, "{plan:?}: usage depends on chunking");
    assert!(whole.2 <= 1 && split.2 <= 1, "{plan:?}: terminal event reported twice");
    assert_eq!(split.2, whole.2, "{plan:?}: completion depends on chunking");
}
