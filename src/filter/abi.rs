//! The proxy-wasm ABI calls the filter makes, declared here instead of taken
//! from the SDK's `hostcalls`: those panic on every status they do not expect
//! (proxy-wasm-rust-sdk #82, #185, #310), and Envoy answers `BadArgument` when
//! a header map is used after its phase has continued. A panic traps the VM,
//! and with it every request on the worker. Here every status comes back as an
//! error, for `host` to log and count.
//!
//! Callouts stay with the SDK (`hostcalls::dispatch_http_call`): its
//! dispatcher must register each token to route the answer, and that wrapper
//! returns the statuses Envoy's `httpCall` gives (`BadArgument`, `InternalFailure`).

use std::ptr::{null, null_mut};

use proxy_wasm::types::{BufferType, MapType, MetricType};

use crate::wire::header_pairs::{decode_pairs, encode_pairs, Headers};

/// Why a hostcall gave nothing: the status Envoy answered, or a reply that
/// does not parse as the ABI says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    Status(u32),
    Malformed,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The ABI's names (proxy-wasm spec, `proxy_status_t`).
            Refused::Status(s) => match s {
                1 => f.write_str("NotFound"),
                2 => f.write_str("BadArgument"),
                3 => f.write_str("SerializationFailure"),
                4 => f.write_str("ParseFailure"),
                7 => f.write_str("Empty"),
                8 => f.write_str("CasMismatch"),
                10 => f.write_str("InternalFailure"),
                12 => f.write_str("Unimplemented"),
                other => write!(f, "status {other}"),
            },
            Refused::Malformed => f.write_str("a reply that does not parse"),
        }
    }
}

pub type Result<T> = std::result::Result<T, Refused>;

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

fn check(status: u32) -> Result<()> {
    if status == OK {
        Ok(())
    } else {
        Err(Refused::Status(status))
    }
}

/// What a getter answered: its bytes, `None` for `NotFound`, or the refusal.
/// A value of no bytes comes back as `Some` of none (a header can be empty).
fn found(status: u32, data: *mut u8, size: usize) -> Result<Option<Vec<u8>>> {
    match status {
        OK if data.is_null() => Ok(Some(Vec::new())),
        // SAFETY: the host allocated `size` bytes at `data` through the SDK's
        // `proxy_on_memory_allocate` (a boxed slice of `size` bytes, align 1)
        // and wrote them; ownership passes to us, as in the SDK's own getters.
        OK => Ok(Some(unsafe { Vec::from_raw_parts(data, size, size) })),
        NOT_FOUND => Ok(None),
        other => Err(Refused::Status(other)),
    }
}

/// As [`found`], with an empty value as none (buffers, properties, shared data).
fn found_nonempty(status: u32, data: *mut u8, size: usize) -> Result<Option<Vec<u8>>> {
    Ok(found(status, data, size)?.filter(|b| !b.is_empty()))
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_buffer_bytes(kind: u32, start: usize, max: usize, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_set_buffer_bytes(kind: u32, start: usize, len: usize, data: *const u8, size: usize) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_continue_stream(stream: u32) -> u32;
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_get_property(path: *const u8, path_size: usize, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
        cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(key: *const u8, key_size: usize, value: *const u8, value_size: usize, cas: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, by: i64) -> u32;
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_done() -> u32;
}

/// Up to `max` bytes of a buffer from `start`; `None` when the host has none or it is empty.
pub fn get_buffer(kind: BufferType, start: usize, max: usize) -> Result<Option<Vec<u8>>> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: the out-pointers are live locals; the host writes them before returning.
    let status = unsafe { proxy_get_buffer_bytes(kind as u32, start, max, &mut data, &mut size) };
    found_nonempty(status, data, size)
}

/// Replaces `len` bytes of a buffer from `start` with `bytes`.
pub fn set_buffer(kind: BufferType, start: usize, len: usize, bytes: &[u8]) -> Result<()> {
    // SAFETY: the host only reads `bytes.len()` bytes from a live slice.
    check(unsafe { proxy_set_buffer_bytes(kind as u32, start, len, bytes.as_ptr(), bytes.len()) })
}

/// A header map, its names and values read as text (`decode_pairs`).
pub fn get_map(map: MapType) -> Result<Headers> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: as in `get_buffer`.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    let bytes = found(status, data, size)?.unwrap_or_default();
    decode_pairs(&bytes).ok_or(Refused::Malformed)
}

/// One header's value; `None` when the map has no such header.
pub fn get_map_value(map: MapType, name: &str) -> Result<Option<Vec<u8>>> {
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: the host reads `name` from a live slice and writes the out-pointers.
    let status = unsafe { proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size) };
    found(status, data, size)
}

/// Sets a header (replacing every value it had), or removes it with `None`.
pub fn set_map_value(map: MapType, name: &str, value: Option<&str>) -> Result<()> {
    // SAFETY: the host only reads the two live slices.
    check(unsafe {
        match value {
            Some(v) => proxy_replace_header_map_value(map as u32, name.as_ptr(), name.len(), v.as_ptr(), v.len()),
            None => proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()),
        }
    })
}

/// Lets the paused request go on (`proxy_continue_stream` of the request).
pub fn resume_request() -> Result<()> {
    const HTTP_REQUEST: u32 = 0;
    // SAFETY: no pointers.
    check(unsafe { proxy_continue_stream(HTTP_REQUEST) })
}

/// Answers the client instead of the upstream.
pub fn send_response(status: u32, headers: &[(&str, &str)], body: &[u8]) -> Result<()> {
    let headers = encode_pairs(headers);
    // SAFETY: the host only reads the live slices; no gRPC status (-1).
    check(unsafe {
        proxy_send_local_response(status, null(), 0, body.as_ptr(), body.len(), headers.as_ptr(), headers.len(), -1)
    })
}

/// A property by its path (e.g. `["response", "code_details"]`); `None` when unset or empty.
pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>> {
    let path = path.join("\0");
    let (mut data, mut size) = (null_mut(), 0);
    // SAFETY: as in `get_map_value`.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    found_nonempty(status, data, size)
}

/// A value of the process-wide store; `None` when the key is unset or empty.
pub fn get_shared_data(key: &str) -> Result<Option<Vec<u8>>> {
    let (mut data, mut size, mut cas) = (null_mut(), 0, 0);
    // SAFETY: as in `get_map_value`.
    let status = unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    found_nonempty(status, data, size)
}

/// Sets a value of the process-wide store, whatever its version.
pub fn set_shared_data(key: &str, value: &[u8]) -> Result<()> {
    // SAFETY: the host only reads the live slices; cas 0 skips the version check.
    check(unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), 0) })
}

/// Makes later calls act on another context's stream.
pub fn set_effective_context(context_id: u32) -> Result<()> {
    // SAFETY: no pointers.
    check(unsafe { proxy_set_effective_context(context_id) })
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> Result<u64> {
    let mut ns = 0;
    // SAFETY: the out-pointer is a live local.
    check(unsafe { proxy_get_current_time_nanoseconds(&mut ns) })?;
    Ok(ns)
}

pub fn set_tick_period_ms(ms: u32) -> Result<()> {
    // SAFETY: no pointers.
    check(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

pub fn define_metric(kind: MetricType, name: &str) -> Result<u32> {
    let mut id = 0;
    // SAFETY: the host reads `name` from a live slice and writes the live local.
    check(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, by: i64) -> Result<()> {
    // SAFETY: no pointers.
    check(unsafe { proxy_increment_metric(id, by) })
}

pub fn record_metric(id: u32, value: u64) -> Result<()> {
    // SAFETY: no pointers.
    check(unsafe { proxy_record_metric(id, value) })
}

/// Tells the host a root context that returned false from `on_done` has finished.
pub fn done() -> Result<()> {
    // SAFETY: no pointers.
    check(unsafe { proxy_done() })
}
