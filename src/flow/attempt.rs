//! The upstream side of failover: the same module as an upstream HTTP filter
//! on the provider clusters, run once per attempt of a request with a chain
//! (only the failover route enables the filter; one without a chain that gets
//! here anyway is counted and passes untouched). For a chain, the attempt
//! takes the next target from the relay, names the target after it in the
//! route header (the router reads it again when it retries), and, past the
//! first target, replaces every provider header an earlier target set, the
//! path, authority and key, and the body the router replays. Its response
//! headers say which target answered. An attempt past the chain's deadline, or
//! sent where its target does not live, is answered here and never goes.

use std::cell::RefCell;
use std::rc::Rc;

use super::host::{Action, Host, Metric};
use crate::errors::LocalReply;
use crate::failover::relay::{Refusal, Relay};
use crate::failover::{FAILOVER_HEADER, REFUSAL_HEADER, TARGET_HEADER};

enum State {
    /// Waiting for the request headers.
    Start,
    /// Not a failover request, or refused: nothing more to do.
    Passing,
    /// Waiting for the end of the replayed body to put the target's in its place.
    Rewriting { key: u32, index: usize, body: Rc<Vec<u8>> },
    /// The attempt went; its response (or its end) is recorded.
    Sent { key: u32, index: usize },
}

/// One attempt of one request.
pub struct Attempt {
    relay: Rc<RefCell<Relay>>,
    state: State,
}

impl Attempt {
    pub fn new(relay: Rc<RefCell<Relay>>) -> Self {
        Attempt { relay, state: State::Start }
    }

    pub fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        let Some(key) = host.request_header(FAILOVER_HEADER).and_then(|k| k.parse::<u32>().ok()) else {
            // Reached only when the cluster's filter is not disabled by default (or a route other
            // than the failover route enables it): counted, so every plain call's pass shows.
            host.count(Metric::FailoverUnchainedAttempts, 1);
            self.state = State::Passing;
            return Action::Continue;
        };
        let cluster = host.cluster_name();
        let begun = self.relay.borrow_mut().begin(key, cluster.as_deref(), host.now_ms());
        let step = match begun {
            Ok(step) => step,
            Err(refusal) => {
                self.state = State::Passing;
                return refuse(host, refusal);
            }
        };
        if let Some(next) = &step.next_cluster {
            host.set_request_header(&step.route_header, Some(next));
        }
        let index = step.index;
        let Some(target) = step.target else {
            self.state = State::Sent { key, index };
            return Action::Continue;
        };
        for name in &target.remove {
            host.set_request_header(name, None);
        }
        for (name, value) in &target.set {
            host.set_request_header(name, Some(value));
        }
        let Some(body) = target.body.filter(|_| !end_of_stream) else {
            self.state = State::Sent { key, index };
            return Action::Continue;
        };
        // The body changes size: content-length is set once it is replaced.
        host.set_request_header("content-length", None);
        self.state = State::Rewriting { key, index, body };
        Action::Pause
    }

    pub fn on_request_body(&mut self, host: &dyn Host, body_size: usize, end_of_stream: bool) -> Action {
        let State::Rewriting { key, index, body } = &self.state else {
            return Action::Continue;
        };
        if !end_of_stream {
            return Action::Pause;
        }
        host.replace_request_body(body_size, body);
        self.state = State::Sent { key: *key, index: *index };
        Action::Continue
    }

    pub fn on_response_headers(&mut self, host: &dyn Host) -> Action {
        if let State::Sent { key, index } | State::Rewriting { key, index, .. } = &self.state {
            let status = host.response_header(":status").and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
            let retry_after = matches!(status, 429 | 503).then(|| host.response_header("retry-after")).flatten();
            self.relay.borrow_mut().answered(*key, *index, status, retry_after, host.now_ms());
            host.set_response_header(TARGET_HEADER, Some(&index.to_string()));
        }
        Action::Continue
    }

    /// The attempt is over, answered or not (connection failure, reset, timeout).
    pub fn on_done(&mut self, host: &dyn Host) {
        if let State::Sent { key, index } | State::Rewriting { key, index, .. } = &self.state {
            self.relay.borrow_mut().ended(*key, *index, host.now_ms());
        }
        self.state = State::Passing;
    }
}

/// Answers the attempt here; Envoy does not retry a filter's own reply.
fn refuse(host: &dyn Host, refusal: Refusal) -> Action {
    let status = if refusal == Refusal::Deadline { 504 } else { 502 };
    if refusal != Refusal::Deadline {
        log::warn!("failover attempt refused: {}", refusal.name());
    }
    host.send_reply(&LocalReply {
        status,
        headers: vec![(REFUSAL_HEADER, refusal.name().to_string()), ("content-type", "application/json".into())],
        body: format!(r#"{{"error":{{"message":"failover attempt refused: {}"}}}}"#, refusal.name()),
    });
    Action::Pause
}
