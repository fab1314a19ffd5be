//! What the downstream filter and the upstream filter of each attempt share.
//! Both run in the same VM (same `vm_id`, code and `vm_config`), on the
//! request's worker, so the chain goes down and each attempt's outcome comes
//! back through memory, keyed by the downstream context id (carried in a
//! header only the filter sets). Filter state does not cross between the two
//! chains, and shared data cannot delete keys.
//!
//! All attempts of a request share one request header map: what attempt k set
//! is still there for attempt k+1, so each attempt removes every header an
//! earlier target may have set. The body is the router's replay of what the
//! downstream filter sent (the first target's), so later attempts replace it.

use std::collections::HashMap;
use std::rc::Rc;

use crate::providers::Provider;

/// Entries live from the request's send to its end; past this many at once on
/// one worker, new requests get one attempt (counted).
pub const CAPACITY: usize = 10_000;

/// One target as its attempt applies it.
#[derive(Clone, Debug)]
pub struct RelayTarget {
    pub cluster: String,
    pub provider: Provider,
    pub model: String,
    /// Headers to set: path, authority, the gateway's key, provider headers.
    pub set: Vec<(String, String)>,
    /// Headers another target sets that this one must not send.
    pub remove: Vec<String>,
    /// The body to send; `None` for the first target, whose body the router replays.
    pub body: Option<Rc<Vec<u8>>>,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Sent; no answer yet.
    Pending,
    /// Response headers with this status.
    Status(u16),
    /// No response headers: the connection failed, the stream was reset, or the
    /// attempt timed out (`timed_out`: it lasted its whole per-attempt timeout).
    NoResponse { timed_out: bool },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The target it served (its place in the chain).
    pub index: usize,
    pub outcome: Outcome,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    /// The provider's `retry-after`, on a 429 or 503.
    pub retry_after: Option<String>,
}

#[derive(Debug)]
pub struct Entry {
    pub targets: Vec<RelayTarget>,
    /// The header the route's cluster specifier reads.
    pub route_header: String,
    /// No attempt after the first starts at or after this time.
    pub deadline_ms: u64,
    /// The per-attempt timeout the router applies, to tell a timeout from a reset.
    pub attempt_timeout_ms: Option<u64>,
    next: usize,
    pub attempts: Vec<AttemptRecord>,
}

impl Entry {
    pub fn new(
        targets: Vec<RelayTarget>,
        route_header: String,
        deadline_ms: u64,
        attempt_timeout_ms: Option<u64>,
    ) -> Self {
        Entry { targets, route_header, deadline_ms, attempt_timeout_ms, next: 0, attempts: Vec::new() }
    }
}

/// Why an attempt must not go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The chain's deadline passed before this attempt.
    Deadline,
    /// The router sent it to another cluster than its target's (the route lacks
    /// the failover cluster specifier, or refresh_cluster_on_retry).
    Misrouted,
    /// More attempts than targets (the retry bound was not applied).
    Exhausted,
    /// No entry for the request: the VM was replaced, or the upstream filter
    /// runs in another VM than the downstream one (a different vm_config).
    Lost,
}

impl Refusal {
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Deadline => "deadline",
            Refusal::Misrouted => "misrouted",
            Refusal::Exhausted => "exhausted",
            Refusal::Lost => "lost",
        }
    }

    pub fn from_name(name: &str) -> Option<Refusal> {
        [Refusal::Deadline, Refusal::Misrouted, Refusal::Exhausted, Refusal::Lost]
            .into_iter()
            .find(|r| r.name() == name)
    }
}

/// What an attempt does.
#[derive(Debug)]
pub struct Step {
    pub index: usize,
    /// The target's headers and body; the first target's were set downstream.
    pub target: Option<RelayTarget>,
    /// Written into the route header for the router's next attempt.
    pub next_cluster: Option<String>,
    pub route_header: String,
}

#[derive(Default)]
pub struct Relay {
    entries: HashMap<u32, Entry>,
}

impl Relay {
    /// False when full or taken; the request then makes one attempt.
    pub fn insert(&mut self, key: u32, entry: Entry) -> bool {
        if self.entries.len() >= CAPACITY || self.entries.contains_key(&key) {
            return false;
        }
        self.entries.insert(key, entry);
        true
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// An attempt starts on `cluster` (when the host names it) at `now_ms`.
    pub fn begin(&mut self, key: u32, cluster: Option<&str>, now_ms: u64) -> Result<Step, Refusal> {
        let entry = self.entries.get_mut(&key).ok_or(Refusal::Lost)?;
        let index = entry.next;
        let target = entry.targets.get(index).ok_or(Refusal::Exhausted)?;
        if index > 0 && now_ms >= entry.deadline_ms {
            return Err(Refusal::Deadline);
        }
        if cluster.is_some_and(|c| c != target.cluster) {
            return Err(Refusal::Misrouted);
        }
        let target = (index > 0).then(|| target.clone());
        entry.next += 1;
        entry.attempts.push(AttemptRecord {
            index,
            outcome: Outcome::Pending,
            started_ms: now_ms,
            ended_ms: None,
            retry_after: None,
        });
        Ok(Step {
            index,
            target,
            next_cluster: entry.targets.get(index + 1).map(|t| t.cluster.clone()),
            route_header: entry.route_header.clone(),
        })
    }

    /// Attempt `index` got response headers.
    pub fn answered(&mut self, key: u32, index: usize, status: u16, retry_after: Option<String>, now_ms: u64) {
        if let Some(a) = self.record(key, index) {
            a.outcome = Outcome::Status(status);
            a.retry_after = retry_after;
            a.ended_ms.get_or_insert(now_ms);
        }
    }

    /// Attempt `index` is over, however it ended.
    pub fn ended(&mut self, key: u32, index: usize, now_ms: u64) {
        let timeout = self.entries.get(&key).and_then(|e| e.attempt_timeout_ms);
        if let Some(a) = self.record(key, index) {
            if a.outcome == Outcome::Pending {
                // A timed-out attempt ends on the router's timer, which starts a little
                // before the attempt's start is recorded here (6 ms of a 300 ms timeout
                // on a loaded 2-core machine): 5% of the timeout, within 5..=250 ms.
                let timed_out =
                    timeout.is_some_and(|t| now_ms.saturating_sub(a.started_ms) + (t / 20).clamp(5, 250) >= t);
                a.outcome = Outcome::NoResponse { timed_out };
                a.ended_ms = Some(now_ms);
            }
        }
    }

    fn record(&mut self, key: u32, index: usize) -> Option<&mut AttemptRecord> {
        self.entries.get_mut(&key)?.attempts.iter_mut().rev().find(|a| a.index == index)
    }

    /// The last attempt made so far, if any.
    pub fn last_index(&self, key: u32) -> Option<usize> {
        self.entries.get(&key)?.attempts.last().map(|a| a.index)
    }

    /// The request is over: its entry leaves the relay.
    pub fn take(&mut self, key: u32) -> Option<Entry> {
        self.entries.remove(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(cluster: &str, provider: Provider, model: &str) -> RelayTarget {
        RelayTarget {
            cluster: cluster.into(),
            provider,
            model: model.into(),
            set: vec![(":path".into(), format!("/{model}"))],
            remove: vec!["x-api-key".into()],
            body: Some(Rc::new(model.as_bytes().to_vec())),
        }
    }

    fn relay() -> Relay {
        let mut r = Relay::default();
        let targets = vec![
            target("anthropic", Provider::Anthropic, "claude"),
            target("bedrock", Provider::Bedrock, "us.claude"),
            target("openai", Provider::OpenAi, "gpt-5"),
        ];
        assert!(r.insert(7, Entry::new(targets, "x-llm-gateway-cluster".into(), 10_000, Some(1000))));
        r
    }

    #[test]
    fn attempts_walk_the_chain_and_record_how_each_ended() {
        let mut r = relay();
        let first = r.begin(7, Some("anthropic"), 100).unwrap();
        assert_eq!((first.index, first.next_cluster.as_deref()), (0, Some("bedrock")));
        assert!(first.target.is_none(), "the first target's request was set downstream");
        r.answered(7, 0, 529, None, 150);
        r.ended(7, 0, 151);
        let second = r.begin(7, Some("bedrock"), 200).unwrap();
        assert_eq!((second.index, second.next_cluster.as_deref()), (1, Some("openai")));
        assert_eq!(second.target.as_ref().map(|t| t.model.as_str()), Some("us.claude"));
        r.ended(7, 1, 1200);
        let third = r.begin(7, None, 1300).unwrap();
        assert_eq!((third.index, third.next_cluster), (2, None));
        r.answered(7, 2, 200, None, 1400);
        assert_eq!(r.last_index(7), Some(2));
        assert_eq!(r.begin(7, Some("openai"), 1500).unwrap_err(), Refusal::Exhausted);
        let entry = r.take(7).unwrap();
        let outcomes: Vec<Outcome> = entry.attempts.iter().map(|a| a.outcome).collect();
        assert_eq!(outcomes, [Outcome::Status(529), Outcome::NoResponse { timed_out: true }, Outcome::Status(200)]);
        assert!(r.is_empty());
        assert_eq!(r.begin(7, None, 1600).unwrap_err(), Refusal::Lost);
    }

    #[test]
    fn a_reset_is_not_a_timeout() {
        let mut r = relay();
        r.begin(7, None, 100).unwrap();
        r.ended(7, 0, 130);
        assert_eq!(r.take(7).unwrap().attempts[0].outcome, Outcome::NoResponse { timed_out: false });
    }

    #[test]
    fn an_attempt_ending_within_5_percent_of_its_timeout_timed_out() {
        // The 1000 ms attempt timeout allows 50 ms.
        for (ended, timed_out) in [(1049, false), (1050, true), (1100, true)] {
            let mut r = relay();
            r.begin(7, None, 100).unwrap();
            r.ended(7, 0, ended);
            assert_eq!(r.take(7).unwrap().attempts[0].outcome, Outcome::NoResponse { timed_out }, "{ended}");
        }
    }

    #[test]
    fn refusals() {
        let mut r = relay();
        assert_eq!(r.begin(7, Some("openai"), 100).unwrap_err(), Refusal::Misrouted);
        r.begin(7, Some("anthropic"), 100).unwrap();
        assert_eq!(r.begin(7, Some("bedrock"), 10_000).unwrap_err(), Refusal::Deadline);
        for refusal in [Refusal::Deadline, Refusal::Misrouted, Refusal::Exhausted, Refusal::Lost] {
            assert_eq!(Refusal::from_name(refusal.name()), Some(refusal));
        }
        assert!(!r.insert(7, Entry::new(Vec::new(), String::new(), 0, None)), "a key is never reused");
    }
}
