//! The only place that calls proxy-wasm hostcalls: [`WasmHost`] implements
//! the flow's [`Host`]. Failures are logged, counted and mapped to
//! `None`/no-ops: a failed hostcall must never trap the VM, which is why the
//! calls go through [`abi`] and not the SDK's wrappers.
//!
//! Each hostcall is a crossing from V8 into Envoy, so the request path makes
//! few (BENCHMARKS.md, per-callback budget): the clock is read once per
//! callback, and counter increments are summed in the VM and handed to Envoy
//! on the root's tick ([`flush_metrics`]).

use std::cell::{Cell, RefCell};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType};

use super::abi::{self, Refused};
use crate::errors::LocalReply;
use crate::flow::{Host, Metric};
use crate::wire::header_pairs::{lossy_owned, Headers};

fn logged<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> Option<T> {
    #[cfg(feature = "callback-timing")]
    HOSTCALLS.with(|n| n.set(n.get() + 1));
    match r {
        Ok(v) => Some(v),
        Err(refused) => {
            log::warn!("hostcall {what} failed: {refused}");
            PENDING.with(|p| {
                if let Some(sum) = p.borrow_mut().get_mut(Metric::HostcallsFailed.index()) {
                    *sum = sum.saturating_add(1);
                }
            });
            None
        }
    }
}

#[cfg(feature = "callback-timing")]
thread_local! {
    /// Hostcalls made so far, for `bench/profile.py --timing`.
    static HOSTCALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(feature = "callback-timing")]
pub fn hostcalls_made() -> u64 {
    HOSTCALLS.with(|n| n.get())
}

thread_local! {
    /// Metric ids by `Metric::index`, defined once per VM.
    static METRIC_IDS: RefCell<Vec<Option<u32>>> = const { RefCell::new(Vec::new()) };
    /// Counter increments not yet handed to Envoy, by `Metric::index`.
    static PENDING: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
}

/// Defines every metric; call once when the plugin is configured.
pub fn define_metrics() {
    let ids = Metric::all()
        .into_iter()
        .map(|(m, name)| {
            let kind = if m.is_gauge() { MetricType::Gauge } else { MetricType::Counter };
            logged("define_metric", abi::define_metric(kind, &name))
        })
        .collect::<Vec<_>>();
    PENDING.with(|p| *p.borrow_mut() = vec![0; ids.len()]);
    METRIC_IDS.with(|m| *m.borrow_mut() = ids);
}

/// Hands the counter increments summed since the last flush to Envoy: one
/// hostcall per counter that moved, on the root's full tick (every `FULL_TICK_MS`) and
/// when the VM stops, instead of one per increment on the request path.
pub fn flush_metrics() {
    // Taken out before the hostcalls: a refused one counts itself into PENDING.
    let moved: Vec<(usize, i64)> = PENDING.with(|pending| {
        let mut pending = pending.borrow_mut();
        // Envoy refuses a counter increment of 0 (`BadArgument`).
        pending.iter_mut().enumerate().filter(|(_, by)| **by != 0).map(|(i, by)| (i, std::mem::take(by))).collect()
    });
    METRIC_IDS.with(|ids| {
        let ids = ids.borrow();
        for (i, by) in moved {
            if let Some(id) = ids.get(i).copied().flatten() {
                logged("increment_metric", abi::increment_metric(id, by));
            }
        }
    })
}

fn metric_id(metric: Metric) -> Option<u32> {
    METRIC_IDS.with(|m| m.borrow().get(metric.index()).copied().flatten())
}

pub fn plugin_configuration() -> Vec<u8> {
    logged("get_buffer(plugin_configuration)", abi::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX))
        .flatten()
        .unwrap_or_default()
}

pub fn set_tick_period_ms(ms: u64) {
    logged("set_tick_period", abi::set_tick_period_ms(u32::try_from(ms).unwrap_or(u32::MAX)));
}

/// Tells the host a root context that returned false from `on_done` has finished.
pub fn done() {
    logged("done", abi::done());
}

#[cfg(feature = "callback-timing")]
pub fn now_ns() -> u64 {
    logged("get_current_time", abi::now_ns()).unwrap_or(0)
}

#[cfg(feature = "callback-timing")]
pub fn define_counter(name: &str) -> Option<u32> {
    logged("define_metric", abi::define_metric(MetricType::Counter, name))
}

#[cfg(feature = "callback-timing")]
pub fn increment(id: Option<u32>, by: i64) {
    // Envoy refuses a counter increment of 0 (`BadArgument`), as `flush_metrics` knows.
    if let Some(id) = id.filter(|_| by != 0) {
        logged("increment_metric", abi::increment_metric(id, by));
    }
}

/// A header map, read as `abi::get_map` reads it (invalid UTF-8 as U+FFFD).
fn header_map(map: MapType, what: &str) -> Headers {
    logged(what, abi::get_map(map)).unwrap_or_default()
}

/// One header's value, read as [`header_map`] reads them.
fn header_value(map: MapType, name: &str, what: &str) -> Option<String> {
    logged(what, abi::get_map_value(map, name)).flatten().map(lossy_owned)
}

/// Envoy, through hostcalls. Made anew for each callback: it keeps the
/// clock read in that callback, which cannot move meaningfully before it returns.
#[derive(Default)]
pub struct WasmHost {
    now_ms: Cell<Option<u64>>,
}

impl Host for WasmHost {
    fn request_headers(&self) -> Headers {
        header_map(MapType::HttpRequestHeaders, "get_map(request)")
    }

    fn request_header(&self, name: &str) -> Option<String> {
        header_value(MapType::HttpRequestHeaders, name, "get_map_value(request)")
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) {
        logged("set_map_value(request)", abi::set_map_value(MapType::HttpRequestHeaders, name, value));
    }

    fn request_body(&self, size: usize) -> Vec<u8> {
        logged("get_buffer(request_body)", abi::get_buffer(BufferType::HttpRequestBody, 0, size))
            .flatten()
            .unwrap_or_default()
    }

    fn set_request_body(&self, replace_len: usize, body: &[u8]) {
        logged("set_buffer(request_body)", abi::set_buffer(BufferType::HttpRequestBody, 0, replace_len, body));
    }

    fn resume_request(&self) {
        logged("resume_http_request", abi::resume_request());
    }

    fn send_reply(&self, reply: &LocalReply) {
        let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        logged("send_http_response", abi::send_response(u32::from(reply.status), &headers, reply.body.as_bytes()));
    }

    fn response_header(&self, name: &str) -> Option<String> {
        header_value(MapType::HttpResponseHeaders, name, "get_map_value(response)")
    }

    fn set_response_header(&self, name: &str, value: Option<&str>) {
        logged("set_map_value(response)", abi::set_map_value(MapType::HttpResponseHeaders, name, value));
    }

    fn response_body(&self, size: usize) -> Vec<u8> {
        logged("get_buffer(response_body)", abi::get_buffer(BufferType::HttpResponseBody, 0, size))
            .flatten()
            .unwrap_or_default()
    }

    fn set_response_body(&self, replace_len: usize, body: &[u8]) {
        logged("set_buffer(response_body)", abi::set_buffer(BufferType::HttpResponseBody, 0, replace_len, body));
    }

    fn code_details(&self) -> String {
        logged("get_property", abi::get_property(&["response", "code_details"]))
            .flatten()
            .map_or_else(String::new, lossy_owned)
    }

    fn cluster_name(&self) -> Option<String> {
        logged("get_property", abi::get_property(&["xds", "cluster_name"])).flatten().map(lossy_owned)
    }

    fn http_call(&self, cluster: &str, headers: &[(&str, &str)], body: Option<&[u8]>, timeout_ms: u64) -> Option<u32> {
        // The SDK's, unlike the others: its dispatcher must register the token (see `abi`).
        let timeout = std::time::Duration::from_millis(timeout_ms);
        let sent = hostcalls::dispatch_http_call(cluster, headers.to_vec(), body, vec![], timeout);
        logged("dispatch_http_call", sent.map_err(|s| Refused::Status(s as u32)))
    }

    fn call_response(&self, body_size: usize) -> (u32, Vec<u8>) {
        let status = self.call_response_header(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = logged("get_buffer(call_response)", abi::get_buffer(BufferType::HttpCallResponseBody, 0, body_size))
            .flatten()
            .unwrap_or_default();
        (status, body)
    }

    fn call_response_header(&self, name: &str) -> Option<String> {
        header_value(MapType::HttpCallResponseHeaders, name, "get_map_value(call_response)")
    }

    fn now_ms(&self) -> u64 {
        if let Some(now) = self.now_ms.get() {
            return now;
        }
        let now = logged("get_current_time", abi::now_ns()).map_or(0, |ns| ns / 1_000_000);
        self.now_ms.set(Some(now));
        now
    }

    fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        logged("get_shared_data", abi::get_shared_data(key)).flatten()
    }

    fn set_shared_data(&self, key: &str, value: &[u8]) {
        logged("set_shared_data", abi::set_shared_data(key, value));
    }

    fn set_effective_context(&self, context_id: u32) -> bool {
        logged("set_effective_context", abi::set_effective_context(context_id)).is_some()
    }

    fn count(&self, metric: Metric, by: u64) {
        PENDING.with(|p| {
            if let Some(sum) = p.borrow_mut().get_mut(metric.index()) {
                // Envoy's increment is an i64: a count past it (absurd usage from a provider) saturates.
                *sum = sum.saturating_add(i64::try_from(by).unwrap_or(i64::MAX));
            }
        })
    }

    fn gauge(&self, metric: Metric, value: u64) {
        if let Some(id) = metric_id(metric) {
            logged("record_metric", abi::record_metric(id, value));
        }
    }

    fn set_tick_period_ms(&self, ms: u64) {
        set_tick_period_ms(ms);
    }
}
