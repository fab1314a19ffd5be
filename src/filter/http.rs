//! The HTTP context: each Envoy callback goes to the request's flow.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host::WasmHost;
use super::timing::timed;
use crate::failover::relay::Relay;
use crate::flow::attempt::Attempt;
use crate::flow::request::{self, Requests};
use crate::flow::{self, Request, Worker};

pub struct HttpFilter {
    req: Rc<RefCell<Request>>,
    registry: Rc<RefCell<Requests>>,
    /// Test-only: make hostcalls in phases where Envoy refuses them.
    #[cfg(feature = "fault-injection")]
    wrong_phase: bool,
}

impl HttpFilter {
    pub fn new(id: u32, worker: Rc<Worker>, registry: Rc<RefCell<Requests>>) -> Self {
        HttpFilter {
            req: Request::new(id, worker, Rc::clone(&registry)),
            registry,
            #[cfg(feature = "fault-injection")]
            wrong_phase: false,
        }
    }
}

fn action(a: flow::Action) -> Action {
    match a {
        flow::Action::Continue => Action::Continue,
        flow::Action::Pause => Action::Pause,
    }
}

impl Context for HttpFilter {
    fn on_http_call_response(&mut self, token_id: u32, _headers: usize, body_size: usize, _trailers: usize) {
        request::on_callout(&self.registry, &WasmHost::default(), token_id, body_size, Some(&self.req));
    }
}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        #[cfg(feature = "fault-injection")]
        {
            self.wrong_phase = super::fault::on_request_headers();
        }
        timed("request_headers", || {
            action(self.req.borrow_mut().on_request_headers(&WasmHost::default(), end_of_stream))
        })
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        timed("request_body", || {
            action(self.req.borrow_mut().on_request_body(&WasmHost::default(), body_size, end_of_stream))
        })
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        #[cfg(feature = "fault-injection")]
        if self.wrong_phase {
            super::fault::after_request_phase();
        }
        timed("response_headers", || {
            action(self.req.borrow_mut().on_response_headers(&WasmHost::default(), end_of_stream))
        })
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        timed("response_body", || {
            action(self.req.borrow_mut().on_response_body(&WasmHost::default(), body_size, end_of_stream))
        })
    }

    fn on_log(&mut self) {
        #[cfg(feature = "fault-injection")]
        if self.wrong_phase {
            super::fault::after_response_phase();
        }
        timed("log", || self.req.borrow_mut().on_log(&WasmHost::default()))
    }
}

/// The upstream filter's context: one attempt of a request (see `flow::attempt`).
pub struct AttemptFilter(Attempt);

impl AttemptFilter {
    pub fn new(relay: Rc<RefCell<Relay>>) -> Self {
        AttemptFilter(Attempt::new(relay))
    }
}

impl Context for AttemptFilter {
    fn on_done(&mut self) -> bool {
        self.0.on_done(&WasmHost::default());
        true
    }
}

impl HttpContext for AttemptFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_headers(&WasmHost::default(), end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.0.on_request_body(&WasmHost::default(), body_size, end_of_stream))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        action(self.0.on_response_headers(&WasmHost::default()))
    }
}
