//! An HTTP proxy in front of one of the gateway's neighbours (auth service,
//! webdis, a PostHog sink) that passes requests through until told to fail
//! them in one of the ways the fault matrix names.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::http1::{Request, Server};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward to the target.
    None,
    /// Answer this status (with `retry-after: 1` on 429) and a plain-text body.
    Status(u16),
    /// Wait this long, then forward (past the caller's timeout, the caller gave up).
    Slow(u64),
    /// Reset the connection without answering.
    Reset,
    /// The target handles the request, but the caller gets a 200 whose body
    /// is not what it expects.
    Garbage,
    /// Nothing listens: connections are refused.
    Down,
}

/// Every dependency fault of the matrix, by name; timeouts in the tests are
/// 300 ms, so "slow" is past them.
pub const FAULTS: [(&str, Fault); 6] = [
    ("down", Fault::Down),
    ("slow", Fault::Slow(700)),
    ("5xx", Fault::Status(500)),
    ("429", Fault::Status(429)),
    ("reset", Fault::Reset),
    ("garbage", Fault::Garbage),
];

pub struct FaultProxy {
    fault: Arc<Mutex<Fault>>,
    target: u16,
    port: u16,
    server: Mutex<Option<Server>>,
}

impl FaultProxy {
    /// Proxies to `127.0.0.1:target`.
    pub fn start(target: u16) -> FaultProxy {
        let fault = Arc::new(Mutex::new(Fault::None));
        let server = serve(0, target, fault.clone()).expect("bind 127.0.0.1:0");
        FaultProxy { fault, target, port: server.port(), server: Mutex::new(Some(server)) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets the fault for the next requests; `Down` closes the port, anything else reopens it.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = fault;
        let mut server = self.server.lock().unwrap_or_else(PoisonError::into_inner);
        if fault == Fault::Down {
            *server = None;
        } else if server.is_none() {
            // A client's outgoing connection may hold the port for a moment; wait it out.
            let mut bound = serve(self.port, self.target, self.fault.clone());
            for _ in 0..100 {
                if bound.is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                bound = serve(self.port, self.target, self.fault.clone());
            }
            *server = Some(bound.expect("rebind the proxy port"));
        }
    }
}

fn serve(port: u16, target: u16, current: Arc<Mutex<Fault>>) -> std::io::Result<Server> {
    Server::start_on(port, move |req, res| {
        crate::record::request("callout", &req);
        let fault = *current.lock().unwrap_or_else(PoisonError::into_inner);
        match fault {
            Fault::Status(status) => {
                let _ = res.send(status, &[("retry-after", "1"), ("content-type", "text/plain")], b"injected");
            }
            Fault::Reset => res.reset(),
            Fault::Garbage => {
                let _ = call(target, &req);
                let _ = res.send(200, &[("content-type", "application/json")], b"{not json at all");
            }
            Fault::Slow(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                forward(target, req, res);
            }
            Fault::None | Fault::Down => forward(target, req, res),
        }
    })
}

fn forward(target: u16, req: Request, res: &mut crate::http1::Responder) {
    match call(target, &req) {
        Some((status, content_type, body)) => {
            let _ = res.send(status, &[("content-type", &content_type)], &body);
        }
        None => res.reset(),
    }
}

/// Sends `req` to the target: its status, content type and body, or `None` if it did not answer.
fn call(target: u16, req: &Request) -> Option<(u16, String, Vec<u8>)> {
    let url = format!("http://127.0.0.1:{target}{}", req.path);
    let mut out = ureq::request(&req.method, &url).timeout(Duration::from_secs(10));
    for (name, value) in &req.headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection" | "transfer-encoding") {
            out = out.set(name, value);
        }
    }
    let result = if req.body.is_empty() && req.method == "GET" { out.call() } else { out.send_bytes(&req.body) };
    let resp = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    let status = resp.status();
    let content_type = resp.header("content-type").unwrap_or("application/octet-stream").to_string();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).ok()?;
    Some((status, content_type, body))
}
