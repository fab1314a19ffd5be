//! The auth stage: the principal behind a key, from the worker's cache, the
//! process's shared data, or one lookup per key per worker; then its scope
//! and product checks.

use std::rc::Rc;

use super::host::{Host, Metric};
use super::worker::Worker;
use crate::auth::{self, Cached, Lookup, Principal};
use crate::errors::{ApiError, ErrorKind};

/// What a lookup ended with, for every request waiting on it.
#[derive(Clone)]
pub enum Outcome {
    Known(Rc<Principal>),
    Unknown,
    Failed,
}

/// The key's principal if this worker or process already knows it.
pub fn cached(worker: &Worker, host: &dyn Host, hash: &str) -> Option<Outcome> {
    let outcome = match worker.cached_principal(host, hash)? {
        Cached::Known(p) => Outcome::Known(p),
        Cached::Unknown => Outcome::Unknown,
    };
    host.count(Metric::AuthCacheHits, 1);
    Some(outcome)
}

/// Starts the lookup of `hash` on the auth service; `None` if Envoy refused it.
pub fn dispatch(worker: &Worker, host: &dyn Host, hash: &str) -> Option<u32> {
    let a = &worker.config.auth;
    let path = format!("{}{}{}", a.path_prefix, hash, a.path_suffix);
    let headers = [(":method", "GET"), (":path", path.as_str()), (":authority", a.authority.as_str())];
    host.count(Metric::AuthLookups, 1);
    host.http_call(&a.cluster, &headers, None, a.timeout_ms)
}

/// Reads the lookup's answer and remembers it.
pub fn answered(worker: &Worker, host: &dyn Host, hash: &str, body_size: usize) -> Outcome {
    let (status, body) = host.call_response(body_size);
    match auth::lookup_result(status, &body) {
        Lookup::Found(p) => Outcome::Known(worker.remember_principal(host, hash, p, &body)),
        Lookup::Unknown => {
            worker.remember_unknown(host, hash);
            Outcome::Unknown
        }
        Lookup::Failed(why) => {
            log::warn!("auth lookup failed: {why}");
            Outcome::Failed
        }
    }
}

/// The principal, if it may call `product`; else the client's error.
pub fn admit(worker: &Worker, host: &dyn Host, outcome: Outcome, product: &str) -> Result<Rc<Principal>, ApiError> {
    let p = match outcome {
        Outcome::Known(p) => p,
        Outcome::Unknown => {
            host.count(Metric::AuthRejected, 1);
            return Err(ApiError::new(ErrorKind::Authentication, "Invalid API key"));
        }
        Outcome::Failed => {
            host.count(Metric::AuthUnavailable, 1);
            return Err(ApiError::new(ErrorKind::Unavailable, "Authentication service unavailable; try again")
                .code("auth_unavailable"));
        }
    };
    if let Err(e) = auth::authorize(&p, &worker.config.auth.required_scope, product) {
        host.count(Metric::AuthRejected, 1);
        return Err(e);
    }
    Ok(p)
}
