//! Sends queued `$ai_generation` events to each PostHog destination from the
//! root context (HTTP contexts only queue: Envoy cancels a request's callouts
//! when the request ends). Each destination has its own outbox, batches in
//! flight, retry schedule and metrics, so one failing never touches the other.

use std::rc::Rc;

use super::host::{Host, Lane as LaneName, LaneMetric, Metric};
use crate::capture::outbox::{classify, Outbox};
use crate::capture::timestamp::rfc3339_millis;
use crate::config::{CaptureSettings, Destination};

struct Lane {
    dest: Destination,
    outbox: Outbox,
    /// Callout token and batch id of each batch out.
    in_flight: Vec<(u32, u64)>,
    name: LaneName,
    /// Outbox counters already added to the Envoy counters.
    reported: [u64; 4],
}

pub struct Capture {
    pub settings: CaptureSettings,
    lanes: Vec<Lane>,
}

impl Capture {
    pub fn new(settings: CaptureSettings) -> Self {
        let lanes = std::iter::once((LaneName::Primary, &settings.primary))
            .chain(settings.secondary.as_ref().map(|d| (LaneName::Secondary, d)))
            .map(|(name, d)| Lane {
                dest: d.clone(),
                outbox: Outbox::new(settings.outbox.clone()),
                in_flight: Vec::new(),
                name,
                reported: [0; 4],
            })
            .collect();
        Capture { settings, lanes }
    }

    /// Queues one serialised event for every destination (the same uuid in each).
    pub fn push(&mut self, event: Rc<str>, now_ms: u64) {
        for lane in &mut self.lanes {
            lane.outbox.push(Rc::clone(&event), now_ms);
        }
    }

    /// Sends the next batch due on each destination. One per call: each answer
    /// sends the next and each tick adds one more out (up to the outbox's cap)
    /// while batches stay due, so a distant PostHog gets several at once and a
    /// near one is not sent a burst of them in one callback, which would hold
    /// up the requests behind it. `force` (drain) sends every batch it may,
    /// ignoring intervals and backoff.
    pub fn flush(&mut self, host: &dyn Host, now_ms: u64, force: bool) {
        for lane in &mut self.lanes {
            while let Some(batch) = lane.outbox.next_batch(now_ms, force) {
                let body = batch.body(&lane.dest.api_key, &rfc3339_millis(now_ms));
                let headers = [
                    (":method", "POST"),
                    (":path", lane.dest.path.as_str()),
                    (":authority", lane.dest.authority.as_str()),
                    ("content-type", "application/json"),
                ];
                match host.http_call(&lane.dest.cluster, &headers, Some(body.as_bytes()), lane.dest.timeout_ms) {
                    Some(token) => lane.in_flight.push((token, batch.id)),
                    None => {
                        // Backs the batch off; stop here, or `force` would resend it at once, forever.
                        lane.outbox.on_result(batch.id, classify(0, None), now_ms);
                        break;
                    }
                }
                if !force {
                    break;
                }
            }
            lane.report(host);
        }
    }

    /// A capture callout finished; false if `token` is not one of ours.
    pub fn on_response(
        &mut self,
        host: &dyn Host,
        token: u32,
        status: u32,
        retry_after: Option<&str>,
        now_ms: u64,
    ) -> bool {
        let found = self.lanes.iter_mut().find_map(|l| {
            let at = l.in_flight.iter().position(|(t, _)| *t == token)?;
            Some((l, at))
        });
        let Some((lane, at)) = found else {
            return false;
        };
        let (_, batch_id) = lane.in_flight.swap_remove(at);
        if status != 200 {
            log::warn!("capture to {} answered {status}", lane.dest.name);
        }
        lane.outbox.on_result(batch_id, classify(status, retry_after), now_ms);
        lane.report(host);
        true
    }

    pub fn is_idle(&self) -> bool {
        self.lanes.iter().all(|l| l.in_flight.is_empty() && l.outbox.is_empty())
    }
}

impl Lane {
    fn report(&mut self, host: &dyn Host) {
        let c = self.outbox.counters();
        let now = [c.sent, c.retried, c.failed, c.dropped];
        let metrics = [LaneMetric::Sent, LaneMetric::Retried, LaneMetric::Failed, LaneMetric::Dropped];
        for ((metric, new), old) in metrics.into_iter().zip(now).zip(self.reported.iter_mut()) {
            if new > *old {
                host.count(Metric::Capture(self.name, metric), new - *old);
                *old = new;
            }
        }
        host.gauge(Metric::Capture(self.name, LaneMetric::Depth), self.outbox.depth() as u64);
    }
}
