//! Sends queued `$ai_generation` events to each PostHog destination from the
//! root context (HTTP contexts only queue: Envoy cancels a request's callouts
//! when the request ends). Each destination has its own outbox, batch in
//! flight, retry schedule and metrics, so one failing never touches the other.

use std::rc::Rc;

use super::host::{Host, Lane as LaneName, LaneMetric, Metric};
use crate::capture::outbox::{classify, Outbox};
use crate::capture::timestamp::rfc3339_millis;
use crate::config::{CaptureSettings, Destination};

struct Lane {
    dest: Destination,
    outbox: Outbox,
    /// Callout token and batch id of the batch out.
    in_flight: Option<(u32, u64)>,
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
                in_flight: None,
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

    /// Sends whatever batch is due on each destination; `force` ignores intervals and backoff.
    pub fn flush(&mut self, host: &dyn Host, now_ms: u64, force: bool) {
        for lane in &mut self.lanes {
            if lane.in_flight.is_none() {
                if let Some(batch) = lane.outbox.next_batch(now_ms, force) {
                    let body = batch.body(&lane.dest.api_key, &rfc3339_millis(now_ms));
                    let headers = [
                        (":method", "POST"),
                        (":path", lane.dest.path.as_str()),
                        (":authority", lane.dest.authority.as_str()),
                        ("content-type", "application/json"),
                    ];
                    match host.http_call(&lane.dest.cluster, &headers, Some(body.as_bytes()), lane.dest.timeout_ms) {
                        Some(token) => lane.in_flight = Some((token, batch.id)),
                        None => {
                            lane.outbox.on_result(batch.id, classify(0, None), now_ms);
                        }
                    }
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
        let Some(lane) = self.lanes.iter_mut().find(|l| l.in_flight.is_some_and(|(t, _)| t == token)) else {
            return false;
        };
        if let Some((_, batch_id)) = lane.in_flight.take() {
            let result = classify(status, retry_after);
            if status != 200 {
                log::warn!("capture to {} answered {status}", lane.dest.name);
            }
            lane.outbox.on_result(batch_id, result, now_ms);
        }
        lane.report(host);
        true
    }

    pub fn is_idle(&self) -> bool {
        self.lanes.iter().all(|l| l.in_flight.is_none() && l.outbox.is_empty())
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
