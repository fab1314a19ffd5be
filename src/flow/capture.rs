//! The capture stage: when a forwarded call ends, however it ended, its cost,
//! its metrics, its spend against the limits, and its `$ai_generation` event.

use std::rc::Rc;

use super::failover::Chain;
use super::host::{Host, Metric};
use super::limits::Grant;
use super::response::Response;
use super::worker::Worker;
use crate::accounting::{self, CallInfo, Outcome};
use crate::completion;
use crate::pricing::{Cost, CostSource};

/// A call sent upstream, from the request's side and the response's.
pub struct Call {
    pub info: CallInfo,
    pub response: Response,
    pub grant: Grant,
    /// The fallback chain, when the request has one.
    pub chain: Option<Box<Chain>>,
}

/// A call whose stream is over, waiting for the root's tick to be accounted for.
pub struct Ended {
    call: Call,
    ended_ms: u64,
    /// Why it is incomplete, if it is.
    interrupted: Option<String>,
}

/// Calls waiting past this many are accounted for at once, so the queue stays bounded.
pub const MAX_WAITING: usize = 2048;

/// The call's stream is over: note when and how it ended (only now can Envoy
/// say why an incomplete one stopped; `code_details` is read only then) and
/// queue it for the root's next tick. Envoy runs this callback before it writes
/// the response's last bytes to the client, so accounting here would delay it.
pub fn ended(worker: &Worker, host: &dyn Host, call: Call) {
    let (ended_ms, interrupted) = completion::ending(call.response.completed_ms, host.now_ms(), || host.code_details());
    let ended = Ended { call, ended_ms, interrupted };
    let mut waiting = worker.ended.borrow_mut();
    if waiting.len() < MAX_WAITING {
        waiting.push(ended);
        drop(waiting);
        worker.pace.hurry(host);
        return;
    }
    drop(waiting);
    finish(worker, host, ended);
}

/// The root's tick (or its drain): accounts for every call that ended since the last.
pub fn account_ended(worker: &Worker, host: &dyn Host) {
    let ended = std::mem::take(&mut *worker.ended.borrow_mut());
    for e in ended {
        finish(worker, host, e);
    }
}

/// Accounts for an ended call and queues its event.
fn finish(worker: &Worker, host: &dyn Host, ended: Ended) {
    let Ended { call: Call { mut info, mut response, grant, chain }, ended_ms, interrupted } = ended;
    let mut out = Outcome {
        status: if response.status == 0 { 499 } else { response.status },
        ended_ms,
        first_token_ms: response.first_token_ms,
        extracted: response.extracted(),
        interrupted,
    };
    // Failover: the attempts in the event and the metrics, and those the provider
    // may have billed in the spend. A fallback that names no model answered as the one it was sent.
    let mut attempts_usd = 0.0;
    if let Some(mut chain) = chain {
        chain.before_finish(worker, &mut info);
        if chain.fell_back() && out.extracted.served_model.is_none() {
            out.extracted.served_model = Some(info.upstream_model.clone());
        }
        let (props, billed) = chain.finish(worker, host, response.status);
        info.gateway_properties.extend(props);
        attempts_usd = billed;
    }
    let cost = accounting::call_cost(&worker.pricing.table(), &info, &out, worker.config.fallback_cost_usd);
    count(host, &info, &out, cost.as_ref());
    host.count(Metric::CostMicroUsd, micro_usd(attempts_usd));
    grant.settle(worker, cost.as_ref().map_or(0.0, |c| c.total_usd) + attempts_usd, info.team_id, out.ended_ms);
    if let Some(capture) = &worker.capture {
        let mut capture = capture.borrow_mut();
        let settings = &capture.settings;
        let event = accounting::generation(info, &out, cost.as_ref(), settings.content)
            .to_json(&settings.region_url, settings.max_event_bytes);
        capture.push(Rc::from(event), out.ended_ms);
        host.count(Metric::EventsQueued, 1);
    }
}

fn count(host: &dyn Host, call: &CallInfo, out: &Outcome, cost: Option<&Cost>) {
    if let Some(p) = crate::providers::Provider::from_name(call.provider) {
        host.count(Metric::Responses(p, Metric::status_class(out.status)), 1);
    }
    match &out.extracted.usage {
        Some(u) => {
            host.count(Metric::TokensInput, u.input_tokens);
            host.count(Metric::TokensOutput, u.output_tokens);
            host.count(Metric::TokensCacheRead, u.cache_read_tokens.unwrap_or(0));
            host.count(Metric::TokensCacheCreation, u.cache_creation_tokens.unwrap_or(0));
            host.count(Metric::TokensReasoning, u.reasoning_tokens.unwrap_or(0));
        }
        None if (200..300).contains(&out.status) => host.count(Metric::UsageMissing, 1),
        None => {}
    }
    if let Some(c) = cost {
        host.count(Metric::CostMicroUsd, micro_usd(c.total_usd));
        // A call not priced from its own row: in total, per family pricing, and
        // in its model's bucket (names are unbounded, buckets are not).
        if c.source != CostSource::Table {
            host.count(Metric::CostFallback, 1);
            if c.source == CostSource::Family {
                host.count(Metric::CostFallbackFamily, 1);
            }
            let model = out.extracted.served_model.as_deref().unwrap_or(&call.upstream_model);
            host.count(Metric::cost_fallback_bucket(model), 1);
        }
    }
}

/// A cost in micro-dollars for a counter, rounded as spend is (`usd_to_micro`
/// is never negative: negative and non-finite costs are 0).
fn micro_usd(usd: f64) -> u64 {
    crate::limits::usd_to_micro(usd).unsigned_abs()
}
