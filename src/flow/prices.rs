//! The price table a worker prices with, and its run-time refresh from
//! `pricing.source` (the decisions are `pricing::refresh`'s).
//!
//! Each worker VM fetches the catalog itself, from its root context, on its
//! first tick and then every interval. A wasm VM shares no memory with the
//! others, so each would have to parse and hold its own table anyway; Envoy
//! shared data would only save the GET of a static file per worker and
//! interval, at the price of cross-VM coordination. The swap is atomic for the
//! worker: a new `Rc<PriceTable>` replaces the old one between callbacks, so a
//! call is priced wholly by one catalog; a call in flight keeps the table it
//! started with only for its estimate, and is priced at its end by the table
//! then in use. Operator overrides and the unknown-model policy carry over.

use std::cell::RefCell;
use std::rc::Rc;

use super::host::{Host, Metric};
use crate::config::Config;
use crate::pricing::refresh::{Outcome, Refresher, Source};
use crate::pricing::PriceTable;

pub struct Pricing {
    table: RefCell<Rc<PriceTable>>,
    refresh: Option<RefCell<Refresh>>,
}

struct Refresh {
    source: Source,
    refresher: Refresher,
    token: Option<u32>,
}

impl Pricing {
    pub fn new(config: &Config) -> Pricing {
        let refresh = config.pricing_source.as_ref().map(|source| {
            RefCell::new(Refresh { refresher: Refresher::new(source), source: source.clone(), token: None })
        });
        Pricing { table: RefCell::new(Rc::new(config.prices.clone())), refresh }
    }

    /// The table in use now.
    pub fn table(&self) -> Rc<PriceTable> {
        Rc::clone(&self.table.borrow())
    }

    /// From the root's tick: start a fetch when one is due.
    pub fn tick(&self, host: &dyn Host, now_ms: u64) {
        let Some(refresh) = &self.refresh else {
            return;
        };
        let mut r = refresh.borrow_mut();
        if !r.refresher.due(now_ms) {
            return;
        }
        let s = &r.source;
        let headers = [(":method", "GET"), (":path", s.path.as_str()), (":authority", s.authority.as_str())];
        let token = host.http_call(&s.cluster, &headers, None, s.timeout_ms);
        if token.is_none() {
            host.count(Metric::PricingRefreshFailed, 1);
            log::warn!("pricing: cannot call cluster {:?} for the catalog; keeping the prices in use", s.cluster);
        }
        r.token = token;
        match token {
            Some(_) => r.refresher.started(now_ms),
            None => r.refresher.not_started(now_ms),
        }
    }

    /// A callout answered in the root: true when it was the catalog fetch.
    pub fn answer(&self, host: &dyn Host, token: u32, body_size: usize) -> bool {
        let Some(refresh) = &self.refresh else {
            return false;
        };
        let mut r = refresh.borrow_mut();
        if r.token != Some(token) {
            return false;
        }
        r.token = None;
        let max_bytes = r.source.max_bytes;
        let now = host.now_ms();
        let outcome = if body_size > max_bytes {
            r.refresher.too_large(now, body_size, max_bytes)
        } else {
            let (status, body) = host.call_response(body_size);
            r.refresher.answered(now, status, &body, max_bytes)
        };
        match outcome {
            Outcome::Applied(catalog) => {
                let table = self.table.borrow().with_catalog(catalog);
                let models = table.models();
                *self.table.borrow_mut() = Rc::new(table);
                host.count(Metric::PricingRefreshOk, 1);
                host.gauge(Metric::PricingCatalogModels, models as u64);
                log::info!("pricing: catalog from cluster {:?} in use ({models} models)", r.source.cluster);
            }
            Outcome::Unchanged => host.count(Metric::PricingRefreshOk, 1),
            Outcome::Rejected(why) => {
                host.count(Metric::PricingRefreshRejected, 1);
                log::warn!(
                    "pricing: catalog refused, keeping the prices in use: {}",
                    crate::routes::truncate(&why, 200)
                );
            }
            Outcome::Failed(why) => {
                host.count(Metric::PricingRefreshFailed, 1);
                log::warn!("pricing: catalog fetch failed ({why}); keeping the prices in use");
            }
        }
        true
    }
}
