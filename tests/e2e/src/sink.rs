//! PostHog capture sink: accepts what the gateway would send to PostHog
//! (`POST /batch/`, `/i/v0/ai/batch/` or `/capture/`, docs/protocols/posthog.md),
//! records each delivered batch, and can fail or drop requests on demand to
//! exercise the gateway's retries.

use crate::http1::{lock, Request, Responder, Server};
use serde_json::Value;
use std::io;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// One delivered capture request.
#[derive(Clone, Debug)]
pub struct Batch {
    pub path: String,
    pub api_key: String,
    pub events: Vec<Value>,
    pub headers: Vec<(String, String)>,
}

impl Batch {
    /// Event count and names, never their properties, which carry prompts
    /// and user data.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.events.iter().map(|e| e["event"].as_str().unwrap_or("?")).collect();
        format!("{} event(s) on {}: {}", self.events.len(), self.path, names.join(", "))
    }
}

#[derive(Default)]
struct State {
    batches: Vec<Batch>,
    attempts: usize,
    failure: Option<Failure>,
    down: bool,
    /// How long each request is held before its answer, like a slow PostHog.
    hold: Option<Duration>,
    open: usize,
    most_open: usize,
}

struct Failure {
    remaining: usize,
    status: u16,
    retry_after: Option<u32>,
}

/// How to answer one request.
enum Outcome {
    Reset,
    Reply { status: u16, code: &'static str, retry_after: Option<u32> },
    Delivered(Batch),
}

const CAPTURE_PATHS: [&str; 3] = ["/batch/", "/i/v0/ai/batch/", "/capture/"];

/// A running capture sink on 127.0.0.1.
pub struct CaptureSink {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl CaptureSink {
    #[allow(clippy::expect_used)] // test infrastructure: no port is a setup failure
    pub fn start() -> CaptureSink {
        Self::start_on(0, |_| {}).expect("bind 127.0.0.1:0")
    }

    /// Serves on a fixed port (0 picks a free one), calling `on_batch` for
    /// each delivered batch before answering it.
    pub fn start_on(port: u16, on_batch: impl Fn(&Batch) + Send + Sync + 'static) -> io::Result<CaptureSink> {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let server = Server::start_on(port, move |req, res| {
            let hold = {
                let mut state = lock(&shared);
                state.open += 1;
                state.most_open = state.most_open.max(state.open);
                state.hold
            };
            if let Some(hold) = hold {
                thread::sleep(hold);
            }
            let outcome = receive(&shared, req);
            if let Outcome::Delivered(batch) = &outcome {
                on_batch(batch);
            }
            // A write error means the peer left; there is no one to tell.
            let _ = answer(&shared, outcome, res);
            lock(&shared).open -= 1;
        })?;
        Ok(CaptureSink { server, state })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Delivered batches, in arrival order.
    pub fn batches(&self) -> Vec<Batch> {
        lock(&self.state).batches.clone()
    }

    /// Events of all delivered batches, flattened.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.state).batches.iter().flat_map(|b| b.events.iter().cloned()).collect()
    }

    /// Forgets delivered batches and attempts; failure settings stay.
    pub fn clear(&self) {
        let mut state = lock(&self.state);
        state.batches.clear();
        state.attempts = 0;
    }

    /// Capture requests received, delivered or not.
    pub fn attempts(&self) -> usize {
        lock(&self.state).attempts
    }

    /// Answers the next `n` capture requests with `status` (and a
    /// `retry-after` header if given) instead of accepting them.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u32>) {
        lock(&self.state).failure = Some(Failure { remaining: n, status, retry_after });
    }

    /// Holds every request this long before answering it.
    pub fn set_hold(&self, hold: Duration) {
        lock(&self.state).hold = Some(hold);
    }

    /// The most requests the sink held open at once (since the last reset).
    pub fn most_open(&self) -> usize {
        lock(&self.state).most_open
    }

    /// Starts [`Self::most_open`] again from the requests open now.
    pub fn reset_most_open(&self) {
        let mut state = lock(&self.state);
        state.most_open = state.open;
    }

    /// While down, every request has its connection reset, like an
    /// unreachable PostHog.
    pub fn set_down(&self, down: bool) {
        lock(&self.state).down = down;
    }

    /// Polls until at least `n` events were delivered or `timeout` passed,
    /// and returns whatever arrived: the gateway flushes on a timer.
    pub fn wait_for_events(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events();
            if events.len() >= n || Instant::now() >= deadline {
                return events;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The one `$ai_generation` event of a trace (its `$ai_trace_id`), waited for up to
    /// 30 s; a second event for the trace fails the test, as PostHog would count it twice.
    pub fn event(&self, trace: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found: Vec<Value> =
                self.events().into_iter().filter(|e| e["properties"]["$ai_trace_id"] == trace).collect();
            if let [one] = found.as_slice() {
                return one.clone();
            }
            assert!(found.len() < 2, "{} events for trace {trace}", found.len());
            assert!(Instant::now() < deadline, "no event for trace {trace}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The properties of [`CaptureSink::event`].
    pub fn properties(&self, trace: &str) -> Value {
        self.event(trace)["properties"].take()
    }
}

fn receive(state: &Mutex<State>, req: Request) -> Outcome {
    crate::record::request("sink", &req);
    if req.method != "POST" || !CAPTURE_PATHS.contains(&req.route()) {
        return reply(404, "not_found", None);
    }
    {
        let mut state = lock(state);
        state.attempts += 1;
        if state.down {
            return Outcome::Reset;
        }
        if let Some(failure) = state.failure.as_mut().filter(|f| f.remaining > 0) {
            failure.remaining -= 1;
            return reply(failure.status, "injected_failure", failure.retry_after);
        }
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return reply(400, "invalid_payload", None);
    };
    // PostHog's capture answers these the same way.
    let Some(api_key) = body["api_key"].as_str() else {
        return reply(401, "no_token", None);
    };
    let events = match body.get("batch") {
        Some(Value::Array(events)) if !events.is_empty() => events.clone(),
        // `/capture/` takes a single event as the whole body.
        None if req.route() == "/capture/" => vec![body.clone()],
        _ => return reply(400, "empty_batch", None),
    };
    Outcome::Delivered(Batch {
        path: req.route().to_owned(),
        api_key: api_key.to_owned(),
        events,
        headers: req.headers,
    })
}

fn reply(status: u16, code: &'static str, retry_after: Option<u32>) -> Outcome {
    Outcome::Reply { status, code, retry_after }
}

fn answer(state: &Mutex<State>, outcome: Outcome, res: &mut Responder) -> io::Result<()> {
    let json = [("content-type", "application/json")];
    match outcome {
        Outcome::Reset => {
            res.reset();
            Ok(())
        }
        Outcome::Delivered(batch) => {
            lock(state).batches.push(batch);
            res.send(200, &json, br#"{"status":"Ok"}"#)
        }
        Outcome::Reply { status, code, retry_after } => {
            let retry_after = retry_after.map(|s| s.to_string());
            let mut headers = json.to_vec();
            if let Some(seconds) = &retry_after {
                headers.push(("retry-after", seconds));
            }
            let body = serde_json::json!({"type": "validation_error", "code": code});
            res.send(status, &headers, body.to_string().as_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url(sink: &CaptureSink, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", sink.port())
    }

    /// The status of a POST, `None` if the connection failed.
    fn post(sink: &CaptureSink, path: &str, body: &Value) -> Option<u16> {
        match ureq::post(&url(sink, path)).send_json(body) {
            Ok(res) | Err(ureq::Error::Status(_, res)) => Some(res.status()),
            Err(ureq::Error::Transport(_)) => None,
        }
    }

    fn batch(names: &[&str]) -> Value {
        let properties = json!({"distinct_id": "u1", "$ai_input": "secret"});
        let events: Vec<Value> = names.iter().map(|n| json!({"event": n, "properties": properties})).collect();
        json!({"api_key": "phc_test", "sent_at": "2026-01-30T12:00:01Z", "batch": events})
    }

    #[test]
    fn records_batches_on_each_capture_path() {
        let sink = CaptureSink::start();
        let two = batch(&["$ai_generation", "$ai_generation"]);
        let res = ureq::post(&url(&sink, "/batch/")).send_json(two).unwrap();
        assert_eq!(res.into_json::<Value>().unwrap(), json!({"status": "Ok"}));
        assert_eq!(post(&sink, "/i/v0/ai/batch/", &batch(&["$ai_trace"])), Some(200));
        let single = json!({"api_key": "phc_test", "event": "$ai_span"});
        assert_eq!(post(&sink, "/capture/", &single), Some(200));

        let batches = sink.batches();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[1].path, "/i/v0/ai/batch/");
        assert_eq!(batches[1].api_key, "phc_test");
        let json = ("content-type".to_owned(), "application/json".to_owned());
        assert!(batches[0].headers.contains(&json));
        assert_eq!(sink.events().len(), 4);
        let summary = batches[0].summary();
        assert_eq!(summary, "2 event(s) on /batch/: $ai_generation, $ai_generation");

        sink.clear();
        assert!(sink.events().is_empty());
        assert_eq!(sink.attempts(), 0);
    }

    #[test]
    fn fail_next_rejects_then_recovers() {
        let sink = CaptureSink::start();
        sink.fail_next(2, 503, Some(7));
        let Err(ureq::Error::Status(503, res)) = ureq::post(&url(&sink, "/batch/")).send_json(batch(&["e"])) else {
            panic!("expected 503")
        };
        assert_eq!(res.header("retry-after"), Some("7"));
        assert_eq!(post(&sink, "/batch/", &batch(&["e"])), Some(503));
        assert_eq!(post(&sink, "/batch/", &batch(&["e"])), Some(200));
        assert_eq!((sink.attempts(), sink.batches().len()), (3, 1));
    }

    #[test]
    fn bad_payloads_are_refused_and_not_recorded() {
        let sink = CaptureSink::start();
        let garbage = ureq::post(&url(&sink, "/batch/")).send_string("{nope");
        assert!(matches!(garbage, Err(ureq::Error::Status(400, _))));
        let no_key = json!({"batch": [{"event": "e"}]});
        assert_eq!(post(&sink, "/batch/", &no_key), Some(401));
        let empty = json!({"api_key": "k", "batch": []});
        assert_eq!(post(&sink, "/batch/", &empty), Some(400));
        assert_eq!(post(&sink, "/elsewhere/", &batch(&["e"])), Some(404));
        assert!(sink.batches().is_empty());
    }

    #[test]
    fn down_resets_connections_until_back_up() {
        let sink = CaptureSink::start();
        sink.set_down(true);
        assert_eq!(post(&sink, "/batch/", &batch(&["e"])), None);
        sink.set_down(false);
        assert_eq!(post(&sink, "/batch/", &batch(&["e"])), Some(200));
        assert_eq!((sink.attempts(), sink.batches().len()), (2, 1));
    }

    #[test]
    fn wait_for_events_sees_late_deliveries() {
        let sink = CaptureSink::start();
        let url = url(&sink, "/batch/");
        let late = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            ureq::post(&url).send_json(batch(&["a", "b"])).unwrap();
        });
        assert_eq!(sink.wait_for_events(2, Duration::from_secs(5)).len(), 2);
        late.join().unwrap();
        assert_eq!(sink.wait_for_events(3, Duration::from_millis(50)).len(), 2);
    }
}
