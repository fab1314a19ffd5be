//! The only place that calls proxy-wasm hostcalls. Failures are logged and
//! mapped to `None`/no-ops: a failed hostcall must never trap the VM.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, Status};

use crate::errors::LocalReply;

fn logged<T>(what: &str, r: Result<T, Status>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(status) => {
            log::warn!("hostcall {what} failed: {status:?}");
            None
        }
    }
}

pub fn plugin_configuration() -> Vec<u8> {
    logged("get_buffer(plugin_configuration)", hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX))
        .flatten()
        .unwrap_or_default()
}

pub fn set_request_header(name: &str, value: Option<&str>) {
    logged("set_map_value(request)", hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value));
}

pub fn request_body(size: usize) -> Vec<u8> {
    logged("get_buffer(request_body)", hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size))
        .flatten()
        .unwrap_or_default()
}

pub fn set_request_body(replace_len: usize, body: &[u8]) {
    logged("set_buffer(request_body)", hostcalls::set_buffer(BufferType::HttpRequestBody, 0, replace_len, body));
}

pub fn response_header(name: &str) -> Option<String> {
    logged("get_map_value(response)", hostcalls::get_map_value(MapType::HttpResponseHeaders, name)).flatten()
}

pub fn set_response_header(name: &str, value: Option<&str>) {
    logged("set_map_value(response)", hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value));
}

pub fn set_response_body(replace_len: usize, body: &[u8]) {
    logged("set_buffer(response_body)", hostcalls::set_buffer(BufferType::HttpResponseBody, 0, replace_len, body));
}

pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    logged("get_property", hostcalls::get_property(path.to_vec())).flatten()
}

pub fn send_reply(reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    logged(
        "send_http_response",
        hostcalls::send_http_response(u32::from(reply.status), headers, Some(reply.body.as_bytes())),
    );
}

pub fn define_counter(name: &str) -> Option<u32> {
    logged("define_metric", hostcalls::define_metric(proxy_wasm::types::MetricType::Counter, name))
}

pub fn increment(metric: Option<u32>, by: i64) {
    if by == 0 {
        return;
    }
    if let Some(id) = metric {
        logged("increment_metric", hostcalls::increment_metric(id, by));
    }
}

pub fn now_ms() -> u64 {
    logged("get_current_time", hostcalls::get_current_time())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(feature = "callback-timing")]
pub fn now_ns() -> u64 {
    logged("get_current_time", hostcalls::get_current_time())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Starts a callout; `None` if the host refused it (unknown cluster, bad headers).
pub fn http_call(cluster: &str, headers: &[(&str, &str)], body: Option<&[u8]>, timeout_ms: u64) -> Option<u32> {
    logged(
        "dispatch_http_call",
        hostcalls::dispatch_http_call(
            cluster,
            headers.to_vec(),
            body,
            vec![],
            std::time::Duration::from_millis(timeout_ms),
        ),
    )
}

/// Status (0 when the call failed or timed out) and body of a callout response.
pub fn call_response(body_size: usize) -> (u32, Vec<u8>) {
    let status =
        logged("get_map_value(call_response)", hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status"))
            .flatten()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
    let body =
        logged("get_buffer(call_response)", hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size))
            .flatten()
            .unwrap_or_default();
    (status, body)
}

pub fn shared_data(key: &str) -> Option<Vec<u8>> {
    logged("get_shared_data", hostcalls::get_shared_data(key)).and_then(|(v, _)| v)
}

pub fn set_shared_data(key: &str, value: &[u8]) {
    logged("set_shared_data", hostcalls::set_shared_data(key, Some(value), None));
}

/// Makes later hostcalls act on another HTTP context's stream.
pub fn set_effective_context(context_id: u32) -> bool {
    logged("set_effective_context", hostcalls::set_effective_context(context_id)).is_some()
}

pub fn resume_request() {
    logged("resume_http_request", hostcalls::resume_http_request());
}

pub fn define_gauge(name: &str) -> Option<u32> {
    logged("define_metric", hostcalls::define_metric(proxy_wasm::types::MetricType::Gauge, name))
}

pub fn set_gauge(metric: Option<u32>, value: u64) {
    if let Some(id) = metric {
        logged("record_metric", hostcalls::record_metric(id, value));
    }
}

pub fn request_headers() -> Vec<(String, String)> {
    logged("get_map(request)", hostcalls::get_map(MapType::HttpRequestHeaders)).unwrap_or_default()
}

pub fn response_body(size: usize) -> Vec<u8> {
    logged("get_buffer(response_body)", hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size))
        .flatten()
        .unwrap_or_default()
}

pub fn call_response_header(name: &str) -> Option<String> {
    logged("get_map_value(call_response)", hostcalls::get_map_value(MapType::HttpCallResponseHeaders, name)).flatten()
}

pub fn set_tick_period_ms(ms: u64) {
    logged("set_tick_period", hostcalls::set_tick_period(std::time::Duration::from_millis(ms)));
}

/// Tells the host a root context that returned false from `on_done` has finished.
pub fn done() {
    logged("done", hostcalls::done());
}
