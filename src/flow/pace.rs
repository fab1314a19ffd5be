//! How often Envoy ticks the root context. Every tick enters the VM, so a
//! worker with no traffic ticks slowly; calls waiting to be accounted for and
//! requests deferred to the tick make it tick fast until the work is done.

use std::cell::Cell;

use super::host::Host;

/// The tick while work waits: the calls that ended are accounted for, and
/// deferred requests go on, within this many ms...
pub const TICK_MS: u64 = 10;
/// ...and how often the root also flushes queues and metrics and checks
/// stalled bodies, prices and leases (`Root::tick`): the tick when idle.
pub const FULL_TICK_MS: u64 = 100;
/// Fast ticks in a row that found nothing to do before the root slows down:
/// a worker serving a call every 100 ms or more often stays fast.
const IDLE_TICKS: u32 = 10;

/// The root's tick period: `FULL_TICK_MS` until work is queued for the tick.
#[derive(Debug, Default)]
pub struct Pace {
    fast: Cell<bool>,
    idle_ticks: Cell<u32>,
}

impl Pace {
    /// Work for the tick was queued: tick every `TICK_MS` from now, if not already.
    /// Any context may ask; Envoy applies it to the root (and re-arms its timer).
    pub fn hurry(&self, host: &dyn Host) {
        self.idle_ticks.set(0);
        if !self.fast.replace(true) {
            log::debug!("work waits for the tick: ticking every {TICK_MS} ms");
            host.set_tick_period_ms(TICK_MS);
        }
    }

    /// A tick ran; `busy` when it found work waiting. After `IDLE_TICKS` fast
    /// ticks with none, back to `FULL_TICK_MS`.
    pub fn ticked(&self, host: &dyn Host, busy: bool) {
        if busy || !self.fast.get() {
            self.idle_ticks.set(0);
            return;
        }
        let idle = self.idle_ticks.get() + 1;
        self.idle_ticks.set(idle);
        if idle >= IDLE_TICKS {
            self.fast.set(false);
            self.idle_ticks.set(0);
            log::debug!("{IDLE_TICKS} ticks without work: ticking every {FULL_TICK_MS} ms");
            host.set_tick_period_ms(FULL_TICK_MS);
        }
    }

    pub fn is_fast(&self) -> bool {
        self.fast.get()
    }
}
