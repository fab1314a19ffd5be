//! `make soak`: a bounded soak of the gateway (issue 9, item 5).
//!
//! Starts the harness's stack on loopback — Envoy with one worker and the
//! built filter, limits on (a budget) and capture on to both destinations,
//! with the auth service, webdis and both PostHog sinks behind fault proxies
//! (as `tests/fault_matrix.rs` does) — then for `SOAK_MINUTES` (default 20,
//! fractions allowed) drives mixed traffic from a few client threads at a
//! modest rate while one dependency at a time fails and recovers. Every 10 s
//! it samples Envoy's RSS, the wasm linear memory of each VM, the client
//! counters and the filter's metrics. At the end it stops the traffic, clears
//! the faults, waits for the queues to drain and checks that
//!
//! - no request got stuck (every one returned or failed within 60 s),
//! - every client saw what the README documents for its case,
//! - RSS and wasm memory stayed flat after the warm-up,
//! - the books balance: calls == events queued == sent + dropped on each
//!   destination, and the spend in Redis matches the calls' cost.
//!
//! The report (markdown) goes to stdout and `target/soak/report.md`, every
//! sample to `target/soak/samples.csv`, the stack's logs to `target/soak/run/`.
//! Exits non-zero if a check fails.
//!
//! Knobs (environment): `SOAK_MINUTES` (20), `SOAK_RATE` (total requests/s,
//! 75), `SOAK_THREADS` (4), `SOAK_SEED`, `SOAK_RSS_TOLERANCE_PCT` (10) and
//! `SOAK_RSS_SLACK_MIB` (8), `SOAK_WASM_TOLERANCE_PCT` (10) and
//! `SOAK_WASM_SLACK_MIB` (1).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use llm_gateway_e2e::client::terminal_arrived;
use llm_gateway_e2e::fault_proxy::{Fault, FaultProxy, FAULTS};
use llm_gateway_e2e::mock::{MockProvider, ProviderKeys};
use llm_gateway_e2e::sink::CaptureSink;
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// A client gives up on a request after this long; a request that takes it is stuck.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// 503s are expected for a moment after an auth fault clears (requests in flight).
const AUTH_GRACE: Duration = Duration::from_secs(2);
const TEAM: i64 = 4242;
/// The header the mock's requests are counted by (its value is the request's id).
const TAG: &str = "x-soak-id";

/// The neighbours behind fault proxies, and the metric a fault of each moves.
const TARGETS: [(&str, &str); 4] = [
    ("auth", "auth_unavailable_total"),
    ("webdis", "limits_unavailable_total"),
    ("primary", "capture_primary_failed_total"),
    ("mirror", "capture_secondary_failed_total"),
];

struct Route {
    path: &'static str,
    model: &'static str,
    headers: &'static [(&'static str, &'static str)],
}

const BEDROCK_ID: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const BEDROCK_HEADER: &[(&str, &str)] = &[("x-posthog-provider", "bedrock")];
const NONE: &[(&str, &str)] = &[];

/// Every client format against every provider it supports (README "Routes and formats").
const ROUTES: [Route; 10] = [
    Route { path: "/v1/chat/completions", model: "gpt-4o", headers: NONE },
    Route { path: "/v1/chat/completions", model: "gemini-2.5-flash", headers: NONE },
    Route { path: "/v1/chat/completions", model: "claude-haiku-4-5", headers: NONE },
    Route { path: "/v1/chat/completions", model: BEDROCK_ID, headers: NONE },
    Route { path: "/v1/messages", model: "claude-haiku-4-5", headers: NONE },
    Route { path: "/v1/messages", model: "gpt-4o", headers: NONE },
    Route { path: "/v1/messages", model: "gemini-2.5-flash", headers: NONE },
    Route { path: "/v1/messages", model: "claude-haiku-4-5", headers: BEDROCK_HEADER },
    Route { path: "/v1/messages", model: BEDROCK_ID, headers: NONE },
    Route { path: "/v1/responses", model: "gpt-4o", headers: NONE },
];

/// Provider faults (the mock's `x-mock-fault`) that apply to a stream, and to a JSON answer.
const STREAM_FAULTS: [&str; 4] = ["reset", "reset-mid-stream", "error-event", "malformed-sse"];
const JSON_FAULTS: [&str; 3] = ["reset", "reset-mid-stream", "invalid-json"];

struct Settings {
    minutes: f64,
    rate: f64,
    threads: usize,
    seed: u64,
    rss_tolerance_pct: f64,
    rss_slack_mib: f64,
    wasm_tolerance_pct: f64,
    wasm_slack_mib: f64,
}

fn env_num(name: &str, default: f64, valid: impl Fn(f64) -> bool) -> Result<f64, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => {
            v.trim().parse().ok().filter(|x: &f64| x.is_finite() && valid(*x)).ok_or(format!("{name}={v}: not usable"))
        }
    }
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        Ok(Settings {
            minutes: env_num("SOAK_MINUTES", 20.0, |x| x > 0.0 && x <= 24.0 * 60.0)?,
            rate: env_num("SOAK_RATE", 75.0, |x| x > 0.0 && x <= 2000.0)?,
            threads: env_num("SOAK_THREADS", 4.0, |x| (1.0..=64.0).contains(&x) && x.fract() == 0.0)? as usize,
            seed: env_num("SOAK_SEED", 9005.0, |x| x >= 0.0 && x.fract() == 0.0)? as u64,
            rss_tolerance_pct: env_num("SOAK_RSS_TOLERANCE_PCT", 10.0, |x| x >= 0.0)?,
            rss_slack_mib: env_num("SOAK_RSS_SLACK_MIB", 8.0, |x| x >= 0.0)?,
            wasm_tolerance_pct: env_num("SOAK_WASM_TOLERANCE_PCT", 10.0, |x| x >= 0.0)?,
            wasm_slack_mib: env_num("SOAK_WASM_SLACK_MIB", 1.0, |x| x >= 0.0)?,
        })
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.minutes * 60.0)
    }

    /// One dependency fault per period: a minute in a long soak, shorter in a quick one.
    fn fault_period(&self) -> Duration {
        Duration::from_secs_f64((self.minutes * 60.0 / 8.0).clamp(20.0, 60.0))
    }

    fn fault_length(&self) -> Duration {
        (self.fault_period() / 2).min(Duration::from_secs(15))
    }
}

/// SplitMix64: small, deterministic, good enough to pick requests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------
// Clients

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    /// A provider fault through the mock's `x-mock-fault`.
    Fault(&'static str),
    /// A client that reads the first bytes of a slow stream and leaves.
    Disconnect,
}

struct Plan {
    route: &'static Route,
    stream: bool,
    kind: Kind,
    /// A key not yet in the auth cache, so the lookup happens.
    cold: bool,
}

impl Plan {
    fn pick(rng: &mut Rng, auth_fault: bool) -> Plan {
        let route = &ROUTES[rng.below(ROUTES.len())];
        let mut stream = rng.below(2) == 0;
        let kind = match rng.below(1000) {
            0..=29 => {
                stream = true;
                Kind::Disconnect
            }
            30..=79 if stream => Kind::Fault(STREAM_FAULTS[rng.below(STREAM_FAULTS.len())]),
            30..=79 => Kind::Fault(JSON_FAULTS[rng.below(JSON_FAULTS.len())]),
            _ => Kind::Plain,
        };
        // Cold keys keep the auth service in the path: more of them while it fails.
        let cold = rng.below(100) < if auth_fault { 25 } else { 2 };
        Plan { route, stream, kind, cold }
    }

    /// The case, as the event books count it.
    fn case(&self) -> &'static str {
        match self.kind {
            Kind::Plain => "plain",
            Kind::Fault(f) => f,
            Kind::Disconnect => "client leaves mid-stream",
        }
    }

    fn label(&self) -> String {
        let kind = match self.kind {
            Kind::Plain => "plain".to_string(),
            Kind::Fault(f) => format!("provider {f}"),
            Kind::Disconnect => "client leaves mid-stream".to_string(),
        };
        if self.cold {
            format!("{kind}, cold key")
        } else {
            kind
        }
    }

    fn body(&self, id: u64) -> String {
        let text = format!("soak request {id}");
        match self.route.path {
            "/v1/messages" => json!({"model": self.route.model, "max_tokens": 64, "stream": self.stream,
                "messages": [{"role": "user", "content": text}]}),
            "/v1/responses" => json!({"model": self.route.model, "input": text, "stream": self.stream}),
            _ => json!({"model": self.route.model, "stream": self.stream, "user": format!("soak-user-{}", id % 8),
                "messages": [{"role": "user", "content": text}]}),
        }
        .to_string()
    }
}

/// What a client saw.
enum Outcome {
    /// A whole response.
    Answered { status: u16, body: String },
    /// A head, then the body was cut.
    Cut { status: u16 },
    /// No response at all.
    Failed(String),
    /// The client read the first bytes and left (the disconnect case).
    Left { status: u16 },
    /// Nothing within `CLIENT_TIMEOUT`.
    Hung,
}

impl Outcome {
    fn label(&self) -> String {
        match self {
            Outcome::Answered { status, .. } => status.to_string(),
            Outcome::Cut { status } => format!("{status}, body cut"),
            Outcome::Failed(_) => "no response".into(),
            Outcome::Left { status } => format!("{status}, left"),
            Outcome::Hung => "HUNG".into(),
        }
    }
}

fn call(agent: &ureq::Agent, port: u16, plan: &Plan, id: u64, key: &str) -> Outcome {
    let started = Instant::now();
    let timed_out = || started.elapsed() + Duration::from_secs(1) >= CLIENT_TIMEOUT;
    let mut req = agent
        .post(&format!("http://127.0.0.1:{port}{}", plan.route.path))
        .set("authorization", &format!("Bearer {key}"))
        .set("content-type", "application/json")
        .set(TAG, &id.to_string())
        .set("x-posthog-trace-id", &format!("soak-{id}"));
    for (name, value) in plan.route.headers {
        req = req.set(name, value);
    }
    if let Kind::Fault(fault) = plan.kind {
        req = req.set("x-mock-fault", fault);
    }
    let resp = match req.send_string(&plan.body(id)) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(_) if timed_out() => return Outcome::Hung,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let status = resp.status();
    let mut body = Vec::new();
    // As real clients do, a stream is read to its terminal event and the connection
    // closed at once, whether or not the provider has ended it yet.
    let stop_at_terminal = plan.stream && status == 200;
    let mut reader = resp.into_reader();
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                body.extend_from_slice(&buf[..n]);
                if stop_at_terminal && terminal_arrived(plan.route.path, &body) {
                    break;
                }
            }
            Err(_) if timed_out() => return Outcome::Hung,
            Err(_) => return Outcome::Cut { status },
        }
    }
    Outcome::Answered { status, body: String::from_utf8_lossy(&body).into_owned() }
}

/// A raw client that asks for a slow stream, reads its first bytes and drops the connection.
fn call_and_leave(port: u16, plan: &Plan, id: u64, key: &str) -> Outcome {
    let body = plan.body(id);
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\n\
         {TAG}: {id}\r\nx-posthog-trace-id: soak-{id}\r\nx-mock-chunk-delay-ms: 200\r\n",
        plan.route.path
    );
    for (name, value) in plan.route.headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(head, "content-length: {}\r\n\r\n{body}", body.len());
    let mut conn = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let _ = conn.set_read_timeout(Some(CLIENT_TIMEOUT));
    if let Err(e) = conn.write_all(head.as_bytes()) {
        return Outcome::Failed(e.to_string());
    }
    let mut first = [0u8; 64];
    match conn.read(&mut first) {
        Ok(0) => Outcome::Failed("closed before answering".into()),
        Ok(n) => {
            let text = String::from_utf8_lossy(&first[..n]);
            Outcome::Left { status: text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0) }
        }
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Outcome::Hung,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Whether `outcome` is what the README documents for `plan` (`auth_overlap`: an
/// auth fault was on at some point during the request, so a 503 is right).
fn expected(plan: &Plan, outcome: &Outcome, auth_overlap: bool) -> bool {
    match outcome {
        Outcome::Hung => return false,
        Outcome::Answered { status: 503, body } if auth_overlap => return body.contains("auth_unavailable"),
        Outcome::Left { status: 503 } if auth_overlap => return true,
        _ => {}
    }
    match (plan.kind, outcome) {
        (Kind::Plain, Outcome::Answered { status: 200, body }) => {
            if plan.stream {
                body.contains("data:")
            } else {
                serde_json::from_str::<Value>(body).is_ok()
            }
        }
        (Kind::Plain, _) => false,
        // Reset before a response: 502 in the API's format.
        (Kind::Fault("reset"), Outcome::Answered { status, .. }) => *status == 502,
        // A cut stream or body ends as the provider ended it; any ending is right but a hang.
        (Kind::Fault("reset-mid-stream"), _) => true,
        // Passed through; on a translated route an unparsable body cannot be translated: 502.
        (Kind::Fault("invalid-json"), Outcome::Answered { status: 502, body }) => {
            body.contains("untranslatable_response")
        }
        (Kind::Fault(_), Outcome::Answered { status: 200, .. }) => true,
        (Kind::Fault(_), _) => false,
        (Kind::Disconnect, Outcome::Left { status }) => *status == 200,
        (Kind::Disconnect, _) => false,
    }
}

#[derive(Default)]
struct Tally {
    /// (case, what the client saw) → (count, slowest in ms).
    outcomes: BTreeMap<(String, String), (u64, u128)>,
    unexpected: u64,
    examples: Vec<String>,
    stuck: u64,
    slowest: Duration,
    /// Latencies (ms) of plain requests that succeeded.
    plain_ms: Vec<u32>,
}

struct Shared {
    stop: AtomicBool,
    /// An auth fault is on (or just cleared, for `AUTH_GRACE`).
    auth_fault: AtomicBool,
    /// Bumped at every change of `auth_fault` and every auth fault transition.
    auth_epoch: AtomicU64,
    next_id: AtomicU64,
    done: AtomicU64,
    in_flight: AtomicU64,
    /// Per client thread: the request it is waiting on (since when, what).
    current: Mutex<Vec<Option<(Instant, String)>>>,
    /// Each request's case (plain, provider fault, client leaves), by id, for the event books.
    cases: Mutex<HashMap<u64, &'static str>>,
    tally: Mutex<Tally>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct ClientEnv {
    index: usize,
    port: u16,
    webdis_port: u16,
    warm_key: String,
    interval: Duration,
    /// Where in the interval this thread starts, so the threads spread the load evenly.
    offset: Duration,
    seed: u64,
}

/// Stores a principal for a new key straight in Redis (through webdis, never through a fault proxy).
fn provision_key(webdis_port: u16, key: &str) -> Result<(), String> {
    let name = format!("llmgw:key:{}", sha256_hex(key));
    let url = format!(
        "http://127.0.0.1:{webdis_port}/SET/{}/{}",
        percent_encode(&name),
        percent_encode(&principal().to_string())
    );
    ureq::get(&url).timeout(Duration::from_secs(10)).call().map(|_| ()).map_err(|e| e.to_string())
}

fn client(env: ClientEnv, shared: Arc<Shared>) {
    let agent = ureq::AgentBuilder::new().timeout(CLIENT_TIMEOUT).build();
    let mut rng = Rng(env.seed.wrapping_mul(31).wrapping_add(env.index as u64 + 1));
    let mut next = Instant::now() + env.offset;
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        }
        // Open loop at the set rate: a slow request (a client that leaves a slow stream takes
        // a while) is caught up on, unless the thread fell more than a second behind.
        next += env.interval;
        if next + Duration::from_secs(1) < Instant::now() {
            next = Instant::now();
        }
        let plan = Plan::pick(&mut rng, shared.auth_fault.load(Ordering::SeqCst));
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let key = if plan.cold { format!("phx_soak_cold_{id}") } else { env.warm_key.clone() };
        let what = format!("#{id} {} {} stream={} ({})", plan.route.path, plan.route.model, plan.stream, plan.label());
        if plan.cold {
            if let Err(e) = provision_key(env.webdis_port, &key) {
                let mut tally = lock(&shared.tally);
                tally.unexpected += 1;
                tally.examples.push(format!("{what}: could not provision the key: {e}"));
                continue;
            }
        }
        lock(&shared.cases).insert(id, plan.case());
        lock(&shared.current)[env.index] = Some((Instant::now(), what.clone()));
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let (epoch, on) = (shared.auth_epoch.load(Ordering::SeqCst), shared.auth_fault.load(Ordering::SeqCst));
        let started = Instant::now();
        let outcome = match plan.kind {
            Kind::Disconnect => call_and_leave(env.port, &plan, id, &key),
            _ => call(&agent, env.port, &plan, id, &key),
        };
        let elapsed = started.elapsed();
        let auth_overlap =
            on || shared.auth_fault.load(Ordering::SeqCst) || shared.auth_epoch.load(Ordering::SeqCst) != epoch;
        let ok = expected(&plan, &outcome, auth_overlap);
        {
            let mut tally = lock(&shared.tally);
            let entry = tally.outcomes.entry((plan.label(), outcome.label())).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(elapsed.as_millis());
            tally.slowest = tally.slowest.max(elapsed);
            if matches!(outcome, Outcome::Hung) || elapsed >= CLIENT_TIMEOUT {
                tally.stuck += 1;
            }
            if !ok {
                tally.unexpected += 1;
                if tally.examples.len() < 20 {
                    let detail = match &outcome {
                        Outcome::Answered { body, .. } => body.chars().take(160).collect(),
                        Outcome::Failed(e) => e.clone(),
                        _ => String::new(),
                    };
                    let label = outcome.label();
                    tally.examples.push(format!("{what} -> {label} after {elapsed:.1?}: {detail}"));
                }
            } else if plan.kind == Kind::Plain && matches!(outcome, Outcome::Answered { status: 200, .. }) {
                tally.plain_ms.push(elapsed.as_millis().min(u128::from(u32::MAX)) as u32);
            }
        }
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        shared.done.fetch_add(1, Ordering::SeqCst);
        lock(&shared.current)[env.index] = None;
    }
}

fn principal() -> Value {
    json!({"team_id": TEAM, "distinct_id": format!("owner-{TEAM}"), "scopes": ["llm_gateway:read"]})
}

// ---------------------------------------------------------------------------
// Sampling

/// Finds Envoy's pid by its config file on the command line (the harness keeps the `Child` private).
fn envoy_pid(envoy: &Envoy) -> Option<u32> {
    let yaml = envoy.log.with_extension("yaml");
    let yaml = yaml.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        cmdline.split(|b| *b == 0).any(|arg| arg == yaml).then_some(pid)
    })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok())
}

/// Wasm linear memories of a V8 Envoy, from `/proc/<pid>/smaps` (bench/bench.py's
/// `smaps_wasm`): V8 reserves 8 GiB of address space per wasm32 memory, and the
/// accessible (rw) head of that reservation is the linear memory grown so far.
/// Returns (size KiB, resident KiB) per memory.
fn wasm_memories(pid: u32) -> Vec<(u64, u64)> {
    struct Vma {
        start: u64,
        end: u64,
        perm: String,
        rss: u64,
    }
    let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Vec::new();
    };
    let mut vmas: Vec<Vma> = Vec::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let (Some(range), Some(perm)) = (words.next(), words.next()) else { continue };
        let header = range
            .split_once('-')
            .and_then(|(s, e)| Some((u64::from_str_radix(s, 16).ok()?, u64::from_str_radix(e, 16).ok()?)));
        if let Some((start, end)) = header {
            vmas.push(Vma { start, end, perm: perm.to_string(), rss: 0 });
        } else if range == "Rss:" {
            if let Some(last) = vmas.last_mut() {
                last.rss = perm.parse().unwrap_or(0);
            }
        }
    }
    vmas.windows(2)
        .filter_map(|w| {
            let (head, rest) = (&w[0], &w[1]);
            let reservation = head.perm.starts_with("rw")
                && rest.perm == "---p"
                && head.end == rest.start
                && rest.end - head.start >= 4 << 30;
            reservation.then_some(((head.end - head.start) >> 10, head.rss))
        })
        .collect()
}

/// The filter's metrics (without `wasmcustom.`), `None` if the admin port does not answer.
fn metrics(admin_port: u16) -> Option<HashMap<String, u64>> {
    // Counter increments reach Envoy on the filter's 100 ms tick.
    std::thread::sleep(Duration::from_millis(250));
    let url = format!("http://127.0.0.1:{admin_port}/stats?filter=^wasmcustom\\.");
    let text = ureq::get(&url).timeout(Duration::from_secs(10)).call().ok()?.into_string().ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let (name, value) = l.strip_prefix("wasmcustom.")?.split_once(": ")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect(),
    )
}

fn metric(m: &HashMap<String, u64>, name: &str) -> u64 {
    m.get(&format!("llm_gateway.{name}")).copied().unwrap_or(0)
}

struct Sample {
    t: Duration,
    done: u64,
    in_flight: u64,
    rss_kib: Option<u64>,
    wasm: Vec<(u64, u64)>,
    metrics: HashMap<String, u64>,
    fault: String,
    /// Taken after the drain, not during the traffic.
    drained: bool,
}

impl Sample {
    fn wasm_kib(&self) -> u64 {
        self.wasm.iter().map(|(size, _)| size).sum()
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------
// Faults

struct Window {
    target: usize,
    fault: usize,
    start: Duration,
    end: Duration,
    applied: bool,
    cleared: bool,
    before: u64,
    effect: Option<u64>,
}

/// One fault per period, a quarter period in, on the targets in turn, cycling through the
/// fault kinds so that each target meets most of them over a 20-minute soak. The PostHog
/// destinations fail first: an outage fills the capture queue to a high-water mark that wasm
/// memory keeps (it never shrinks), so the first quarter, the memory baseline, includes one.
fn schedule(s: &Settings) -> Vec<Window> {
    let (period, length, total) = (s.fault_period(), s.fault_length(), s.duration());
    (0..)
        .map(|i: u32| (i, period * i + period / 4))
        .take_while(|(_, start)| *start + length + Duration::from_secs(2) <= total)
        .map(|(i, start)| Window {
            target: (i as usize + 2) % TARGETS.len(),
            fault: (i as usize + i as usize / TARGETS.len()) % FAULTS.len(),
            start,
            end: start + length,
            applied: false,
            cleared: false,
            before: 0,
            effect: None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The run

struct Rig {
    envoy: Envoy,
    store: Store,
    mock: MockProvider,
    proxies: [FaultProxy; 4],
    /// Primary and mirror; what they receive is counted in `delivered`.
    sinks: (CaptureSink, CaptureSink),
    delivered: [Arc<Mutex<Delivered>>; 2],
}

/// What a sink received, counted as it arrives so the sink's own log can be cleared.
#[derive(Default)]
struct Delivered {
    events: u64,
    uuids: HashSet<String>,
    /// Each request's event (by the id in its trace): `$ai_error` when it is an error.
    outcomes: HashMap<u64, Option<String>>,
}

fn counting_sink(delivered: Arc<Mutex<Delivered>>) -> CaptureSink {
    CaptureSink::start_on(0, move |batch| {
        let mut d = lock(&delivered);
        d.events += batch.events.len() as u64;
        for e in &batch.events {
            d.uuids.insert(e["uuid"].as_str().unwrap_or_default().to_string());
            let p = &e["properties"];
            let id = p["$ai_trace_id"].as_str().and_then(|t| t.strip_prefix("soak-")).and_then(|n| n.parse().ok());
            if let Some(id) = id {
                let error = (p["$ai_is_error"] == true).then(|| p["$ai_error"].as_str().unwrap_or("?").to_string());
                d.outcomes.insert(id, error);
            }
        }
    })
    .unwrap_or_else(|e| panic!("capture sink: {e}"))
}

fn start_rig(dir: &Path) -> Rig {
    let mock = MockProvider::start(ProviderKeys {
        openai: OPENAI_KEY.into(),
        anthropic: ANTHROPIC_KEY.into(),
        gemini: GEMINI_KEY.into(),
        bedrock: BEDROCK_KEY.into(),
        azure: AZURE_KEY.into(),
        aws: None,
    });
    let delivered: [Arc<Mutex<Delivered>>; 2] = [Arc::default(), Arc::default()];
    let sinks = (counting_sink(delivered[0].clone()), counting_sink(delivered[1].clone()));
    let store = Store::start(dir);
    let proxies = [
        FaultProxy::start(store.webdis_port),
        FaultProxy::start(store.webdis_port),
        FaultProxy::start(sinks.0.port()),
        FaultProxy::start(sinks.1.port()),
    ];
    let mut config = test_plugin_config();
    merge(
        &mut config,
        json!({
            "auth": {"timeout_ms": 300},
            "limits": {"timeout_ms": 300, "budget": {"monthly_budget_usd": 100_000.0}},
            "capture": {"flush_interval_ms": 200,
                "primary": {"timeout_ms": 300}, "secondary": {"timeout_ms": 300}},
        }),
    );
    let ports = Ports {
        mock: mock.port(),
        auth: proxies[0].port(),
        webdis: proxies[1].port(),
        sink: proxies[2].port(),
        sink2: proxies[3].port(),
    };
    let envoy = Envoy::start_with(dir, &config, ports, 1);
    Rig { envoy, store, mock, proxies, sinks, delivered }
}

/// Calls that reached the provider, and how many distinct requests they were.
fn calls(mock: &MockProvider) -> (u64, u64) {
    let requests = mock.requests();
    let tagged: Vec<&str> = requests.iter().filter_map(|r| r.header(TAG)).collect();
    let distinct: HashSet<&str> = tagged.iter().copied().collect();
    (tagged.len() as u64, distinct.len() as u64)
}

fn spend(store: &Store, keys: &[String]) -> u64 {
    keys.iter().map(|k| store.command(&["GET", k])["GET"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0u64)).sum()
}

struct Check {
    ok: bool,
    name: &'static str,
    detail: String,
}

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    for (what, path) in [("the filter (make build)", wasm_path()), ("envoy (make setup)", envoy_bin())] {
        if !path.exists() {
            eprintln!("soak: {} is missing: {what}", path.display());
            return ExitCode::from(2);
        }
    }
    let out = repo_root().join("target/soak");
    let dir = out.join("run");
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("soak: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let (checks, report) = run(&settings, &dir);
    let _ = std::fs::write(out.join("report.md"), &report);
    println!("{report}");
    eprintln!("soak: report in {}, logs in {}", out.join("report.md").display(), dir.display());
    if checks.iter().all(|c| c.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(s: &Settings, dir: &Path) -> (Vec<Check>, String) {
    let total = s.duration();
    eprintln!(
        "soak: {:.1} min at {} req/s from {} clients; faults every {:?} for {:?}; logs in {}",
        s.minutes,
        s.rate,
        s.threads,
        s.fault_period(),
        s.fault_length(),
        dir.display()
    );
    let rig = start_rig(dir);
    let pid = envoy_pid(&rig.envoy);
    let budget_keys_start = budget_key(TEAM);
    rig.store.command(&["DEL", &budget_keys_start]);
    let warm_keys: Vec<String> = (0..s.threads).map(|i| format!("phx_soak_warm_{i}")).collect();
    for key in &warm_keys {
        rig.store.put_key(key, &principal());
    }

    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        auth_fault: AtomicBool::new(false),
        auth_epoch: AtomicU64::new(0),
        next_id: AtomicU64::new(0),
        done: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        current: Mutex::new(vec![None; s.threads]),
        cases: Mutex::new(HashMap::new()),
        tally: Mutex::new(Tally::default()),
    });
    let mut samples: Vec<Sample> = Vec::new();
    let sample = |t: Duration, fault: String, drained: bool| Sample {
        t,
        done: shared.done.load(Ordering::SeqCst),
        in_flight: shared.in_flight.load(Ordering::SeqCst),
        rss_kib: pid.and_then(rss_kib),
        wasm: pid.map(wasm_memories).unwrap_or_default(),
        metrics: metrics(rig.envoy.admin_port).unwrap_or_default(),
        fault,
        drained,
    };
    let t0 = Instant::now();
    samples.push(sample(Duration::ZERO, "-".into(), false));
    let interval = Duration::from_secs_f64(s.threads as f64 / s.rate);
    let clients: Vec<_> = (0..s.threads)
        .map(|index| {
            let env = ClientEnv {
                index,
                port: rig.envoy.port,
                webdis_port: rig.store.webdis_port,
                warm_key: warm_keys[index].clone(),
                interval,
                offset: interval.mul_f64(index as f64 / s.threads as f64),
                seed: s.seed,
            };
            let shared = shared.clone();
            thread::spawn(move || client(env, shared))
        })
        .collect();

    // Traffic, faults and samples.
    let mut windows = schedule(s);
    let mut next_sample = SAMPLE_EVERY;
    let mut grace_until: Option<Duration> = None;
    let mut active = "-".to_string();
    loop {
        let t = t0.elapsed();
        for w in windows.iter_mut() {
            let ((target, metric_name), (fault_name, fault)) = (TARGETS[w.target], FAULTS[w.fault]);
            if !w.applied && t >= w.start {
                w.applied = true;
                w.before = metrics(rig.envoy.admin_port).map_or(0, |m| metric(&m, metric_name));
                if w.target == 0 {
                    shared.auth_fault.store(true, Ordering::SeqCst);
                    shared.auth_epoch.fetch_add(1, Ordering::SeqCst);
                }
                rig.proxies[w.target].set(fault);
                active = format!("{target} {fault_name}");
                eprintln!("soak: {:>6.1}s {target} {fault_name}", t.as_secs_f64());
            }
            if w.applied && !w.cleared && t >= w.end {
                w.cleared = true;
                rig.proxies[w.target].set(Fault::None);
                if w.target == 0 {
                    shared.auth_epoch.fetch_add(1, Ordering::SeqCst);
                    grace_until = Some(t + AUTH_GRACE);
                }
                w.effect = metrics(rig.envoy.admin_port).map(|m| metric(&m, metric_name).saturating_sub(w.before));
                active = "-".into();
                eprintln!("soak: {:>6.1}s {target} recovered", t.as_secs_f64());
            }
        }
        if grace_until.is_some_and(|g| t >= g) {
            grace_until = None;
            shared.auth_fault.store(false, Ordering::SeqCst);
            shared.auth_epoch.fetch_add(1, Ordering::SeqCst);
        }
        if t >= next_sample {
            let sm = sample(next_sample, active.clone(), false);
            eprintln!(
                "soak: {:>6.1}s {} done, {} in flight, RSS {:.1} MiB, wasm {:.2} MiB",
                t.as_secs_f64(),
                sm.done,
                sm.in_flight,
                mib(sm.rss_kib.unwrap_or(0)),
                mib(sm.wasm_kib())
            );
            samples.push(sm);
            next_sample += SAMPLE_EVERY;
            // The sinks' own logs are not needed (deliveries are counted as they arrive).
            rig.sinks.0.clear();
            rig.sinks.1.clear();
        }
        if t >= total {
            // The end of the traffic is always sampled.
            if samples.last().is_some_and(|x| x.t + Duration::from_secs(1) < t) {
                samples.push(sample(t, active.clone(), false));
            }
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }

    // Stop the traffic, clear every fault, let the clients finish.
    shared.stop.store(true, Ordering::SeqCst);
    for p in &rig.proxies {
        p.set(Fault::None);
    }
    shared.auth_epoch.fetch_add(1, Ordering::SeqCst);
    shared.auth_fault.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + CLIENT_TIMEOUT + Duration::from_secs(15);
    while clients.iter().any(|c| !c.is_finished()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    let still_waiting: Vec<String> = lock(&shared.current)
        .iter()
        .flatten()
        .map(|(since, what)| format!("{what}, waiting for {:.0?}", since.elapsed()))
        .collect();
    for c in clients {
        if c.is_finished() {
            let _ = c.join();
        }
    }
    let traffic_end = t0.elapsed();

    // Drain: every call's event delivered or counted as dropped on both destinations.
    let drain_start = Instant::now();
    let settled = |m: &HashMap<String, u64>, calls: u64| {
        metric(m, "events_queued_total") == calls
            && ["primary", "secondary"].iter().all(|d| {
                metric(m, &format!("capture_{d}_queue_depth")) == 0
                    && metric(m, &format!("capture_{d}_sent_total")) + metric(m, &format!("capture_{d}_dropped_total"))
                        == calls
            })
    };
    // Every client has returned, so every call the provider will see has arrived
    // (the mock records a request before answering it).
    let (n_calls, _) = calls(&rig.mock);
    let mut last = metrics(rig.envoy.admin_port).unwrap_or_default();
    while drain_start.elapsed() < Duration::from_secs(120) && !settled(&last, n_calls) {
        thread::sleep(Duration::from_millis(250));
        last = metrics(rig.envoy.admin_port).unwrap_or_default();
    }
    let drained_in = drain_start.elapsed();
    // Counted again in case a request of a stuck client arrived late.
    let (n_calls, n_distinct) = calls(&rig.mock);
    // Spend reaches Redis every 250 ms: wait for it to stop changing.
    let mut budget_keys = vec![budget_keys_start.clone()];
    if budget_key(TEAM) != budget_keys_start {
        budget_keys.push(budget_key(TEAM)); // the month turned during the soak
    }
    let mut recorded = spend(&rig.store, &budget_keys);
    for _ in 0..40 {
        thread::sleep(Duration::from_millis(600));
        let now = spend(&rig.store, &budget_keys);
        if now == recorded {
            break;
        }
        recorded = now;
    }
    let final_metrics = metrics(rig.envoy.admin_port);
    let envoy_alive = final_metrics.is_some() && pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
    let m = final_metrics.unwrap_or(last);
    samples.push(sample(t0.elapsed(), "drained".into(), true));

    let tally = std::mem::take(&mut *lock(&shared.tally));
    let windows_done: Vec<&Window> = windows.iter().filter(|w| w.applied).collect();
    let mut checks = Vec::new();

    // 1. Nothing stuck.
    checks.push(Check {
        ok: tally.stuck == 0 && still_waiting.is_empty(),
        name: "no stuck requests",
        detail: format!(
            "{} requests, {} hung past {:?}, {} never returned; slowest {:.2?}",
            shared.done.load(Ordering::SeqCst),
            tally.stuck,
            CLIENT_TIMEOUT,
            still_waiting.len(),
            tally.slowest
        ) + &still_waiting.iter().map(|w| format!("\n  - {w}")).collect::<String>(),
    });
    // 2. Clients saw what the README documents.
    checks.push(Check {
        ok: tally.unexpected == 0,
        name: "client outcomes as documented",
        detail: format!("{} unexpected", tally.unexpected)
            + &tally.examples.iter().map(|e| format!("\n  - {e}")).collect::<String>(),
    });
    checks.push(Check {
        ok: envoy_alive,
        name: "Envoy alive",
        detail: format!("pid {pid:?}, admin {}", if envoy_alive { "answering" } else { "NOT answering" }),
    });
    // Every fault of the soak is a neighbour's; none may make Envoy refuse a hostcall.
    let refused = metric(&m, "hostcalls_failed_total");
    checks.push(Check {
        ok: envoy_alive && refused == 0,
        name: "no hostcall refused",
        detail: format!("hostcalls_failed_total {refused}"),
    });
    // 3. Memory flat after the warm-up.
    let traffic: Vec<&Sample> = samples.iter().filter(|x| !x.drained).collect();
    let quarter = traffic.iter().rev().find(|x| x.t <= total / 4).copied();
    let last_half: Vec<&Sample> = traffic.iter().filter(|x| x.t >= total / 2).copied().collect();
    let flat = |name: &'static str, value: &dyn Fn(&Sample) -> Option<u64>, pct: f64, slack_mib: f64| {
        let base = quarter.and_then(value);
        let peak = last_half.iter().filter_map(|x| value(x)).max();
        match (base, peak) {
            (Some(base), Some(peak)) if base > 0 => {
                let limit = base as f64 * (1.0 + pct / 100.0) + slack_mib * 1024.0;
                let growth = peak as f64 - base as f64;
                Check {
                    ok: (peak as f64) <= limit,
                    name,
                    detail: format!(
                        "{:.2} MiB at {:.0}s (end of the first quarter) vs max {:.2} MiB over the last half \
                         ({:+.2} MiB, {:+.1}%); allowed up to {:.2} MiB (+{pct}% +{slack_mib} MiB)",
                        mib(base),
                        quarter.map_or(0.0, |q| q.t.as_secs_f64()),
                        mib(peak),
                        growth / 1024.0,
                        growth * 100.0 / base as f64,
                        limit / 1024.0
                    ),
                }
            }
            _ => Check { ok: false, name, detail: "not measured (no Envoy pid, or no wasm memory found)".into() },
        }
    };
    checks.push(flat("RSS flat", &|x| x.rss_kib, s.rss_tolerance_pct, s.rss_slack_mib));
    checks.push(flat(
        "wasm memory flat",
        &|x| Some(x.wasm_kib()).filter(|k| *k > 0),
        s.wasm_tolerance_pct,
        s.wasm_slack_mib,
    ));
    // 4. The books balance.
    let queued = metric(&m, "events_queued_total");
    checks.push(Check {
        ok: queued == n_calls,
        name: "books: one event per call",
        detail: format!(
            "{n_calls} calls reached the provider ({n_distinct} distinct requests), events_queued_total {queued}"
        ),
    });
    for (i, (dest, label)) in [("primary", "books: primary"), ("secondary", "books: mirror")].into_iter().enumerate() {
        let get = |n: &str| metric(&m, &format!("capture_{dest}_{n}"));
        let (sent, dropped, depth) = (get("sent_total"), get("dropped_total"), get("queue_depth"));
        let d = lock(&rig.delivered[i]);
        let uuids = d.uuids.len() as u64;
        // A batch that arrived after its timeout is sent again with the same uuids.
        let ok = depth == 0 && sent + dropped == n_calls && uuids >= sent && uuids <= n_calls;
        checks.push(Check {
            ok,
            name: label,
            detail: format!(
                "sent {sent} + dropped {dropped} = {} vs {n_calls} calls; queue {depth}; {uuids} distinct uuids \
                 delivered in {} events (retried {}, failed {})",
                sent + dropped,
                d.events,
                get("retried_total"),
                get("failed_total")
            ),
        });
    }
    let cost = metric(&m, "cost_micro_usd_total");
    let spend_dropped = metric(&m, "spend_dropped_total");
    // Each call's cost is rounded to a micro-USD once; a dropped record may or may not have applied.
    let spend_ok = recorded <= cost + n_calls && (spend_dropped > 0 || recorded + n_calls >= cost);
    checks.push(Check {
        ok: spend_ok,
        name: "books: spend",
        detail: format!(
            "Redis {recorded} micro-USD vs cost_micro_usd_total {cost} ({:+} micro-USD, {:.2}%); \
             spend_records_total {}, spend_dropped_total {spend_dropped}",
            recorded as i64 - cost as i64,
            if cost > 0 { (recorded as f64 - cost as f64) * 100.0 / cost as f64 } else { 0.0 },
            metric(&m, "spend_records_total")
        ),
    });

    // 5. Events tell the truth: an error event only where a fault was injected, and every
    //    client that left mid-stream a disconnect.
    let events = event_books(&rig.delivered, &lock(&shared.cases));
    let plain_errors = events.get("plain").map_or(0, |b| b.errors);
    let left = events.get("client leaves mid-stream");
    let left_ok = left.is_none_or(|b| b.by_error.get(CLIENT_DISCONNECTED).copied().unwrap_or(0) == b.events);
    checks.push(Check {
        ok: plain_errors == 0 && left_ok,
        name: "events: errors only for injected faults",
        detail: format!(
            "{plain_errors} error events among {} plain calls (streams read to their terminal event, then closed); \
             clients that left mid-stream: {} of {} recorded as disconnects",
            events.get("plain").map_or(0, |b| b.events),
            left.map_or(0, |b| b.by_error.get(CLIENT_DISCONNECTED).copied().unwrap_or(0)),
            left.map_or(0, |b| b.events)
        ),
    });

    let log_summary = envoy_log_summary(&rig.envoy.log_text());
    let report = render_report(
        s,
        &samples,
        &windows_done,
        &tally,
        &checks,
        &m,
        traffic_end,
        drained_in,
        dir,
        &log_summary,
        &events,
    );
    (checks, report)
}

// ---------------------------------------------------------------------------
// Event books

const CLIENT_DISCONNECTED: &str = "client disconnected before the response completed";

/// One case's events: how many, how many errors, and the errors by message.
#[derive(Default)]
struct CaseEvents {
    events: u64,
    errors: u64,
    by_error: BTreeMap<String, u64>,
}

/// Each request's event (the primary's copy, else the mirror's) counted by its case.
fn event_books(
    delivered: &[Arc<Mutex<Delivered>>; 2],
    cases: &HashMap<u64, &'static str>,
) -> BTreeMap<String, CaseEvents> {
    let mut outcomes = lock(&delivered[0]).outcomes.clone();
    for (id, error) in &lock(&delivered[1]).outcomes {
        outcomes.entry(*id).or_insert_with(|| error.clone());
    }
    let mut books: BTreeMap<String, CaseEvents> = BTreeMap::new();
    for (id, error) in outcomes {
        let case = cases.get(&id).copied().unwrap_or("unknown");
        let b = books.entry(case.to_string()).or_default();
        b.events += 1;
        if let Some(e) = error {
            b.errors += 1;
            // Messages that name a detail are counted by their start.
            let key = match e.split_once(" (") {
                Some((head, _)) if head.starts_with("response did not complete") => head.to_string(),
                _ => e.chars().take(70).collect(),
            };
            *b.by_error.entry(key).or_default() += 1;
        }
    }
    books
}

// ---------------------------------------------------------------------------
// Report

#[allow(clippy::too_many_arguments)]
fn render_report(
    s: &Settings,
    samples: &[Sample],
    windows: &[&Window],
    tally: &Tally,
    checks: &[Check],
    m: &HashMap<String, u64>,
    traffic_end: Duration,
    drained_in: Duration,
    dir: &Path,
    log_summary: &str,
    events: &BTreeMap<String, CaseEvents>,
) -> String {
    let mut r = String::new();
    let done = samples.iter().map(|x| x.done).max().unwrap_or(0);
    let _ = writeln!(r, "# Soak report\n");
    let _ = writeln!(
        r,
        "{:.1} min of traffic at {} req/s (target) from {} clients, seed {}; Envoy with 1 worker; \
         one dependency fault every {:.0} s for {:.0} s; {} requests ({:.1} req/s achieved); \
         traffic stopped at {:.0} s, queues drained in {:.1} s.\n",
        s.minutes,
        s.rate,
        s.threads,
        s.seed,
        s.fault_period().as_secs_f64(),
        s.fault_length().as_secs_f64(),
        done,
        done as f64 / s.duration().as_secs_f64(),
        traffic_end.as_secs_f64(),
        drained_in.as_secs_f64()
    );
    let _ = writeln!(r, "## Samples\n");
    let _ = writeln!(
        r,
        "| t (s) | done | in flight | RSS MiB | wasm MiB (per VM) | events queued | primary sent / dropped / queue | \
         mirror sent / dropped / queue | auth unavail. | limits unavail. | spend dropped | fault |"
    );
    let _ = writeln!(r, "|---:|---:|---:|---:|---|---:|---|---|---:|---:|---:|---|");
    let quarter = samples.iter().filter(|x| !x.drained && x.t <= s.duration() / 4).count().saturating_sub(1);
    for i in condensed(samples.len(), 10, quarter) {
        let x = &samples[i];
        let get = |n: &str| metric(&x.metrics, n);
        let dest = |d: &str| {
            format!(
                "{} / {} / {}",
                get(&format!("capture_{d}_sent_total")),
                get(&format!("capture_{d}_dropped_total")),
                get(&format!("capture_{d}_queue_depth"))
            )
        };
        let vms: Vec<String> = x.wasm.iter().map(|(size, _)| format!("{:.2}", mib(*size))).collect();
        let _ = writeln!(
            r,
            "| {}{:.0} | {} | {} | {} | {:.2} ({}) | {} | {} | {} | {} | {} | {} | {} |",
            if x.drained { "end " } else { "" },
            x.t.as_secs_f64(),
            x.done,
            x.in_flight,
            x.rss_kib.map_or("?".into(), |k| format!("{:.1}", mib(k))),
            mib(x.wasm_kib()),
            vms.join(" / "),
            get("events_queued_total"),
            dest("primary"),
            dest("secondary"),
            get("auth_unavailable_total"),
            get("limits_unavailable_total"),
            get("spend_dropped_total"),
            x.fault
        );
    }
    let _ = writeln!(r, "\n({} samples in all: target/soak/samples.csv)\n", samples.len());
    write_csv(samples, dir);

    let _ = writeln!(r, "## Dependency faults\n");
    let _ = writeln!(r, "| from (s) | to (s) | target | fault | effect (metric delta) |");
    let _ = writeln!(r, "|---:|---:|---|---|---|");
    for w in windows {
        let ((target, metric_name), (fault, _)) = (TARGETS[w.target], FAULTS[w.fault]);
        let effect = w.effect.map_or("?".into(), |e| e.to_string());
        let _ = writeln!(
            r,
            "| {:.0} | {:.0} | {target} | {fault} | {metric_name} +{effect} |",
            w.start.as_secs_f64(),
            w.end.as_secs_f64()
        );
    }

    let _ = writeln!(r, "\n## Client outcomes\n");
    let _ = writeln!(r, "| case | client saw | count | slowest (ms) |");
    let _ = writeln!(r, "|---|---|---:|---:|");
    for ((case, saw), (n, slowest)) in &tally.outcomes {
        let _ = writeln!(r, "| {case} | {saw} | {n} | {slowest} |");
    }
    let mut ms = tally.plain_ms.clone();
    ms.sort_unstable();
    let pct = |q: f64| ms.get(((ms.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
    let _ = writeln!(
        r,
        "\nPlain successful requests: p50 {} ms, p99 {} ms, max {} ms.",
        pct(0.5),
        pct(0.99),
        ms.last().copied().unwrap_or(0)
    );
    let get = |n: &str| metric(m, n);
    let _ = writeln!(
        r,
        "Filter totals: requests {}, local replies {}, upstream failures {}, auth lookups {} (cache hits {}), \
         usage missing {}, cost fallback {}, rate limited {}.",
        get("requests_total"),
        get("local_replies_total"),
        get("upstream_failures_total"),
        get("auth_lookups_total"),
        get("auth_cache_hits_total"),
        get("usage_missing_total"),
        get("cost_fallback_total"),
        get("rate_limited_total")
    );
    let _ = writeln!(r, "{log_summary}");

    let _ = writeln!(r, "\n## Events by case\n");
    let _ = writeln!(r, "| case | events | `$ai_is_error` | errors by `$ai_error` |");
    let _ = writeln!(r, "|---|---:|---:|---|");
    for (case, b) in events {
        let by: Vec<String> = b.by_error.iter().map(|(e, n)| format!("{n}× {e}")).collect();
        let _ = writeln!(r, "| {case} | {} | {} | {} |", b.events, b.errors, by.join("; "));
    }

    let _ = writeln!(r, "\n## Verdict\n");
    for c in checks {
        let _ = writeln!(r, "- **{}** {}: {}", if c.ok { "PASS" } else { "FAIL" }, c.name, c.detail);
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    let _ = writeln!(
        r,
        "\n**{}**",
        if failed == 0 { "SOAK PASSED".to_string() } else { format!("SOAK FAILED ({failed} checks)") }
    );
    r
}

/// Envoy's log lines at error or critical level: how many, and the first few distinct ones.
fn envoy_log_summary(log: &str) -> String {
    let bad: Vec<&str> = log.lines().filter(|l| l.contains("][error]") || l.contains("][critical]")).collect();
    let mut distinct: Vec<&str> = Vec::new();
    for line in &bad {
        // Without the timestamp and thread prefix.
        let text = line.splitn(4, ']').nth(3).unwrap_or(line);
        if distinct.len() < 5 && !distinct.contains(&text) {
            distinct.push(text);
        }
    }
    let mut out = format!("Envoy log: {} lines at error or critical level.", bad.len());
    for d in distinct {
        let _ = write!(out, "\n  - `{}`", d.trim().chars().take(200).collect::<String>());
    }
    out
}

/// About `rows` indices spread over `n`, always with the first, the last and `keep`.
fn condensed(n: usize, rows: usize, keep: usize) -> Vec<usize> {
    if n <= rows + 2 {
        return (0..n).collect();
    }
    let mut picked: Vec<usize> = (0..rows).map(|i| i * (n - 1) / (rows - 1)).collect();
    picked.push(keep.min(n - 1));
    picked.sort_unstable();
    picked.dedup();
    picked
}

fn write_csv(samples: &[Sample], dir: &Path) {
    let mut names: Vec<&String> = samples.iter().flat_map(|x| x.metrics.keys()).collect();
    names.sort();
    names.dedup();
    let mut csv = String::from("t_s,drained,done,in_flight,rss_kib,wasm_kib,wasm_vms,fault");
    for n in &names {
        let _ = write!(csv, ",{n}");
    }
    csv.push('\n');
    for x in samples {
        let _ = write!(
            csv,
            "{:.1},{},{},{},{},{},{},{}",
            x.t.as_secs_f64(),
            x.drained,
            x.done,
            x.in_flight,
            x.rss_kib.unwrap_or(0),
            x.wasm_kib(),
            x.wasm.len(),
            x.fault.replace(',', " ")
        );
        for n in &names {
            let _ = write!(csv, ",{}", x.metrics.get(*n).copied().unwrap_or(0));
        }
        csv.push('\n');
    }
    let path: PathBuf = dir.parent().unwrap_or(dir).join("samples.csv");
    let _ = std::fs::write(path, csv);
}
