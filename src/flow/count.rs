//! The count stage (`POST /v1/messages/count_tokens`): authenticated like a
//! call, but neither limited nor billed, and no event. Anthropic and Bedrock
//! count on their own endpoints; other providers get the gateway's estimate
//! (see `crate::count_tokens`).

use super::host::{Action, Host, Metric};
use super::worker::Worker;
use crate::count_tokens;
use crate::errors::{ApiError, ErrorKind, LocalReply};
use crate::forward;
use crate::keys::KeyUse;
use crate::providers::Provider;
use crate::request;
use crate::wire::header_pairs::Headers;
use crate::wire::Api;

pub enum Counted {
    /// The count goes to the provider; its answer comes back through [`Counting`].
    Upstream(Counting),
    Reply(LocalReply),
}

/// A count sent to the provider: Bedrock's answer is converted whole.
pub struct Counting {
    /// The gateway key the count used (a 429 rests it, as on a call).
    pub key: Option<KeyUse>,
    bedrock: bool,
    status: u16,
    amzn_error_type: Option<String>,
}

pub fn begin(worker: &Worker, host: &dyn Host, headers: &Headers, body_size: usize) -> Result<Counted, ApiError> {
    let body = host.request_body(body_size);
    let parsed = request::parse(&body, Api::Messages).map_err(|e| {
        let mut err = ApiError::new(ErrorKind::InvalidRequest, e.message);
        err.param = e.param;
        err
    })?;
    let upstream = forward::plan(
        &worker.config,
        &worker.keys,
        host.now_ms(),
        Api::Messages,
        &parsed,
        &body,
        headers.get(forward::PROVIDER_HEADER),
    )?;
    host.count(Metric::CountTokens, 1);
    // Gateway directives stop here, as on a call.
    for (name, _) in headers.iter().filter(|(k, _)| k.starts_with("x-posthog-")) {
        host.set_request_header(name, None);
    }
    let (path, new_body, bedrock) = match upstream.provider {
        Provider::Anthropic => {
            (format!("{}/messages/count_tokens", upstream.settings.base_path), upstream.body.clone(), false)
        }
        Provider::Bedrock => {
            let invoke = upstream.body.as_deref().unwrap_or(&body);
            (crate::bedrock::count_tokens_path(&upstream.model), Some(count_tokens::bedrock_body(invoke)), true)
        }
        Provider::OpenAi | Provider::Gemini | Provider::Azure => {
            return Ok(Counted::Reply(count_tokens::estimate_reply(count_tokens::estimate(&parsed))))
        }
    };
    for (name, value) in upstream.header_edits(headers) {
        let value = if name == ":path" { Some(path.as_str()) } else { value };
        host.set_request_header(name, value);
    }
    if let Some(b) = &new_body {
        host.replace_request_body(body_size, b);
    }
    Ok(Counted::Upstream(Counting { key: upstream.key, bedrock, status: 0, amzn_error_type: None }))
}

impl Counting {
    pub fn on_headers(&mut self, host: &dyn Host, status: u16, end_of_stream: bool) -> Action {
        self.status = status;
        if !self.bedrock {
            return Action::Continue;
        }
        if status >= 400 {
            self.amzn_error_type = host.response_header("x-amzn-errortype");
        }
        host.set_response_header("content-length", None);
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    pub fn on_body(&mut self, host: &dyn Host, body_size: usize, end_of_stream: bool) -> Action {
        if !self.bedrock {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = host.response_body(body_size);
        let out = count_tokens::bedrock_response(self.status, self.amzn_error_type.as_deref(), &body);
        host.set_response_body(body_size, &out);
        Action::Continue
    }
}
