//! Sends recorded spend to Redis (through webdis) from the root context:
//! every request's real cost is settled into one per-worker batch, aggregated
//! per key, and flushed as one `record.lua` call every `record_flush_ms`.

use super::host::Host;
use crate::config::Config;
use crate::limits::{SpendBatch, StoreError, RECORD_MAX_KEYS};

#[derive(Default)]
pub struct Spend {
    pub pending: SpendBatch,
    /// The batch out, and its callout token.
    in_flight: Option<(u32, SpendBatch)>,
    last_flush_ms: u64,
}

/// What a record call's answer means for its batch.
pub enum Recorded {
    Done,
    /// Nothing was applied (webdis said so): the batch goes back into the queue.
    Retry,
    /// Maybe applied, maybe not: dropped rather than risk counting twice.
    Dropped(u64),
}

impl Spend {
    /// Sends the pending spend when due; `force` ignores the interval (shutdown).
    pub fn flush(&mut self, host: &dyn Host, config: &Config, now_ms: u64, force: bool) {
        let due = force || now_ms.saturating_sub(self.last_flush_ms) >= config.limits.record_flush_ms;
        if self.in_flight.is_some() || !due {
            return;
        }
        let Some(batch) = self.pending.drain(RECORD_MAX_KEYS) else {
            return;
        };
        self.last_flush_ms = now_ms;
        let request = batch.request();
        let l = &config.limits;
        match host.http_call(&l.cluster, &request.headers(&l.authority), Some(request.body.as_bytes()), l.timeout_ms) {
            Some(token) => self.in_flight = Some((token, batch)),
            None => self.pending.merge(batch),
        }
    }

    /// A record call finished; `None` if `token` is not ours.
    pub fn on_response(&mut self, token: u32, status: u32, body: &[u8]) -> Option<Recorded> {
        if self.in_flight.as_ref().is_none_or(|(t, _)| *t != token) {
            return None;
        }
        let (_, batch) = self.in_flight.take()?;
        Some(match SpendBatch::parse(status, body) {
            Ok(_) => Recorded::Done,
            Err(StoreError::Status(503)) => {
                self.pending.merge(batch);
                Recorded::Retry
            }
            Err(e) => {
                log::warn!("spend record failed: {e:?}");
                Recorded::Dropped(batch.len() as u64)
            }
        })
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.is_none() && self.pending.is_empty()
    }
}
