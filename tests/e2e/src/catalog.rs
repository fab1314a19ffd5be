//! A price-catalog server for `pricing.source`: serves whatever body and
//! status the test sets on any GET, or resets every connection while down,
//! and counts the fetches.

use crate::http1::{lock, Server};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    status: u16,
    body: Vec<u8>,
    down: bool,
    fetches: usize,
}

pub struct CatalogServer {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl CatalogServer {
    pub fn start(body: &str) -> CatalogServer {
        let state = Arc::new(Mutex::new(State { status: 200, body: body.as_bytes().to_vec(), ..State::default() }));
        let shared = state.clone();
        let server = Server::start(move |req, res| {
            crate::record::request("catalog", &req);
            let (status, body, down) = {
                let mut s = lock(&shared);
                s.fetches += 1;
                (s.status, s.body.clone(), s.down)
            };
            if down {
                res.reset();
                return;
            }
            let _ = res.send(status, &[("content-type", "application/json")], &body);
        });
        CatalogServer { server, state }
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Serves `body` with `status` from now on.
    pub fn serve(&self, status: u16, body: &str) {
        let mut s = lock(&self.state);
        s.status = status;
        s.body = body.as_bytes().to_vec();
    }

    /// While down, every connection is reset.
    pub fn set_down(&self, down: bool) {
        lock(&self.state).down = down;
    }

    pub fn fetches(&self) -> usize {
        lock(&self.state).fetches
    }

    /// The Envoy cluster (a YAML list item for `clusters`) named `name` that points here.
    pub fn cluster(&self, name: &str) -> String {
        format!(
            "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: {name}\n      \
             endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {}}}}}}}}}]}}]\n",
            self.port()
        )
    }
}
