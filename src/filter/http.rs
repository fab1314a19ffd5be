//! Per-request context: a phase enum driven by host callbacks.
//!
//! Headers: resolve the route, strip client credentials, pause. Body: pause
//! until it is complete, parse it once, plan the upstream, set headers (and
//! the body if it changed), continue. Responses from the provider pass
//! through untouched; Envoy's own error replies are rewritten into the
//! client's API error format.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host;
use super::root::Shared;
use crate::errors::{self, ApiError, ApiFormat, ErrorKind};
use crate::forward::{self, CREDENTIAL_HEADERS};
use crate::request;
use crate::routes::{self, Route};

enum Phase {
    /// Waiting for request headers.
    Start,
    /// Headers accepted; buffering the body.
    ReadingBody { route: Route },
    /// Sent upstream; the provider's response is streaming back.
    Forwarded {
        format: ApiFormat,
        provider: &'static str,
    },
    /// Envoy replied with an error instead of the provider; replacing its body.
    RewritingError { body: String },
    /// The filter replied itself; nothing more to do.
    Replied { format: ApiFormat },
}

pub struct HttpFilter {
    id: u32,
    shared: Rc<Shared>,
    phase: Phase,
}

impl HttpFilter {
    pub fn new(id: u32, shared: Rc<Shared>) -> Self {
        HttpFilter {
            id,
            shared,
            phase: Phase::Start,
        }
    }

    fn reply(&mut self, error: ApiError, format: ApiFormat) -> Action {
        log::info!("#{} local reply {}", self.id, error.status());
        host::increment(self.shared.metrics.local_replies, 1);
        host::send_reply(&error.reply(format));
        self.phase = Phase::Replied { format };
        Action::Pause
    }

    fn format(&self) -> ApiFormat {
        match &self.phase {
            Phase::ReadingBody { route } => route.endpoint.format(),
            Phase::Forwarded { format, .. } | Phase::Replied { format } => *format,
            _ => ApiFormat::OpenAi,
        }
    }

    /// The whole body is here: parse it, decide the upstream, send it on.
    fn forward(&mut self, route: Route, body_size: usize) -> Action {
        let format = route.endpoint.format();
        let body = host::request_body(body_size);
        let parsed = match request::parse(&body, route.endpoint) {
            Ok(p) => p,
            Err(e) => {
                let mut err = ApiError::new(ErrorKind::InvalidRequest, e.message);
                err.param = e.param;
                return self.reply(err, format);
            }
        };
        let upstream = match forward::plan(
            &self.shared.config,
            &self.shared.keys,
            route.endpoint,
            &parsed,
        ) {
            Ok(u) => u,
            Err(e) => return self.reply(e, format),
        };
        for (name, value) in &upstream.headers {
            host::set_request_header(name, Some(value));
        }
        for (name, value) in &upstream.default_headers {
            if host::request_header(name).is_none() {
                host::set_request_header(name, Some(value));
            }
        }
        if let Some(new_body) = &upstream.body {
            host::set_request_body(body_size, new_body);
        }
        self.phase = Phase::Forwarded {
            format,
            provider: upstream.provider.name(),
        };
        Action::Continue
    }
}

impl Context for HttpFilter {}

impl HttpContext for HttpFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        host::increment(self.shared.metrics.requests, 1);
        let method = host::request_header(":method").unwrap_or_default();
        let path = host::request_header(":path").unwrap_or_default();
        let route = match routes::resolve(&method, &path, &self.shared.config.products) {
            Ok(r) => r,
            Err((e, format)) => return self.reply(e, format),
        };
        if end_of_stream {
            let e = ApiError::new(
                ErrorKind::InvalidRequest,
                "Request body is empty; expected a JSON object",
            );
            return self.reply(e, route.endpoint.format());
        }
        for name in CREDENTIAL_HEADERS {
            host::set_request_header(name, None);
        }
        // Only the filter chooses the upstream and its timeout; the body may change size.
        host::set_request_header(&self.shared.config.route_header, None);
        host::set_request_header("x-envoy-upstream-rq-timeout-ms", None);
        host::set_request_header("content-length", None);
        self.phase = Phase::ReadingBody { route };
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Phase::ReadingBody { route } = &self.phase else {
            return Action::Continue;
        };
        let route = route.clone();
        let limit = self.shared.config.max_request_body_bytes;
        if body_size > limit {
            let e = ApiError::new(
                ErrorKind::TooLarge,
                format!("Request body exceeds the gateway limit of {limit} bytes"),
            );
            return self.reply(e, route.endpoint.format());
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.forward(route, body_size)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        // Our own JSON reply passes; Envoy's plain-text one may still overtake it
        // (a body over Envoy's buffer limit arriving before our reply is sent).
        if matches!(self.phase, Phase::Replied { .. })
            && host::response_header("content-type").is_some_and(|c| c.starts_with("application/json"))
        {
            return Action::Continue;
        }
        let status = host::response_header(":status")
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let details = host::property(&["response", "code_details"]).unwrap_or_default();
        let upstream = match &self.phase {
            Phase::Forwarded { provider, .. } => provider,
            _ => "provider",
        };
        let Some(error) =
            errors::from_envoy_reply(status, &String::from_utf8_lossy(&details), upstream)
        else {
            return Action::Continue;
        };
        host::increment(self.shared.metrics.upstream_failures, 1);
        log::info!(
            "#{} envoy reply {status} rewritten to {}",
            self.id,
            error.status()
        );
        let reply = error.reply(self.format());
        host::set_response_header(":status", Some(&reply.status.to_string()));
        host::set_response_header("content-length", None);
        for (name, value) in &reply.headers {
            host::set_response_header(name, Some(value));
        }
        self.phase = Phase::RewritingError { body: reply.body };
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Phase::RewritingError { body } = &self.phase else {
            return Action::Continue;
        };
        if !end_of_stream {
            return Action::Pause;
        }
        host::set_response_body(body_size, body.as_bytes());
        Action::Continue
    }
}
