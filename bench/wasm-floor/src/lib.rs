//! Two floor filters, chosen by the plugin configuration, that do the least the
//! gateway has to do, so the benchmark can split the gateway's added latency
//! into "any wasm filter on this Envoy" and "the gateway's own work":
//!
//! - default (`wasm-noop`): sets the routing header in the request-headers
//!   callback and continues; every other callback is the SDK's default.
//! - `"floor": "body"` in the configuration (`wasm-body`): pauses on request
//!   headers, copies the whole request body into the VM once it is complete,
//!   then sets the routing header and continues; copies each response body
//!   chunk into the VM as it passes (as usage extraction must).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

const ROUTE_HEADER: &str = "x-llm-gateway-cluster";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { body: false }) });
}}

struct Root {
    body: bool,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        self.body = text.contains("\"floor\":\"body\"") || text.contains("\"floor\": \"body\"");
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor { body: self.body, seen: 0 }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Floor {
    body: bool,
    /// Bytes copied in, so the copies cannot be optimised away.
    seen: usize,
}

impl Context for Floor {}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        if self.body && !end_of_stream {
            return Action::Pause;
        }
        self.set_http_request_header(ROUTE_HEADER, Some("mock"));
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !self.body {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.seen += self.get_http_request_body(0, size).map_or(0, |b| b.len());
        self.set_http_request_header(ROUTE_HEADER, Some("mock"));
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, _end_of_stream: bool) -> Action {
        if self.body {
            self.seen += self.get_http_response_body(0, size).map_or(0, |b| b.len());
        }
        Action::Continue
    }
}
