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
    logged(
        "get_buffer(plugin_configuration)",
        hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX),
    )
    .flatten()
    .unwrap_or_default()
}

pub fn request_header(name: &str) -> Option<String> {
    logged(
        "get_map_value(request)",
        hostcalls::get_map_value(MapType::HttpRequestHeaders, name),
    )
    .flatten()
}

pub fn set_request_header(name: &str, value: Option<&str>) {
    logged(
        "set_map_value(request)",
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value),
    );
}

pub fn request_body(size: usize) -> Vec<u8> {
    logged(
        "get_buffer(request_body)",
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size),
    )
    .flatten()
    .unwrap_or_default()
}

pub fn set_request_body(replace_len: usize, body: &[u8]) {
    logged(
        "set_buffer(request_body)",
        hostcalls::set_buffer(BufferType::HttpRequestBody, 0, replace_len, body),
    );
}

pub fn response_header(name: &str) -> Option<String> {
    logged(
        "get_map_value(response)",
        hostcalls::get_map_value(MapType::HttpResponseHeaders, name),
    )
    .flatten()
}

pub fn set_response_header(name: &str, value: Option<&str>) {
    logged(
        "set_map_value(response)",
        hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value),
    );
}

pub fn set_response_body(replace_len: usize, body: &[u8]) {
    logged(
        "set_buffer(response_body)",
        hostcalls::set_buffer(BufferType::HttpResponseBody, 0, replace_len, body),
    );
}

pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    logged("get_property", hostcalls::get_property(path.to_vec())).flatten()
}

pub fn send_reply(reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    logged(
        "send_http_response",
        hostcalls::send_http_response(
            u32::from(reply.status),
            headers,
            Some(reply.body.as_bytes()),
        ),
    );
}

pub fn define_counter(name: &str) -> Option<u32> {
    logged(
        "define_metric",
        hostcalls::define_metric(proxy_wasm::types::MetricType::Counter, name),
    )
}

pub fn increment(metric: Option<u32>, by: i64) {
    if let Some(id) = metric {
        logged("increment_metric", hostcalls::increment_metric(id, by));
    }
}
