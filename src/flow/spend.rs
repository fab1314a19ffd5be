//! Sends recorded spend to Redis (through webdis) from the root context:
//! every request's real cost is settled into one per-worker batch, aggregated
//! per key, and flushed every `record_flush_ms` as `record.lua` calls of at
//! most `RECORD_MAX_KEYS` keys, one hash tag per call against a Redis Cluster,
//! several in flight at once.

use super::host::Host;
use crate::config::Config;
use crate::limits::{SpendBatch, RECORD_MAX_KEYS};

/// Most record calls in flight at once per worker; the rest waits for the next flush.
pub const MAX_RECORDS_IN_FLIGHT: usize = 16;

#[derive(Default)]
pub struct Spend {
    pub pending: SpendBatch,
    /// The batches out, with their callout tokens.
    in_flight: Vec<(u32, SpendBatch)>,
    last_flush_ms: u64,
}

/// What a record call's answer means for its batch.
pub enum Recorded {
    Done,
    /// Nothing was applied (webdis or Redis said so): the batch goes back into the queue.
    Retry,
    /// Maybe applied, maybe not: dropped rather than risk counting twice.
    Dropped {
        keys: u64,
        /// The budget spend it carried, micro-USD.
        budget_micro: i64,
    },
}

impl Spend {
    /// Sends the pending spend when due; `force` ignores the interval (shutdown).
    pub fn flush(&mut self, host: &dyn Host, config: &Config, now_ms: u64, force: bool) {
        let l = &config.limits;
        let due = force || now_ms.saturating_sub(self.last_flush_ms) >= l.record_flush_ms;
        if !due || self.in_flight.len() >= MAX_RECORDS_IN_FLIGHT || self.pending.is_empty() {
            return;
        }
        self.last_flush_ms = now_ms;
        while self.in_flight.len() < MAX_RECORDS_IN_FLIGHT {
            let batch = if l.redis_cluster {
                self.pending.drain_slot(RECORD_MAX_KEYS)
            } else {
                self.pending.drain(RECORD_MAX_KEYS)
            };
            let Some(batch) = batch else {
                break;
            };
            let request = batch.request();
            let headers = request.headers(&l.authority);
            match host.http_call(&l.cluster, &headers, Some(request.body.as_bytes()), l.timeout_ms) {
                Some(token) => self.in_flight.push((token, batch)),
                None => {
                    self.pending.merge(batch);
                    break;
                }
            }
        }
    }

    /// A record call finished; `None` if `token` is not ours.
    pub fn on_response(&mut self, token: u32, status: u32, body: &[u8]) -> Option<Recorded> {
        let at = self.in_flight.iter().position(|(t, _)| *t == token)?;
        let (_, batch) = self.in_flight.swap_remove(at);
        Some(match SpendBatch::parse(status, body) {
            Ok(_) => Recorded::Done,
            Err(e) if e.nothing_applied() => {
                self.pending.merge(batch);
                Recorded::Retry
            }
            Err(e) => {
                log::warn!("spend record failed: {e:?}");
                Recorded::Dropped { keys: batch.len() as u64, budget_micro: batch.budget_micro() }
            }
        })
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty() && self.pending.is_empty()
    }
}
