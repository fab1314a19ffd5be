//! Run-time catalog refresh (`pricing.source`), the pure part: when to fetch,
//! what an answer does, and the backoff after a failure. The adapter
//! (`flow/prices.rs`) makes the call and swaps the table.
//!
//! Each worker fetches on start and then every `refresh_interval_seconds`.
//! A 200 whose body parses and validates as a whole catalog replaces the
//! prices; anything else (another status, no answer, a body over
//! `max_bytes`, a malformed or partial catalog) keeps the prices in use and
//! retries after 5 s, doubling up to the interval. A body identical to the
//! one in use is not parsed again.

use super::Catalog;

/// Where the catalog is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub max_bytes: usize,
}

/// What one answer did.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// A new catalog, validated: swap it in.
    Applied(Catalog),
    /// The same bytes as the catalog in use.
    Unchanged,
    /// The catalog was refused whole (the reason names the first problem).
    Rejected(String),
    /// No catalog: a failed call or a non-200 status.
    Failed(String),
}

const FIRST_RETRY_MS: u64 = 5_000;

#[derive(Debug)]
pub struct Refresher {
    interval_ms: u64,
    timeout_ms: u64,
    retry_ms: u64,
    next_ms: u64,
    /// When the call in flight started.
    in_flight: Option<u64>,
    applied: Option<u64>,
}

impl Refresher {
    /// Due at once: the first tick fetches.
    pub fn new(source: &Source) -> Refresher {
        Refresher {
            interval_ms: source.interval_ms.max(1),
            timeout_ms: source.timeout_ms,
            retry_ms: FIRST_RETRY_MS.min(source.interval_ms.max(1)),
            next_ms: 0,
            in_flight: None,
            applied: None,
        }
    }

    /// Whether to fetch now. A call the host never answered counts as failed
    /// once well past its timeout.
    pub fn due(&mut self, now_ms: u64) -> bool {
        if let Some(started) = self.in_flight {
            if now_ms < started.saturating_add(self.timeout_ms.saturating_mul(2)).saturating_add(1_000) {
                return false;
            }
            self.in_flight = None;
            self.retry(now_ms);
        }
        now_ms >= self.next_ms
    }

    pub fn started(&mut self, now_ms: u64) {
        self.in_flight = Some(now_ms);
    }

    /// The host refused the call (unknown cluster): try again later.
    pub fn not_started(&mut self, now_ms: u64) {
        self.in_flight = None;
        self.retry(now_ms);
    }

    /// The call answered: `status` 0 when it failed or timed out.
    pub fn answered(&mut self, now_ms: u64, status: u32, body: &[u8], max_bytes: usize) -> Outcome {
        self.in_flight = None;
        if status != 200 {
            self.retry(now_ms);
            return Outcome::Failed(if status == 0 {
                "no answer (connection failure or timeout)".into()
            } else {
                format!("HTTP {status}")
            });
        }
        if body.len() > max_bytes {
            self.retry(now_ms);
            return Outcome::Rejected(format!("{} bytes, over max_bytes {max_bytes}", body.len()));
        }
        let hash = fnv1a(body);
        if self.applied == Some(hash) {
            self.succeeded(now_ms);
            return Outcome::Unchanged;
        }
        match Catalog::parse(body) {
            Ok(catalog) => {
                self.applied = Some(hash);
                self.succeeded(now_ms);
                Outcome::Applied(catalog)
            }
            Err(e) => {
                self.retry(now_ms);
                Outcome::Rejected(e)
            }
        }
    }

    /// The answer's body is `size` bytes, over `max_bytes`: refused without reading it.
    pub fn too_large(&mut self, now_ms: u64, size: usize, max_bytes: usize) -> Outcome {
        self.in_flight = None;
        self.retry(now_ms);
        Outcome::Rejected(format!("{size} bytes, over max_bytes {max_bytes}"))
    }

    fn succeeded(&mut self, now_ms: u64) {
        self.next_ms = now_ms.saturating_add(self.interval_ms);
        self.retry_ms = FIRST_RETRY_MS.min(self.interval_ms);
    }

    fn retry(&mut self, now_ms: u64) {
        self.next_ms = now_ms.saturating_add(self.retry_ms);
        self.retry_ms = self.retry_ms.saturating_mul(2).min(self.interval_ms);
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::BUILTIN_CATALOG;

    fn source(interval_ms: u64) -> Source {
        Source {
            cluster: "pricing".into(),
            authority: "pricing".into(),
            path: "/data.json".into(),
            interval_ms,
            timeout_ms: 1_000,
            max_bytes: 1 << 20,
        }
    }

    #[test]
    fn fetches_at_start_then_every_interval() {
        let mut r = Refresher::new(&source(60_000));
        assert!(r.due(1_000));
        r.started(1_000);
        assert!(!r.due(1_500), "one call at a time");
        let out = r.answered(2_000, 200, BUILTIN_CATALOG.as_bytes(), 1 << 20);
        assert!(matches!(out, Outcome::Applied(_)));
        assert!(!r.due(61_999));
        assert!(r.due(62_000));
        r.started(62_000);
        assert_eq!(r.answered(62_100, 200, BUILTIN_CATALOG.as_bytes(), 1 << 20), Outcome::Unchanged);
        assert!(r.due(122_100) && !r.due(122_099));
    }

    #[test]
    fn failures_keep_the_prices_and_back_off() {
        let mut r = Refresher::new(&source(60_000));
        r.started(0);
        assert!(matches!(r.answered(0, 503, b"", 1 << 20), Outcome::Failed(m) if m == "HTTP 503"));
        assert!(!r.due(4_999) && r.due(5_000));
        r.started(5_000);
        assert!(matches!(r.answered(5_000, 0, b"", 1 << 20), Outcome::Failed(_)));
        assert!(!r.due(14_999) && r.due(15_000), "10 s after the second failure");
        r.started(15_000);
        assert!(matches!(r.answered(15_000, 200, b"[{\"id\":", 1 << 20), Outcome::Rejected(_)));
        assert!(r.due(35_000));
        r.started(35_000);
        assert!(matches!(r.answered(35_000, 200, b"[]", 1 << 20), Outcome::Rejected(m) if m.contains("partial")));
        r.started(75_000);
        assert!(matches!(r.too_large(75_000, 100, 10), Outcome::Rejected(m) if m.contains("max_bytes")));
        // The backoff never exceeds the interval, and a success resets it.
        assert!(!r.due(134_999) && r.due(135_000));
        r.started(135_000);
        assert!(matches!(r.answered(135_000, 200, BUILTIN_CATALOG.as_bytes(), 1 << 20), Outcome::Applied(_)));
        r.started(195_000);
        assert!(matches!(r.answered(195_000, 500, b"", 1 << 20), Outcome::Failed(_)));
        assert!(r.due(200_000));
    }

    #[test]
    fn a_call_never_answered_is_given_up() {
        let mut r = Refresher::new(&source(60_000));
        r.started(0);
        assert!(!r.due(2_999));
        assert!(!r.due(3_000), "given up at 3 s, then retried after the backoff");
        assert!(r.due(8_000));
        let mut r = Refresher::new(&source(60_000));
        r.not_started(0);
        assert!(!r.due(4_999) && r.due(5_000));
    }
}
