//! Test-only faults of the `fault-injection` build, chosen by the request
//! header `x-llm-gateway-test-fault` (tests/e2e/tests/vm_failure.rs).

use super::host::WasmHost;
use crate::flow::Host;

/// `trap` traps the VM here; true for `wrong-phase`, whose calls the two functions below make.
pub fn on_request_headers() -> bool {
    let fault = WasmHost::default().request_header("x-llm-gateway-test-fault");
    if fault.as_deref() == Some("trap") {
        // A trap, as a bug would cause one (panic = "abort" makes panics traps too).
        std::process::abort();
    }
    fault.as_deref() == Some("wrong-phase")
}

/// The request's headers and body used once Envoy has moved past them.
pub fn after_request_phase() {
    let host = WasmHost::default();
    let _ = host.request_headers();
    let _ = host.request_header("content-type");
    host.set_request_header("x-late", Some("1"));
    host.set_request_header("x-late", None);
    host.set_request_body(0, b"late");
}

/// The response's headers and body used in the log phase.
pub fn after_response_phase() {
    let host = WasmHost::default();
    host.set_response_header("x-late", Some("1"));
    host.set_response_body(0, b"late");
    let _ = host.response_body(16);
}
