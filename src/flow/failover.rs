//! The downstream side of failover: a request's chain planned with the first
//! target, handed to the worker VM's relay when it is sent, the answering
//! target adopted when the response arrives, and the attempts accounted for
//! when the call ends. The upstream side is [`super::attempt`].

use std::rc::Rc;

use serde_json::{Map, Value};

use super::host::{Host, Metric};
use super::worker::Worker;
use crate::accounting::CallInfo;
use crate::config::TIMEOUT_HEADER;
use crate::errors::{ApiError, ErrorKind};
use crate::failover::relay::{Entry, Outcome, Refusal, RelayTarget};
use crate::failover::{self, chain, FAILOVER_HEADER, PROVIDER_AUTH_HEADERS, REFUSAL_HEADER, TARGET_HEADER};
use crate::forward::{self, Upstream};
use crate::keys::KeyUse;
use crate::limits::{estimate_usd, micro_to_usd, usd_to_micro};
use crate::pipeline::ResponsePlan;
use crate::providers::Provider;
use crate::request::ParsedRequest;
use crate::wire::header_pairs::Headers;
use crate::wire::Api;

use super::response::Response;

/// The request's targets planned: the first (sent as any request is) and the
/// fallbacks. A fallback that cannot serve the request (no key, a field its
/// API cannot express, refused as unpriced) is left out and counted; the first
/// target's error is the request's.
pub fn plan(
    worker: &Worker,
    host: &dyn Host,
    api: Api,
    req: &ParsedRequest,
    body: &[u8],
    routed: Upstream,
) -> Result<(Upstream, Vec<Upstream>), ApiError> {
    let settings = &worker.config.failover;
    if settings.is_off() {
        return Ok((routed, Vec::new()));
    }
    let (mut targets, mut skipped) = chain::resolve(settings, req.model.as_ref(), (routed.provider, &routed.model));
    if targets.len() > 1 && body.len() > settings.max_body_bytes {
        host.count(Metric::FailoverBodyTooLarge, 1);
        targets.truncate(1);
    }
    let table = worker.pricing.table();
    let mut routed = Some(routed);
    let mut planned: Vec<Upstream> = Vec::new();
    for t in targets {
        let reuse = routed.as_ref().is_some_and(|r| r.provider == t.provider && r.model == t.model);
        let plan = match routed.take_if(|_| reuse) {
            Some(r) => Ok(r),
            None => {
                let now = host.now_ms();
                forward::plan_target(&worker.config, &worker.keys, now, api, req, body, t.provider, &t.model)
            }
        };
        match plan {
            Err(e) if planned.is_empty() => return Err(e),
            Ok(u) if planned.is_empty() || !table.rejects(Some(u.provider), &u.model) => planned.push(u),
            _ => skipped += 1,
        }
    }
    host.count(Metric::FailoverTargetsSkipped, skipped as u64);
    let mut planned = planned.into_iter();
    let first = planned.next().ok_or_else(|| ApiError::new(ErrorKind::Internal, "The fallback chain is empty"))?;
    Ok((first, planned.collect()))
}

/// A fallback ready to go: its plan, and the body its attempt sends.
pub struct Fallback {
    pub upstream: Upstream,
    pub body: Rc<Vec<u8>>,
}

/// What the downstream keeps of a target: how to read its answer and name it.
struct Target {
    provider: Provider,
    model: String,
    base_url: String,
    /// How its response comes back; `None` for the first target (the call's own plan).
    response: Option<ResponsePlan>,
    /// The bytes its attempt sends, for the cost estimate of an attempt the provider may bill.
    body_len: usize,
    /// The gateway key its attempt uses (a 429 rests it).
    key: Option<KeyUse>,
}

/// A call sent with fallbacks.
pub struct Chain {
    /// The relay entry's key: the downstream context id.
    key: u32,
    targets: Vec<Target>,
    /// The target whose response the client gets.
    answered: usize,
    /// The upstream filter refused an attempt (its local reply is the response).
    refusal: Option<Refusal>,
    /// Response headers arrived (else the client left first).
    responded: bool,
}

/// The headers one target sets on its attempt: its plan's, less the route
/// header (the next cluster goes there) and the timeout (read once, by the
/// router, from the first attempt), plus defaults the client did not send.
fn attempt_headers(route_header: &str, u: &Upstream, client: &Headers) -> Vec<(String, String)> {
    let mut set: Vec<(String, String)> = u
        .headers()
        .filter(|(k, _)| *k != route_header && *k != TIMEOUT_HEADER)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (name, value) in &u.default_headers {
        if client.get(name).is_none() {
            set.push((name.to_string(), value.clone()));
        }
    }
    set
}

/// The first target was set on the request; hands the chain to the relay and
/// tells the router to retry across it. `None` (one attempt, counted) if the
/// relay is full.
#[allow(clippy::too_many_arguments)]
pub fn start(
    worker: &Worker,
    host: &dyn Host,
    key: u32,
    first: &Upstream,
    first_body_len: usize,
    fallbacks: Vec<Fallback>,
    client: &Headers,
    stream: bool,
    started_ms: u64,
) -> Option<Box<Chain>> {
    let config = &worker.config;
    let settings = &config.failover;
    let route_header = config.route_header.as_str();
    let mut sets = vec![attempt_headers(route_header, first, client)];
    sets.extend(fallbacks.iter().map(|f| attempt_headers(route_header, &f.upstream, client)));
    // Whatever one target sets and another does not, the other removes.
    let mut every: Vec<&str> = PROVIDER_AUTH_HEADERS.to_vec();
    for (name, _) in sets.iter().flatten() {
        if !every.contains(&name.as_str()) {
            every.push(name);
        }
    }
    let removed = |set: &[(String, String)]| -> Vec<String> {
        every.iter().filter(|n| !set.iter().any(|(k, _)| k == *n)).map(|n| n.to_string()).collect()
    };
    let target_of = |u: &Upstream, body_len: usize, response: Option<ResponsePlan>| Target {
        provider: u.provider,
        model: u.model.clone(),
        base_url: u.base_url(),
        response,
        body_len,
        key: u.key,
    };
    let mut relay_targets = vec![RelayTarget {
        cluster: config.provider(first.provider).cluster.clone(),
        provider: first.provider,
        model: first.model.clone(),
        set: Vec::new(),
        remove: Vec::new(),
        body: None,
    }];
    let mut targets = vec![target_of(first, first_body_len, None)];
    let mut timeout_ms = config.provider(first.provider).timeout_ms;
    for (f, set) in fallbacks.into_iter().zip(sets.iter().skip(1)) {
        let u = f.upstream;
        timeout_ms = timeout_ms.max(config.provider(u.provider).timeout_ms);
        relay_targets.push(RelayTarget {
            cluster: config.provider(u.provider).cluster.clone(),
            provider: u.provider,
            model: u.model.clone(),
            set: set.clone(),
            remove: removed(set),
            body: Some(Rc::clone(&f.body)),
        });
        // The target keeps its response plan (a Responses client's context can be tens of KB): moved, not copied.
        let mut target = target_of(&u, f.body.len(), None);
        target.response = Some(u.response);
        targets.push(target);
    }
    let attempts = targets.len();
    let attempt_timeout_ms = settings.attempt_timeout_ms(stream);
    let entry =
        Entry::new(relay_targets, route_header.to_string(), started_ms + settings.deadline_ms, attempt_timeout_ms);
    if !worker.relay.borrow_mut().insert(key, entry) {
        host.count(Metric::FailoverRelayFull, 1);
        return None;
    }
    host.set_request_header(FAILOVER_HEADER, Some(&key.to_string()));
    for (name, value) in failover::retry_headers(settings, attempts, stream) {
        host.set_request_header(name, Some(&value));
    }
    // The router's whole-request timeout covers every attempt: the longest of the chain's.
    host.set_request_header(TIMEOUT_HEADER, Some(&timeout_ms.to_string()));
    Some(Box::new(Chain { key, targets, answered: 0, refusal: None, responded: false }))
}

impl Chain {
    /// Response headers: which target's answer this is. The upstream filter of
    /// the answering attempt said so in a header (stripped here); Envoy's own
    /// reply after the last attempt failed names none, so the last attempt made
    /// is the one reported. The call then reads the response for that target's
    /// wire and names its provider and model. An upstream refusal becomes the
    /// client's error.
    pub fn on_response_headers(
        &mut self,
        worker: &Worker,
        host: &dyn Host,
        info: &mut CallInfo,
        response: &mut Response,
    ) -> Option<ApiError> {
        let refusal = host.response_header(REFUSAL_HEADER).and_then(|r| Refusal::from_name(&r));
        let target = host.response_header(TARGET_HEADER).and_then(|t| t.parse::<usize>().ok());
        host.set_response_header(REFUSAL_HEADER, None);
        host.set_response_header(TARGET_HEADER, None);
        let last = || worker.relay.borrow().last_index(self.key);
        let answered = match (refusal, target) {
            (None, Some(t)) if t < self.targets.len() => t,
            _ => last().unwrap_or(0),
        };
        self.adopt(answered, info, Some(response));
        self.refusal = refusal;
        self.responded = true;
        refusal.map(|r| match r {
            Refusal::Deadline => {
                ApiError::new(ErrorKind::Timeout, "No provider answered within the gateway's failover deadline")
                    .code("failover_deadline_exceeded")
            }
            other => {
                log::warn!(
                    "failover attempt refused ({}): check the failover route and the upstream filter's vm_config",
                    other.name()
                );
                ApiError::new(ErrorKind::BadGateway, "The gateway could not route the request to its fallback")
                    .code("failover_misconfigured")
            }
        })
    }

    /// The call is the target's from now on: read on its wire, named in the event.
    fn adopt(&mut self, index: usize, info: &mut CallInfo, response: Option<&mut Response>) {
        if index == self.answered {
            return;
        }
        if let Some(t) = self.targets.get_mut(index) {
            if let (Some(plan), Some(response)) = (t.response.take(), response) {
                *response = Response::new(plan, t.key);
            }
            info.provider = t.provider.name();
            info.upstream_model = t.model.clone();
            info.base_url = t.base_url.clone();
            self.answered = index;
        }
    }

    /// The client left before any response: the call is the last attempt's.
    pub fn before_finish(&mut self, worker: &Worker, info: &mut CallInfo) {
        if !self.responded {
            if let Some(last) = worker.relay.borrow().last_index(self.key) {
                self.adopt(last, info, None);
            }
        }
    }

    /// A fallback target answered.
    pub fn fell_back(&self) -> bool {
        self.answered > 0
    }

    /// The call ended with `status`: the relay entry leaves, each move to a
    /// next target is counted by provider pair, and attempts the provider may
    /// have billed (timed out after the request was sent) are estimated at
    /// their input. Returns the event's properties and that estimate in USD.
    pub fn finish(self, worker: &Worker, host: &dyn Host, status: u16) -> (Map<String, Value>, f64) {
        let entry = worker.relay.borrow_mut().take(self.key);
        let records = entry.map(|e| e.attempts).unwrap_or_default();
        if records.is_empty() && self.refusal.is_none() {
            // The upstream filter never ran: not on this cluster, or in another VM.
            host.count(Metric::FailoverUnconfirmed, 1);
        }
        // A fallen-over attempt that got a 429 rests its key, as the answering one's does.
        let now = host.now_ms();
        for r in records.iter().filter(|r| r.index != self.answered && r.outcome == Outcome::Status(429)) {
            if let Some(key) = self.targets.get(r.index).and_then(|t| t.key) {
                worker.keys.rest(key, now, crate::keys::rest_ms(None, r.retry_after.as_deref(), now));
                host.count(Metric::KeyRested(key.provider), 1);
            }
        }
        let named: Vec<(Provider, String)> = self.targets.iter().map(|t| (t.provider, t.model.clone())).collect();
        let summary = failover::summarize(&named, &records, self.answered);
        for (from, to) in &summary.hops {
            host.count(Metric::Failover(failover::pair_index(*from, *to)), 1);
        }
        let failed = status == 0 || status == 429 || status >= 500;
        if self.answered > 0 && !failed {
            host.count(Metric::FailoverAnswered, 1);
        }
        if failed && self.answered + 1 == self.targets.len() && records.len() > 1 {
            host.count(Metric::FailoverExhausted, 1);
        }
        match self.refusal {
            Some(Refusal::Deadline) => host.count(Metric::FailoverDeadline, 1),
            Some(_) => host.count(Metric::FailoverMisconfigured, 1),
            None => {}
        }
        let day = crate::pricing::day_of(host.now_ms());
        let table = worker.pricing.table();
        let mut billed_micro = 0;
        for f in summary.failed.iter().filter(|f| f.maybe_billed) {
            if let Some(t) = self.targets.get(f.index) {
                let price = table.quote(Some(t.provider), &t.model, day);
                let input = price.map_or(0.0, |p| estimate_usd(t.body_len as u64, Some(0), p.input, 0.0));
                billed_micro += usd_to_micro(input);
            }
        }
        let billed = micro_to_usd(billed_micro);
        (failover::event_properties(&summary, billed), billed)
    }
}
