//! The response stage: the provider's response read (and converted when the
//! client speaks another API) as it passes; usage, first token, the injected
//! usage chunk removed.

use super::host::{Action, Host, Metric};
use super::worker::Worker;
use crate::keys::{self, KeyUse};
use crate::pipeline::{ResponsePipeline, ResponsePlan};
use crate::usage::Extracted;
use crate::wire::ProviderWire;

/// One provider response, read (and converted when needed) as it passes.
pub struct Response {
    /// How the response will be read, until the provider's headers arrive and
    /// it becomes the pipeline.
    plan: Option<ResponsePlan>,
    pub status: u16,
    pipeline: Option<ResponsePipeline>,
    pub first_token_ms: Option<u64>,
    /// When the response became complete by its protocol (see `crate::completion`).
    pub completed_ms: Option<u64>,
    /// The gateway key the call used.
    pub key: Option<KeyUse>,
}

impl Response {
    pub fn new(plan: ResponsePlan, key: Option<KeyUse>) -> Self {
        Response { plan: Some(plan), status: 0, pipeline: None, first_token_ms: None, completed_ms: None, key }
    }

    /// The provider's headers arrived: choose how the body goes back. Pauses
    /// when the body must be converted whole (the status may still change).
    pub fn start(&mut self, host: &dyn Host, status: u16, end_of_stream: bool, started_ms: u64) -> Action {
        self.status = status;
        let Some(plan) = self.plan.take() else {
            return Action::Continue;
        };
        // Only a Bedrock error needs its error type; every other response saves the hostcall.
        let amzn_error_type = (plan.provider == ProviderWire::Bedrock && status >= 400)
            .then(|| host.response_header("x-amzn-errortype"))
            .flatten();
        let pipeline = ResponsePipeline::start(
            plan,
            status,
            host.response_header("content-type").as_deref(),
            amzn_error_type,
            started_ms / 1000,
        );
        if pipeline.rewrites() {
            host.set_response_header("content-length", None);
        }
        if let Some(ct) = pipeline.content_type() {
            host.set_response_header("content-type", Some(ct));
        }
        let hold = pipeline.holds_body() && !end_of_stream;
        self.pipeline = Some(pipeline);
        if hold {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    /// One body callback: tee (and convert) a chunk, or convert the whole body at its end.
    pub fn read(&mut self, host: &dyn Host, body_size: usize, end_of_stream: bool) -> Action {
        let Some(pipeline) = self.pipeline.as_mut() else {
            return Action::Continue;
        };
        if pipeline.holds_body() {
            if !end_of_stream {
                return Action::Pause;
            }
            let (out, status) = pipeline.finish_whole(&host.response_body(body_size));
            host.set_response_body(body_size, &out);
            if let Some(status) = status {
                self.status = status;
                host.set_response_header(":status", Some(&status.to_string()));
            }
        } else {
            let fed = pipeline.feed(&host.response_body(body_size), end_of_stream);
            if fed.first_token && self.first_token_ms.is_none() {
                self.first_token_ms = Some(host.now_ms());
            }
            if let Some(out) = fed.replace {
                host.set_response_body(body_size, &out);
            }
            if fed.terminal && self.completed_ms.is_none() {
                self.completed_ms = Some(host.now_ms());
            }
        }
        if end_of_stream && self.completed_ms.is_none() {
            self.completed_ms = Some(host.now_ms());
        }
        Action::Continue
    }

    pub fn extracted(&mut self) -> Extracted {
        self.pipeline.as_mut().map(ResponsePipeline::finish).unwrap_or_default()
    }
}

/// The provider answered: a 429 rests the key the call used, for the answer's
/// `retry-after-ms` or `Retry-After` (see `crate::keys`), so the next calls
/// use the provider's other keys.
pub fn rest_rate_limited_key(worker: &Worker, host: &dyn Host, key: Option<KeyUse>, status: u16) {
    let Some(key) = key.filter(|_| status == 429) else {
        return;
    };
    let now = host.now_ms();
    let rest = keys::rest_ms(
        host.response_header("retry-after-ms").as_deref(),
        host.response_header("retry-after").as_deref(),
        now,
    );
    worker.keys.rest(key, now, rest);
    host.count(Metric::KeyRested(key.provider), 1);
    // The key's place in its pool, never the key.
    log::info!("{} key #{} answered 429; resting it {rest} ms", key.provider, key.index);
}
