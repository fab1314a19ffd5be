//! A bounded delivery queue for one capture destination, with batching,
//! retry and backoff.
//!
//! Pure: the caller passes the clock and performs the HTTP calls. The filter
//! holds one `Outbox` per destination (primary, secondary) and nothing is
//! shared between them, so one failing destination never delays, drops or
//! duplicates the other's events.
//!
//! Up to `max_in_flight` batches are out at a time, so delivery is not held to
//! one batch per round trip. A batch's events leave the outbox only when it
//! resolves, so events pushed meanwhile queue behind it and are neither lost
//! nor sent twice. A batch that failed retryably is kept and resent as is
//! after the destination's backoff, for as long as the queue has room. While
//! one waits, no new batch starts, and it is resent only once no batch is
//! out, so a failing destination is probed one batch at a time. The backoff
//! is the destination's, not each batch's: it doubles with each failed probe
//! (the batches already out when it started failing count once), so the
//! probes come as often as with one batch out, and a batch sent since the
//! last failure and delivered clears it. An outage costs events only when
//! the bounded queue overflows, and then the oldest go first, counted (unless
//! `max_attempts` caps the sends per batch: then the next batch starts a
//! backoff of its own).

use std::collections::VecDeque;
use std::rc::Rc;

use super::event::batch_body;

/// Limits and timings of one outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Events held at most (queued plus the batches out); overflow drops the oldest.
    pub max_events: usize,
    /// Event bytes held at most; overflow drops the oldest.
    pub max_bytes: usize,
    /// Events per batch at most.
    pub max_batch_events: usize,
    /// Event bytes (plus one separator each) per batch at most. Leave room
    /// under PostHog's 5 MiB batch cap for the envelope (api_key, sent_at).
    /// A single larger event still goes out alone rather than sticking.
    pub max_batch_bytes: usize,
    /// A partial batch goes out once its oldest event waited this long.
    pub flush_interval_ms: u64,
    /// Batches out (or waiting for a retry) at once at most.
    pub max_in_flight: usize,
    /// Sends per batch, first one included, before its events are dropped;
    /// `None`: retried for as long as the queue has room (overflow drops the oldest).
    pub max_attempts: Option<u32>,
    /// Backoff after the first failure; doubles after each further one.
    pub backoff_base_ms: u64,
    /// Backoff ceiling: during a long outage a batch is retried this often.
    pub backoff_max_ms: u64,
    /// The longest `Retry-After` honoured; a longer one waits this long.
    pub retry_after_max_ms: u64,
}

impl Default for OutboxConfig {
    /// posthog-python's choices where it has one (`max_queue_size` 10,000,
    /// `flush_at` 100, `BATCH_SIZE_LIMIT` 5 MiB; docs/protocols/posthog.md), with a
    /// shorter flush interval and a 500 ms backoff base because a gateway's
    /// events should show up promptly, an 8 MiB byte bound because wasm
    /// memory never shrinks: an outage must not leave a worker holding more
    /// (the two destinations share their events), and 1 MiB batches, because
    /// each send builds its body as one more copy (BENCHMARKS.md). Four
    /// batches out at once carry four batches per round trip to PostHog
    /// (posthog-python's one consumer thread carries one). Unlike
    /// posthog-python (4 sends, then drop), a batch is retried while the
    /// queue has room, every 10 s at most once the backoff has grown, so a
    /// PostHog that comes back is written to within 10 s (or its `Retry-After`,
    /// honoured up to 5 minutes).
    fn default() -> Self {
        Self {
            max_events: 10_000,
            max_bytes: 8 * 1024 * 1024,
            max_batch_events: 100,
            max_batch_bytes: 1024 * 1024,
            flush_interval_ms: 1_000,
            max_in_flight: 4,
            max_attempts: None,
            backoff_base_ms: 500,
            backoff_max_ms: 10_000,
            retry_after_max_ms: 300_000,
        }
    }
}

/// How a batch send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Ok,
    /// Worth retrying; `retry_after_ms` from the server's `Retry-After`.
    Retryable {
        retry_after_ms: Option<u64>,
    },
    /// Will never succeed as sent (e.g. 400, 401, 413): drop.
    Fatal,
}

/// The outcome of a capture call: `status` 0 means no response (connect
/// failure, reset, timeout).
///
/// As posthog-python: network errors, 408, 429 and everything that is not
/// 2xx or 4xx are retried; other 4xx are fatal. `Retry-After` is read in its
/// delta-seconds form (an HTTP-date is ignored: the filter has no reason to
/// trust its clock against the server's).
pub fn classify(status: u32, retry_after_header: Option<&str>) -> Delivery {
    match status {
        200..=299 => Delivery::Ok,
        408 | 429 => retryable(retry_after_header),
        400..=499 => Delivery::Fatal,
        _ => retryable(retry_after_header),
    }
}

fn retryable(retry_after_header: Option<&str>) -> Delivery {
    let retry_after_ms = retry_after_header.and_then(|value| {
        let seconds: f64 = value.trim().parse().ok()?;
        // `as` saturates; NaN maps to 0, excluded by the range check.
        (seconds.is_finite() && seconds >= 0.0).then_some((seconds * 1_000.0) as u64)
    });
    Delivery::Retryable { retry_after_ms }
}

/// Events to send as one request. `id` changes on every attempt, so a late
/// result for an earlier attempt is recognised and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: u64,
    /// 1 for the first send.
    pub attempt: u32,
    pub events: Vec<Rc<str>>,
}

impl Batch {
    /// The request body, see [`batch_body`].
    pub fn body(&self, api_key: &str, sent_at: &str) -> String {
        let events: Vec<&str> = self.events.iter().map(|e| &**e).collect();
        batch_body(api_key, &events, sent_at)
    }
}

/// Running totals since the outbox was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events delivered.
    pub sent: u64,
    /// Batch resends.
    pub retried: u64,
    /// Send attempts that failed (retryable or fatal), per batch.
    pub failed: u64,
    /// Events given up on: overflow, fatal status, attempts exhausted.
    pub dropped: u64,
}

/// A batch taken from the queue: out, or waiting to be resent.
#[derive(Debug)]
struct Head {
    events: Vec<Rc<str>>,
    attempts: u32,
    state: HeadState,
}

#[derive(Debug, Clone, Copy)]
enum HeadState {
    InFlight { id: u64, sent_ms: u64 },
    Waiting,
}

/// The destination's retry schedule, shared by its waiting batches.
#[derive(Debug, Default)]
struct Backoff {
    /// Failed sends in a row, a wave of batches out at once counting as one.
    failures: u32,
    /// When the last failure was recorded: a batch sent before it is of the same wave.
    failed_ms: u64,
    /// No waiting batch is resent before this.
    until_ms: u64,
}

/// The queue of one destination.
#[derive(Debug)]
pub struct Outbox {
    config: OutboxConfig,
    /// Events not yet in a batch, with the time they were pushed.
    queue: VecDeque<(Rc<str>, u64)>,
    queue_bytes: usize,
    /// Oldest first.
    heads: Vec<Head>,
    backoff: Backoff,
    next_id: u64,
    counters: Counters,
}

impl Outbox {
    pub fn new(config: OutboxConfig) -> Self {
        Self {
            config,
            queue: VecDeque::new(),
            queue_bytes: 0,
            heads: Vec::new(),
            backoff: Backoff::default(),
            next_id: 1,
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Events held, the batches out or waiting for a retry included.
    pub fn depth(&self) -> usize {
        self.queue.len() + self.heads.iter().map(|h| h.events.len()).sum::<usize>()
    }

    /// Event bytes held, as [`Self::depth`].
    pub fn bytes(&self) -> usize {
        self.queue_bytes + self.heads.iter().map(|h| event_bytes(&h.events)).sum::<usize>()
    }

    /// Nothing held and nothing out: a drain is complete.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.heads.is_empty()
    }

    /// Queues one serialised event. When the bounds are exceeded the oldest
    /// events go first; a batch that is out cannot be recalled, so if only
    /// such batches are older, the new event is the one dropped.
    pub fn push(&mut self, event: impl Into<Rc<str>>, now_ms: u64) {
        let event = event.into();
        if event.len() > self.config.max_bytes {
            self.counters.dropped += 1;
            return;
        }
        self.queue_bytes += event.len();
        self.queue.push_back((event, now_ms));
        while self.depth() > self.config.max_events || self.bytes() > self.config.max_bytes {
            if !self.drop_oldest() {
                break;
            }
        }
    }

    fn drop_oldest(&mut self) -> bool {
        // A batch waiting for a retry is older than anything queued.
        let waiting = self.heads.iter_mut().enumerate().find(|(_, h)| matches!(h.state, HeadState::Waiting));
        if let Some((i, head)) = waiting {
            if !head.events.is_empty() {
                head.events.remove(0);
                self.counters.dropped += 1;
            }
            if head.events.is_empty() {
                self.heads.remove(i);
            }
            return true;
        }
        match self.queue.pop_front() {
            Some((event, _)) => {
                self.queue_bytes -= event.len();
                self.counters.dropped += 1;
                true
            }
            None => false,
        }
    }

    /// The next batch to send, if one is due: a batch waiting for a retry,
    /// once the backoff ran out and no batch is out; else, when none waits
    /// and fewer than [`OutboxConfig::max_in_flight`] are out, a new one once
    /// the queue holds a full batch or its oldest event waited
    /// [`OutboxConfig::flush_interval_ms`]. `force` (drain on shutdown) skips
    /// the waiting and the backoff: there may be no later. Each call returns
    /// at most one batch; call it again for the next.
    ///
    /// The caller must report each send's outcome with [`Self::on_result`].
    pub fn next_batch(&mut self, now_ms: u64, force: bool) -> Option<Batch> {
        let id = self.next_id;
        let may_retry = force || (!self.any_out() && now_ms >= self.backoff.until_ms);
        if let Some(head) = self.heads.iter_mut().find(|h| matches!(h.state, HeadState::Waiting)) {
            if !may_retry {
                return None;
            }
            head.attempts += 1;
            head.state = HeadState::InFlight { id, sent_ms: now_ms };
            self.next_id += 1;
            self.counters.retried += 1;
            return Some(Batch { id, attempt: head.attempts, events: head.events.clone() });
        }
        if self.heads.len() >= self.config.max_in_flight || (!force && !self.batch_due(now_ms)) {
            return None;
        }
        let mut events = Vec::new();
        let mut size = 0;
        while let Some((event, _)) = self.queue.front() {
            // Each event costs its bytes plus a separator in the body.
            let cost = event.len() + 1;
            let fits = events.is_empty()
                || (events.len() < self.config.max_batch_events && size + cost <= self.config.max_batch_bytes);
            if !fits {
                break;
            }
            size += cost;
            self.queue_bytes -= event.len();
            if let Some((event, _)) = self.queue.pop_front() {
                events.push(event);
            }
        }
        if events.is_empty() {
            return None;
        }
        self.heads.push(Head {
            events: events.clone(),
            attempts: 1,
            state: HeadState::InFlight { id, sent_ms: now_ms },
        });
        self.next_id += 1;
        Some(Batch { id, attempt: 1, events })
    }

    fn batch_due(&self, now_ms: u64) -> bool {
        let Some((_, oldest_ms)) = self.queue.front() else {
            return false;
        };
        self.queue.len() >= self.config.max_batch_events
            || self.queue_bytes >= self.config.max_batch_bytes
            || now_ms.saturating_sub(*oldest_ms) >= self.config.flush_interval_ms
    }

    fn any_out(&self) -> bool {
        self.heads.iter().any(|h| matches!(h.state, HeadState::InFlight { .. }))
    }

    /// When [`Self::next_batch`] may next return a batch without `force`;
    /// `None` while it waits for answers (every slot out, or a retry behind a
    /// batch out) or nothing is held. The filter flushes on every tick and
    /// answer instead; the tests read the schedule here.
    #[cfg(test)]
    fn next_due_ms(&self, now_ms: u64) -> Option<u64> {
        if self.heads.iter().any(|h| matches!(h.state, HeadState::Waiting)) {
            return (!self.any_out()).then_some(self.backoff.until_ms.max(now_ms));
        }
        if self.heads.len() >= self.config.max_in_flight {
            return None;
        }
        if self.batch_due(now_ms) {
            return Some(now_ms);
        }
        self.queue.front().map(|(_, oldest_ms)| oldest_ms.saturating_add(self.config.flush_interval_ms))
    }

    /// Records how batch `batch_id` ended. Returns false (and changes
    /// nothing) for an id that is not a batch out, e.g. a stale attempt.
    pub fn on_result(&mut self, batch_id: u64, result: Delivery, now_ms: u64) -> bool {
        let found = self.heads.iter().enumerate().find_map(|(at, h)| match h.state {
            HeadState::InFlight { id, sent_ms } if id == batch_id => Some((at, sent_ms, h.attempts, h.events.len())),
            _ => None,
        });
        let Some((at, sent_ms, attempts, count)) = found else {
            return false;
        };
        let count = count as u64;
        let retry_after_ms = match result {
            Delivery::Ok => {
                self.counters.sent += count;
                // Sent since the last failure and delivered: the destination is back, and
                // the batches waiting go now, one at a time. One sent before (in the same
                // wave as the failure) says nothing of its `Retry-After`.
                if sent_ms >= self.backoff.failed_ms {
                    self.backoff = Backoff::default();
                }
                self.heads.remove(at);
                return true;
            }
            Delivery::Fatal => {
                self.counters.failed += 1;
                self.counters.dropped += count;
                self.heads.remove(at);
                return true;
            }
            Delivery::Retryable { retry_after_ms } => retry_after_ms,
        };
        self.counters.failed += 1;
        if self.config.max_attempts.is_some_and(|max| attempts >= max) {
            self.counters.dropped += count;
            self.heads.remove(at);
            // As posthog-python's consumer: the next batch starts a schedule of its own.
            self.backoff = Backoff { failed_ms: now_ms, ..Backoff::default() };
            return true;
        }
        let b = &mut self.backoff;
        if b.failures == 0 || sent_ms >= b.failed_ms {
            b.failures = b.failures.saturating_add(1);
        }
        b.failed_ms = now_ms;
        b.until_ms = b.until_ms.max(now_ms.saturating_add(backoff_ms(&self.config, b.failures, retry_after_ms)));
        if let Some(head) = self.heads.get_mut(at) {
            head.state = HeadState::Waiting;
        }
        true
    }
}

/// Wait after the `failures`-th failed send in a row: base × 2^(failures−1) up to the
/// ceiling, and at least the server's `Retry-After` (up to `retry_after_max_ms`).
fn backoff_ms(config: &OutboxConfig, failures: u32, retry_after_ms: Option<u64>) -> u64 {
    let doublings = failures.saturating_sub(1).min(63);
    let exponential = config.backoff_base_ms.saturating_mul(1u64 << doublings).min(config.backoff_max_ms);
    exponential.max(retry_after_ms.unwrap_or(0).min(config.retry_after_max_ms))
}

fn event_bytes(events: &[Rc<str>]) -> usize {
    events.iter().map(|e| e.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OutboxConfig {
        OutboxConfig {
            max_events: 10,
            max_bytes: 1_000,
            max_batch_events: 3,
            max_batch_bytes: 100,
            flush_interval_ms: 1_000,
            max_in_flight: 1,
            max_attempts: Some(3),
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            retry_after_max_ms: 300_000,
        }
    }

    /// Events a..f queued, then two batches of three out.
    fn two_batches_out(max_in_flight: usize) -> (Outbox, Batch, Batch) {
        let mut outbox = Outbox::new(OutboxConfig { max_in_flight, ..config() });
        for e in ["a", "b", "c", "d", "e", "f"] {
            outbox.push(e, 0);
        }
        let first = outbox.next_batch(0, false).expect("due");
        let second = outbox.next_batch(0, false).expect("a second slot");
        (outbox, first, second)
    }

    fn texts(batch: &Batch) -> Vec<&str> {
        batch.events.iter().map(|e| &**e).collect()
    }

    #[test]
    fn a_full_batch_goes_out_at_once() {
        let mut outbox = Outbox::new(config());
        outbox.push("a", 0);
        outbox.push("b", 0);
        assert_eq!(outbox.next_batch(0, false), None);
        outbox.push("c", 0);
        outbox.push("d", 0);
        let batch = outbox.next_batch(0, false).expect("due");
        assert_eq!(texts(&batch), ["a", "b", "c"]);
        assert_eq!(batch.attempt, 1);
        assert_eq!(outbox.depth(), 4);
        assert!(outbox.on_result(batch.id, Delivery::Ok, 10));
        assert_eq!(outbox.counters().sent, 3);
        assert_eq!(outbox.depth(), 1);
    }

    #[test]
    fn a_partial_batch_goes_out_after_the_interval() {
        let mut outbox = Outbox::new(config());
        outbox.push("a", 100);
        outbox.push("b", 900);
        assert_eq!(outbox.next_due_ms(100), Some(1_100));
        assert_eq!(outbox.next_batch(1_099, false), None);
        let batch = outbox.next_batch(1_100, false).expect("due");
        assert_eq!(texts(&batch), ["a", "b"]);
        assert_eq!(outbox.next_due_ms(1_100), None, "in flight");
    }

    #[test]
    fn batches_respect_the_byte_cap() {
        let mut outbox = Outbox::new(config());
        let forty = "x".repeat(40);
        for _ in 0..3 {
            outbox.push(forty.as_str(), 0);
        }
        // 3 × 41 > 100: the byte total alone makes a batch due.
        let batch = outbox.next_batch(0, false).expect("due by bytes");
        assert_eq!(batch.events.len(), 2);
        outbox.on_result(batch.id, Delivery::Ok, 0);
        assert_eq!(outbox.next_batch(0, false), None, "one event, not due yet");
        // An event over the batch cap makes a batch due and still goes out, alone.
        outbox.push("y".repeat(150), 0);
        let batch = outbox.next_batch(0, false).expect("due by bytes");
        assert_eq!(batch.events.len(), 1);
        outbox.on_result(batch.id, Delivery::Ok, 0);
        let batch = outbox.next_batch(0, true).expect("forced");
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.events[0].len(), 150);
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_them() {
        let mut outbox = Outbox::new(config());
        for i in 0..12 {
            outbox.push(format!("e{i}"), 0);
        }
        assert_eq!(outbox.depth(), 10);
        assert_eq!(outbox.counters().dropped, 2);
        let batch = outbox.next_batch(0, false).expect("due");
        assert_eq!(texts(&batch), ["e2", "e3", "e4"]);

        // By bytes: 1,000 max.
        let mut outbox = Outbox::new(config());
        for _ in 0..3 {
            outbox.push("z".repeat(400), 0);
        }
        assert_eq!((outbox.depth(), outbox.bytes()), (2, 800));
        outbox.push("z".repeat(1_001), 0);
        assert_eq!(outbox.counters().dropped, 2, "too big to ever hold");
        assert_eq!(outbox.depth(), 2);
    }

    #[test]
    fn overflow_never_recalls_the_batch_in_flight() {
        let mut outbox = Outbox::new(OutboxConfig { max_events: 3, ..config() });
        for e in ["a", "b", "c"] {
            outbox.push(e, 0);
        }
        let batch = outbox.next_batch(0, false).expect("due");
        outbox.push("d", 1);
        assert_eq!(outbox.depth(), 3);
        assert_eq!(outbox.counters().dropped, 1, "the new event");
        outbox.on_result(batch.id, Delivery::Ok, 2);
        assert_eq!(outbox.counters().sent, 3);
        assert!(outbox.is_empty());
    }

    #[test]
    fn overflow_drops_from_a_batch_waiting_for_retry_first() {
        let mut outbox = Outbox::new(OutboxConfig { max_events: 3, ..config() });
        for e in ["a", "b", "c"] {
            outbox.push(e, 0);
        }
        let batch = outbox.next_batch(0, false).expect("due");
        outbox.on_result(batch.id, classify(503, None), 0);
        outbox.push("d", 1);
        let retry = outbox.next_batch(500, false).expect("retry");
        assert_eq!(texts(&retry), ["b", "c"]);
        outbox.on_result(retry.id, Delivery::Ok, 500);
        let next = outbox.next_batch(500, true).expect("forced");
        assert_eq!(texts(&next), ["d"]);
    }

    #[test]
    fn retries_back_off_exponentially_then_drop() {
        let mut outbox = Outbox::new(config());
        for e in ["a", "b", "c"] {
            outbox.push(e, 0);
        }
        let first = outbox.next_batch(0, false).expect("due");
        assert!(outbox.on_result(first.id, classify(500, None), 1_000));
        assert_eq!(outbox.next_due_ms(1_000), Some(1_500));
        assert_eq!(outbox.next_batch(1_499, false), None, "backing off");
        let second = outbox.next_batch(1_500, false).expect("retry");
        assert_eq!(texts(&second), ["a", "b", "c"]);
        assert_eq!(second.attempt, 2);
        assert_ne!(second.id, first.id);
        assert!(outbox.on_result(second.id, classify(0, None), 2_000));
        assert_eq!(outbox.next_batch(2_999, false), None);
        let third = outbox.next_batch(3_000, false).expect("retry after 1 s");
        assert_eq!(third.attempt, 3);
        assert!(outbox.on_result(third.id, classify(429, None), 3_000));
        assert!(outbox.is_empty(), "max attempts reached");
        let counters = outbox.counters();
        assert_eq!((counters.sent, counters.retried, counters.failed, counters.dropped), (0, 2, 3, 3));
        // The next batch starts its own schedule, as posthog-python's does.
        outbox.push("d", 3_000);
        let next = outbox.next_batch(3_000, true).expect("forced");
        assert!(outbox.on_result(next.id, classify(503, None), 3_010));
        assert_eq!(outbox.next_due_ms(3_010), Some(3_510));
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let c = config();
        let delays: Vec<u64> = (1..=9).map(|n| backoff_ms(&c, n, None)).collect();
        assert_eq!(delays, [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
        assert_eq!(backoff_ms(&c, u32::MAX, None), 30_000);
    }

    #[test]
    fn retry_after_is_a_minimum_up_to_its_own_cap() {
        let c = config();
        assert_eq!(backoff_ms(&c, 1, Some(5_000)), 5_000);
        assert_eq!(backoff_ms(&c, 3, Some(100)), 2_000);
        assert_eq!(backoff_ms(&c, 1, Some(60_000)), 60_000, "honoured past the backoff ceiling");
        assert_eq!(backoff_ms(&c, 1, Some(3_600_000)), 300_000);
        let d = OutboxConfig::default();
        let delays: Vec<u64> = (1..=7).map(|n| backoff_ms(&d, n, None)).collect();
        assert_eq!(delays, [500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);

        let mut outbox = Outbox::new(config());
        outbox.push("a", 0);
        let batch = outbox.next_batch(0, true).expect("forced");
        outbox.on_result(batch.id, classify(429, Some("7")), 100);
        assert_eq!(outbox.next_due_ms(100), Some(7_100));
    }

    /// By default a batch is retried for as long as the queue has room: a
    /// 15-second outage at 70 events a second loses nothing, and only what no
    /// longer fits is dropped, oldest first, counted; the books balance.
    #[test]
    fn an_outage_within_the_queue_bound_loses_nothing() {
        let config = OutboxConfig { max_attempts: None, ..OutboxConfig::default() };
        let mut outbox = Outbox::new(config.clone());
        let (mut now, mut pushed, mut seen) = (0u64, 0u64, Vec::new());
        let mut out: Option<Batch> = None;
        // 60 s at 70 events/s (one every ~14 ms); PostHog answers 503 (or times out) from 10 s to 25 s.
        while now < 60_000 {
            outbox.push(format!("{{\"n\":{pushed}}}"), now);
            pushed += 1;
            if let Some(batch) = out.take() {
                let down = (10_000..25_000).contains(&now);
                let result = if down { classify(503, None) } else { Delivery::Ok };
                if !down {
                    seen.extend(batch.events.iter().map(|e| e.to_string()));
                }
                outbox.on_result(batch.id, result, now);
            }
            out = outbox.next_batch(now, false);
            now += 14;
        }
        while let Some(batch) = out.take().or_else(|| outbox.next_batch(now, true)) {
            seen.extend(batch.events.iter().map(|e| e.to_string()));
            outbox.on_result(batch.id, Delivery::Ok, now);
        }
        let c = outbox.counters();
        assert_eq!((c.dropped, c.sent), (0, pushed), "{c:?}");
        assert!(c.failed > 4, "retried past the old 4 attempts: {c:?}");
        let expected: Vec<String> = (0..pushed).map(|n| format!("{{\"n\":{n}}}")).collect();
        assert_eq!(seen, expected, "each event once, in order");

        // An outage longer than the queue holds: what no longer fits goes, oldest first.
        let mut outbox = Outbox::new(OutboxConfig { max_events: 100, ..config });
        for n in 0..100 {
            outbox.push(format!("{n}"), 0);
        }
        let batch = outbox.next_batch(0, false).expect("due");
        outbox.on_result(batch.id, classify(0, None), 0);
        for n in 100..250 {
            outbox.push(format!("{n}"), 1);
        }
        assert_eq!((outbox.depth(), outbox.counters().dropped), (100, 150));
        let mut left = Vec::new();
        let mut now = 1_000;
        while let Some(batch) = outbox.next_batch(now, true) {
            left.extend(batch.events.iter().map(|e| e.to_string()));
            outbox.on_result(batch.id, Delivery::Ok, now);
            now += 1;
        }
        assert_eq!(left, (150..250).map(|n| n.to_string()).collect::<Vec<_>>(), "the newest 100 kept");
        let c = outbox.counters();
        assert_eq!(c.sent + c.dropped, 250);
    }

    #[test]
    fn several_batches_go_out_at_once_up_to_the_cap() {
        let (mut outbox, first, second) = two_batches_out(2);
        outbox.push("g", 0);
        assert_eq!((texts(&first), texts(&second)), (vec!["a", "b", "c"], vec!["d", "e", "f"]));
        assert_eq!(outbox.next_batch(0, true), None, "both slots out");
        assert_eq!(outbox.next_due_ms(0), None);
        assert_eq!(outbox.depth(), 7);
        // Answers come back in any order; each frees its own slot.
        assert!(outbox.on_result(second.id, Delivery::Ok, 10));
        assert_eq!(outbox.next_batch(10, false), None, "one event waits for its interval");
        assert_eq!(outbox.next_due_ms(10), Some(1_000));
        let third = outbox.next_batch(1_000, false).expect("due by the interval");
        assert_eq!(texts(&third), ["g"]);
        assert!(outbox.on_result(first.id, Delivery::Ok, 1_001));
        assert!(outbox.on_result(third.id, Delivery::Ok, 1_002));
        assert_eq!(outbox.counters().sent, 7);
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_batch_waiting_for_a_retry_holds_back_new_ones() {
        let (mut outbox, first, second) = two_batches_out(3);
        outbox.on_result(first.id, classify(503, None), 10);
        for e in ["g", "h", "i"] {
            outbox.push(e, 20);
        }
        assert_eq!(outbox.next_batch(20, false), None, "a full batch and a free slot, but the destination failed");
        assert_eq!(outbox.next_batch(600, false), None, "the retry waits for the batch out");
        assert_eq!(outbox.next_due_ms(20), None);
        outbox.on_result(second.id, classify(503, None), 30);
        assert_eq!(outbox.next_due_ms(30), Some(530), "the second failed in the same wave: still the first backoff");
        assert_eq!(outbox.next_batch(529, false), None);
        let retry = outbox.next_batch(530, false).expect("the backoff ran out");
        assert_eq!((texts(&retry), retry.attempt), (vec!["a", "b", "c"], 2));
        assert_eq!(outbox.next_batch(530, false), None, "one probe at a time");
        outbox.on_result(retry.id, Delivery::Ok, 540);
        let retry = outbox.next_batch(540, false).expect("an answer clears the backoff");
        assert_eq!(texts(&retry), ["d", "e", "f"]);
        outbox.on_result(retry.id, Delivery::Ok, 550);
        let next = outbox.next_batch(550, false).expect("nothing waits now");
        assert_eq!(texts(&next), ["g", "h", "i"]);
        // Overflow takes a waiting batch's events, never those out.
        let mut small = Outbox::new(OutboxConfig { max_events: 6, max_in_flight: 3, ..config() });
        for e in ["a", "b", "c", "d", "e", "f"] {
            small.push(e, 0);
        }
        let out = small.next_batch(0, false).expect("due");
        let failed = small.next_batch(0, false).expect("a second slot");
        small.on_result(failed.id, classify(503, None), 0);
        small.push("g", 1);
        assert_eq!(small.counters().dropped, 1);
        small.on_result(out.id, Delivery::Ok, 499);
        let retry = small.next_batch(500, false).expect("retry");
        assert_eq!(texts(&retry), ["e", "f"], "the waiting batch's oldest went");
        small.on_result(retry.id, Delivery::Ok, 501);
        let last = small.next_batch(501, true).expect("forced");
        assert_eq!(texts(&last), ["g"]);
        small.on_result(last.id, Delivery::Ok, 502);
        let c = small.counters();
        assert_eq!((c.sent, c.dropped), (6, 1));
    }

    /// Batches out when the destination fails are resent one at a time, once
    /// no batch is out, after the destination's backoff: the wave out when it
    /// failed counts as one failure, and each failed probe doubles the wait.
    #[test]
    fn a_failing_destination_is_sent_one_batch_at_a_time() {
        let mut outbox = Outbox::new(OutboxConfig { max_in_flight: 3, max_attempts: None, ..config() });
        for n in 0..9 {
            outbox.push(format!("{n}"), 0);
        }
        let out: Vec<Batch> = std::iter::from_fn(|| outbox.next_batch(0, false)).collect();
        assert_eq!(out.len(), 3);
        for batch in &out {
            outbox.on_result(batch.id, classify(503, None), 10);
        }
        let first = outbox.next_batch(510, false).expect("the oldest, the wave's one backoff over");
        assert_eq!((texts(&first), first.attempt), (vec!["0", "1", "2"], 2));
        assert_eq!(outbox.next_batch(510, false), None, "one at a time while failing");
        outbox.on_result(first.id, classify(0, None), 520);
        assert_eq!(outbox.next_batch(1_519, false), None, "a failed probe doubles the backoff");
        let second = outbox.next_batch(1_520, false).expect("the oldest again");
        assert_eq!((texts(&second), second.attempt), (vec!["0", "1", "2"], 3));
        outbox.on_result(second.id, classify(503, None), 1_530);
        assert_eq!(outbox.next_due_ms(1_530), Some(3_530));
        let third = outbox.next_batch(3_530, false).expect("the oldest again");
        outbox.on_result(third.id, Delivery::Ok, 3_540);
        let mut rest = Vec::new();
        while let Some(batch) = outbox.next_batch(3_540, false) {
            assert_eq!(outbox.next_batch(3_540, false), None, "one at a time");
            rest.extend(texts(&batch).iter().map(|t| t.to_string()));
            assert!(outbox.on_result(batch.id, Delivery::Ok, 3_540));
        }
        assert_eq!(rest, ["3", "4", "5", "6", "7", "8"], "an answer clears the backoff: the rest follow");
        let c = outbox.counters();
        assert_eq!((c.sent, c.failed, c.retried, c.dropped), (9, 5, 5, 0));
        assert!(outbox.is_empty());
    }

    #[test]
    fn only_a_batch_sent_after_the_failure_clears_the_backoff() {
        let (mut outbox, first, second) = two_batches_out(2);
        outbox.on_result(first.id, classify(429, Some("7")), 10);
        outbox.on_result(second.id, Delivery::Ok, 20);
        assert_eq!(outbox.next_due_ms(20), Some(7_010), "sent before the 429: its Retry-After stands");
        let retry = outbox.next_batch(7_010, false).expect("after Retry-After");
        outbox.on_result(retry.id, Delivery::Ok, 7_020);
        assert_eq!(outbox.counters().sent, 6);
        assert!(outbox.is_empty());
    }

    /// With several batches out and answers arriving out of order, through an
    /// outage, every event is delivered exactly once and the books balance.
    #[test]
    fn batches_out_of_order_through_an_outage_lose_nothing() {
        let mut outbox = Outbox::new(OutboxConfig::default());
        let (mut now, mut pushed, mut seen) = (0u64, 0u64, Vec::new());
        let mut out: Vec<Batch> = Vec::new();
        let mut most_out = 0;
        // 30 s at 500 events/s (one every 2 ms); PostHog answers 503 from 10 s to 15 s.
        while now < 30_000 {
            outbox.push(format!("{pushed}"), now);
            pushed += 1;
            // Answer every other step, newest first.
            if now % 4 == 0 {
                while let Some(batch) = out.pop() {
                    let down = (10_000..15_000).contains(&now);
                    if !down {
                        seen.extend(batch.events.iter().map(|e| e.to_string()));
                    }
                    let result = if down { classify(503, None) } else { Delivery::Ok };
                    assert!(outbox.on_result(batch.id, result, now));
                }
            }
            while let Some(batch) = outbox.next_batch(now, false) {
                out.push(batch);
            }
            most_out = most_out.max(out.len());
            now += 2;
        }
        for batch in out.drain(..) {
            seen.extend(batch.events.iter().map(|e| e.to_string()));
            outbox.on_result(batch.id, Delivery::Ok, now);
        }
        while let Some(batch) = outbox.next_batch(now, true) {
            seen.extend(batch.events.iter().map(|e| e.to_string()));
            outbox.on_result(batch.id, Delivery::Ok, now);
        }
        assert!(most_out > 1 && most_out <= 4, "{most_out} batches out at most");
        let c = outbox.counters();
        assert_eq!((c.dropped, c.sent), (0, pushed), "{c:?}");
        assert!(c.failed > 0);
        let mut seen: Vec<u64> = seen.iter().map(|e| e.parse().expect("a number")).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..pushed).collect::<Vec<_>>(), "each event once");
    }

    #[test]
    fn classify_follows_posthog_python() {
        assert_eq!(classify(200, None), Delivery::Ok);
        assert_eq!(classify(204, None), Delivery::Ok);
        for status in [400, 401, 403, 404, 413] {
            assert_eq!(classify(status, Some("5")), Delivery::Fatal, "{status}");
        }
        for status in [0, 302, 408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(status, None), Delivery::Retryable { retry_after_ms: None }, "{status}");
        }
        let after = |v| match classify(503, Some(v)) {
            Delivery::Retryable { retry_after_ms } => retry_after_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(after("12"), Some(12_000));
        assert_eq!(after(" 1.5 "), Some(1_500));
        assert_eq!(after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(after("-3"), None);
        assert_eq!(after("NaN"), None);
        assert_eq!(after("1e400"), None);
    }

    #[test]
    fn fatal_drops_the_batch() {
        let mut outbox = Outbox::new(config());
        for e in ["a", "b", "c", "d"] {
            outbox.push(e, 0);
        }
        let batch = outbox.next_batch(0, false).expect("due");
        assert!(outbox.on_result(batch.id, classify(400, None), 0));
        assert_eq!(outbox.counters().dropped, 3);
        assert_eq!(outbox.counters().failed, 1);
        let next = outbox.next_batch(0, true).expect("forced");
        assert_eq!(texts(&next), ["d"]);
    }

    #[test]
    fn events_pushed_in_flight_are_neither_lost_nor_duplicated() {
        let mut outbox = Outbox::new(config());
        for e in ["a", "b", "c"] {
            outbox.push(e, 0);
        }
        let first = outbox.next_batch(0, false).expect("due");
        for e in ["d", "e", "f", "g"] {
            outbox.push(e, 1);
        }
        assert_eq!(outbox.next_batch(5_000, true), None, "one slot, taken");
        outbox.on_result(first.id, classify(503, None), 10);
        outbox.push("h", 20);
        let retry = outbox.next_batch(510, false).expect("retry");
        assert_eq!(texts(&retry), ["a", "b", "c"], "resent as is");
        outbox.on_result(retry.id, Delivery::Ok, 520);
        let mut seen: Vec<String> = texts(&retry).iter().map(|s| s.to_string()).collect();
        while let Some(batch) = outbox.next_batch(600, true) {
            seen.extend(texts(&batch).iter().map(|s| s.to_string()));
            outbox.on_result(batch.id, Delivery::Ok, 600);
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e", "f", "g", "h"]);
        assert_eq!(outbox.counters().sent, 8);
        assert!(outbox.is_empty());
    }

    #[test]
    fn stale_or_unknown_results_are_ignored() {
        let mut outbox = Outbox::new(config());
        outbox.push("a", 0);
        assert!(!outbox.on_result(1, Delivery::Ok, 0), "nothing out");
        let first = outbox.next_batch(0, true).expect("forced");
        outbox.on_result(first.id, classify(0, None), 0);
        assert!(!outbox.on_result(first.id, Delivery::Ok, 1), "already resolved");
        let second = outbox.next_batch(500, false).expect("retry");
        assert!(!outbox.on_result(first.id, Delivery::Ok, 501), "stale attempt");
        assert!(outbox.on_result(second.id, Delivery::Ok, 502));
        assert_eq!(outbox.counters().sent, 1);
    }

    #[test]
    fn force_drains_without_waiting_for_interval_or_backoff() {
        let mut outbox = Outbox::new(config());
        outbox.push("a", 0);
        outbox.push("b", 0);
        let batch = outbox.next_batch(0, true).expect("forced");
        assert_eq!(texts(&batch), ["a", "b"]);
        outbox.on_result(batch.id, classify(503, Some("20")), 0);
        let retry = outbox.next_batch(1, true).expect("forced past backoff");
        assert_eq!(retry.attempt, 2);
        outbox.on_result(retry.id, Delivery::Ok, 2);
        assert_eq!(outbox.next_batch(3, true), None);
        assert!(outbox.is_empty());
    }

    #[test]
    fn one_failing_outbox_does_not_affect_another() {
        let mut primary = Outbox::new(config());
        let mut secondary = Outbox::new(config());
        for e in ["a", "b", "c"] {
            let event: Rc<str> = Rc::from(e);
            primary.push(Rc::clone(&event), 0);
            secondary.push(event, 0);
        }
        let p = primary.next_batch(0, false).expect("due");
        let s = secondary.next_batch(0, false).expect("due");
        primary.on_result(p.id, classify(503, None), 0);
        secondary.on_result(s.id, Delivery::Ok, 0);
        secondary.push("d", 1);
        primary.push("d", 1);
        let s = secondary.next_batch(1_001, false).expect("secondary flows");
        assert_eq!(texts(&s), ["d"]);
        secondary.on_result(s.id, Delivery::Ok, 1_001);
        assert_eq!(secondary.counters().sent, 4);
        assert_eq!(secondary.counters().failed, 0);
        assert_eq!(primary.counters().sent, 0);
        assert_eq!(primary.depth(), 4);
        let p = primary.next_batch(1_001, false).expect("retry");
        assert_eq!(texts(&p), ["a", "b", "c"]);
    }

    #[test]
    fn batch_body_wraps_the_events() {
        let batch = Batch { id: 1, attempt: 1, events: vec![Rc::from(r#"{"event":"a"}"#)] };
        assert_eq!(batch.body("phc_k", "t"), r#"{"api_key":"phc_k","batch":[{"event":"a"}],"sent_at":"t"}"#);
    }
}
