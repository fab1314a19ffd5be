//! The load generator: HTTP/1.1 over N keep-alive connections, one thread
//! each.
//!
//! Open loop (`--rate R`): request i is due at `t0 + i/R`, handed round-robin
//! to the connections; a connection that is still busy sends the next one late,
//! and latency is always measured from the *scheduled* time, so a stall is
//! charged to every request it delays (no coordinated omission). How late sends
//! left (`send_lag`) is reported so an overloaded generator is visible. Threads
//! sleep until a due time (timer slack 1 ns); `--spin-us` busy-waits the last
//! stretch instead, which is off by default: on a core shared with the mock a
//! spinning thread delays the threads that have work (measured here under
//! background load: send lag p90 0.2-1.7 ms sleeping, 2.1-2.2 ms spinning).
//!
//! Closed loop (`--closed`): each connection sends back to back; this gives the
//! throughput ceiling, and its latencies are measured from the actual send.
//!
//! Streaming (`--stream`): also reports time to first body byte (the first
//! SSE event) besides time to last byte.

use crate::{body, proc, Args};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Config {
    addr: String,
    request: Vec<u8>,
    /// A successful response body contains this.
    expect: Vec<u8>,
    stream: bool,
    rate: Option<f64>,
    conns: usize,
    warmup: Duration,
    duration: Duration,
    timeout: Duration,
    /// Busy-wait this long before each due time instead of sleeping through it.
    spin: Duration,
}

/// One finished exchange.
struct Sample {
    /// When it was due (open loop) or sent (closed loop).
    due: Instant,
    sent: Instant,
    first_byte: Option<Instant>,
    done: Instant,
    error: Option<String>,
}

pub fn main(args: &[String]) -> Result<(), String> {
    crate::tight_timer_slack();
    let a = Args::parse(args, &["--stream", "--closed"])?;
    a.only(&[
        "--host",
        "--port",
        "--path",
        "--header",
        "--body-bytes",
        "--body-file",
        "--expect-body",
        "--stream",
        "--rate",
        "--closed",
        "--conns",
        "--duration",
        "--warmup",
        "--timeout-ms",
        "--spin-us",
        "--watch-pid",
    ])?;
    let host: String = a.get("--host", "127.0.0.1".to_string())?;
    let port: u16 = a.get("--port", 0)?;
    if port == 0 {
        return Err("--port is required".into());
    }
    let path: String = a.get("--path", "/v1/chat/completions".to_string())?;
    let stream = a.has("--stream");
    let body_bytes: usize = a.get("--body-bytes", 1024)?;
    let rate = if a.has("--closed") {
        None
    } else {
        let r: f64 = a.get("--rate", 100.0)?;
        if r <= 0.0 {
            return Err("--rate must be > 0".into());
        }
        Some(r)
    };
    let body = match a.all("--body-file").last() {
        Some(file) => std::fs::read(file).map_err(|e| format!("--body-file {file}: {e}"))?,
        None => body::chat(body_bytes, stream),
    };
    let body_bytes = body.len();
    let default_expect = if stream { "[DONE]" } else { "\"choices\"" };
    let expect: String = a.get("--expect-body", default_expect.to_string())?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for h in a.all("--header") {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(&body);
    let config = Config {
        addr: format!("{host}:{port}"),
        request,
        expect: expect.into_bytes(),
        stream,
        rate,
        conns: a.get("--conns", 4usize)?.max(1),
        warmup: Duration::from_secs_f64(a.get("--warmup", 1.0)?),
        duration: Duration::from_secs_f64(a.get("--duration", 5.0)?),
        timeout: Duration::from_millis(a.get("--timeout-ms", 10_000)?),
        spin: Duration::from_micros(a.get("--spin-us", 0)?),
    };
    let watch: Vec<u32> = a.all("--watch-pid").iter().filter_map(|p| p.parse().ok()).collect();
    let result = run(&config, &watch);
    let mut out = result;
    if let Value::Object(m) = &mut out {
        m.insert("body_bytes".into(), json!(body_bytes));
        m.insert("stream".into(), json!(stream));
        m.insert("path".into(), json!(path));
    }
    println!("{out}");
    Ok(())
}

fn run(c: &Config, watch: &[u32]) -> Value {
    // Threads connect first; the schedule starts once they are ready.
    let t0 = Instant::now() + Duration::from_millis(100);
    let start = t0 + c.warmup;
    let end = start + c.duration;
    let (samples, cpu): (Vec<Sample>, Vec<(u32, f64, u64)>) = thread::scope(|s| {
        let handles: Vec<_> = (0..c.conns).map(|k| s.spawn(move || worker(c, k, t0, end))).collect();
        // CPU of the watched processes over exactly the measured window.
        let trees: Vec<Vec<u32>> = watch.iter().map(|&p| proc::tree(p)).collect();
        sleep_until(start);
        let cpu0: Vec<f64> = trees.iter().map(|t| proc::cpu_seconds(t)).collect();
        sleep_until(end);
        let cpu1: Vec<f64> = trees.iter().map(|t| proc::cpu_seconds(t)).collect();
        let rss: Vec<u64> = trees.iter().map(|t| proc::rss_kib(t)).collect();
        let all = handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect();
        let cpu = watch.iter().zip(cpu0.iter().zip(&cpu1)).zip(&rss).map(|((&pid, (a, b)), &r)| (pid, b - a, r));
        (all, cpu.collect())
    });
    let window = |t: Instant| t >= start && t < end;
    // The same window on the wall clock, to pick this run's lines out of Envoy's access log.
    let (now, wall) = (Instant::now(), SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default());
    let unix_us = |t: Instant| (wall.as_secs_f64() - now.saturating_duration_since(t).as_secs_f64()) * 1e6;
    // Latency: everything due in the window. Throughput: successes completed in it.
    let measured: Vec<&Sample> = samples.iter().filter(|s| window(s.due)).collect();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut latency = Vec::new();
    let mut ttfb = Vec::new();
    let mut lag = Vec::new();
    for s in &measured {
        lag.push(s.sent.saturating_duration_since(s.due));
        match &s.error {
            Some(e) => *errors.entry(e.clone()).or_default() += 1,
            None => {
                latency.push(s.done - s.due);
                if let Some(f) = s.first_byte {
                    ttfb.push(f - s.due);
                }
            }
        }
    }
    let completed = samples.iter().filter(|s| s.error.is_none() && window(s.done)).count();
    let secs = c.duration.as_secs_f64();
    let mut out = Map::new();
    out.insert("mode".into(), json!(if c.rate.is_some() { "open" } else { "closed" }));
    out.insert("rate".into(), json!(c.rate));
    out.insert("conns".into(), json!(c.conns));
    out.insert("duration_s".into(), json!(secs));
    out.insert("ok".into(), json!(latency.len()));
    out.insert("errors".into(), json!(errors.values().sum::<u64>()));
    out.insert("error_kinds".into(), json!(errors));
    out.insert("throughput_rps".into(), json!(round1(completed as f64 / secs)));
    out.insert("window_unix_us".into(), json!([unix_us(start).round(), unix_us(end).round()]));
    out.insert("latency_us".into(), summary(&mut latency));
    if c.stream {
        out.insert("ttfb_us".into(), summary(&mut ttfb));
    }
    if c.rate.is_some() {
        out.insert("send_lag_us".into(), summary(&mut lag));
    }
    let procs: Vec<Value> = cpu
        .iter()
        .map(|&(pid, cpu_s, rss)| {
            let per_1k = if completed > 0 { cpu_s * 1000.0 / completed as f64 } else { 0.0 };
            json!({"pid": pid, "cpu_s": round3(cpu_s), "cpu_util": round3(cpu_s / secs),
                   "cpu_s_per_1k": round3(per_1k), "rss_kib": rss})
        })
        .collect();
    out.insert("procs".into(), json!(procs));
    Value::Object(out)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn summary(v: &mut [Duration]) -> Value {
    if v.is_empty() {
        return json!(null);
    }
    v.sort_unstable();
    let pick = |q: f64| {
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v.get(i).map_or(0.0, |d| round1(d.as_secs_f64() * 1e6))
    };
    let mean = v.iter().map(|d| d.as_secs_f64()).sum::<f64>() / v.len() as f64;
    json!({"n": v.len(), "p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "p999": pick(0.999),
           "max": pick(1.0), "mean": round1(mean * 1e6)})
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}

fn worker(c: &Config, k: usize, t0: Instant, end: Instant) -> Vec<Sample> {
    let mut conn = Conn::new(c);
    let _ = conn.ensure(); // connect before the schedule starts; errors surface on first use
    let mut samples = Vec::new();
    match c.rate {
        Some(rate) => {
            let step = Duration::from_secs_f64(c.conns as f64 / rate);
            let mut due = t0 + Duration::from_secs_f64(k as f64 / rate);
            while due < end {
                sleep_until(due.checked_sub(c.spin).unwrap_or(due));
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
                samples.push(conn.exchange(due));
                due += step;
            }
        }
        None => {
            sleep_until(t0);
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                samples.push(conn.exchange(now));
            }
        }
    }
    samples
}

struct Conn<'c> {
    c: &'c Config,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    scratch: Box<[u8]>,
}

/// The parsed head of a response.
struct Head {
    status: u16,
    len: usize,
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
}

impl<'c> Conn<'c> {
    fn new(c: &'c Config) -> Conn<'c> {
        Conn { c, stream: None, buf: Vec::with_capacity(64 * 1024), scratch: vec![0; 64 * 1024].into_boxed_slice() }
    }

    fn ensure(&mut self) -> io::Result<&TcpStream> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.c.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(self.c.timeout))?;
            s.set_write_timeout(Some(self.c.timeout))?;
            self.buf.clear();
            self.stream = Some(s);
        }
        self.stream.as_ref().ok_or_else(|| io::ErrorKind::NotConnected.into())
    }

    fn exchange(&mut self, due: Instant) -> Sample {
        let sent = Instant::now();
        let result = self.try_exchange();
        let done = Instant::now();
        let (first_byte, error) = match result {
            Ok(first) => (first, None),
            Err(e) => {
                // The connection state is unknown: start over on a new one.
                self.stream = None;
                if e.starts_with("connect") {
                    thread::sleep(Duration::from_millis(1));
                }
                (None, Some(e))
            }
        };
        Sample { due, sent, first_byte, done, error }
    }

    /// Sends the request and reads the whole response; returns when the first
    /// body byte arrived.
    fn try_exchange(&mut self) -> Result<Option<Instant>, String> {
        let request = &self.c.request;
        let mut stream = self.ensure().map_err(|e| format!("connect: {:?}", e.kind()))?;
        stream.write_all(request).map_err(|e| format!("write: {:?}", e.kind()))?;
        let mut last_read = Instant::now();
        let head = loop {
            if let Some(h) = parse_head(&self.buf)? {
                break h;
            }
            last_read = self.fill()?;
        };
        let mut first = (self.buf.len() > head.len).then_some(last_read);
        let end = if let Some(n) = head.content_length {
            while self.buf.len() < head.len + n {
                let t = self.fill()?;
                first.get_or_insert(t);
            }
            head.len + n
        } else if head.chunked {
            let mut pos = head.len;
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, pos, b"\r\n") {
                        break i;
                    }
                    let t = self.fill()?;
                    first.get_or_insert(t);
                };
                let size_text = std::str::from_utf8(self.buf.get(pos..line_end).unwrap_or_default()).unwrap_or("");
                let size_text = size_text.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size".to_string())?;
                pos = line_end + 2;
                if size == 0 {
                    // Trailers, if any, end with an empty line.
                    loop {
                        let line_end = loop {
                            if let Some(i) = find(&self.buf, pos, b"\r\n") {
                                break i;
                            }
                            self.fill()?;
                        };
                        let empty = line_end == pos;
                        pos = line_end + 2;
                        if empty {
                            break;
                        }
                    }
                    break pos;
                }
                while self.buf.len() < pos + size + 2 {
                    let t = self.fill()?;
                    first.get_or_insert(t);
                }
                pos += size + 2;
            }
        } else {
            // No framing: the body runs to the end of the connection.
            while self.fill_or_eof()? {
                first.get_or_insert_with(Instant::now);
            }
            self.stream = None;
            self.buf.len()
        };
        let ok_body = {
            let body = self.buf.get(head.len..end).unwrap_or_default();
            find(body, 0, &self.c.expect).is_some()
        };
        self.buf.drain(..end.min(self.buf.len()));
        if head.close {
            self.stream = None;
        }
        if head.status != 200 {
            return Err(format!("status {}", head.status));
        }
        if !ok_body {
            return Err("unexpected body".into());
        }
        Ok(first)
    }

    /// Reads more bytes; EOF is an error (the response is incomplete).
    fn fill(&mut self) -> Result<Instant, String> {
        if self.fill_or_eof()? {
            Ok(Instant::now())
        } else {
            Err("closed by peer".into())
        }
    }

    fn fill_or_eof(&mut self) -> Result<bool, String> {
        let mut stream = self.stream.as_ref().ok_or("not connected")?;
        match stream.read(&mut self.scratch) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(self.scratch.get(..n).unwrap_or_default());
                Ok(true)
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Err("timeout".into()),
            Err(e) => Err(format!("read: {:?}", e.kind())),
        }
    }
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|i| i + from)
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = find(buf, 0, b"\r\n\r\n") else { return Ok(None) };
    let text = std::str::from_utf8(buf.get(..end).unwrap_or_default()).map_err(|_| "non-UTF-8 head".to_string())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("bad status line")?;
    let mut head = Head { status, len: end + 4, content_length: None, chunked: false, close: false };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
        match name.as_str() {
            "content-length" => head.content_length = value.parse().ok(),
            "transfer-encoding" => head.chunked = value.contains("chunked"),
            "connection" => head.close = value.contains("close"),
            _ => {}
        }
    }
    if status_line.starts_with("HTTP/1.0") && !text.to_ascii_lowercase().contains("connection: keep-alive") {
        head.close = true;
    }
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_gateway_e2e::http1::Server;

    fn config(port: u16, stream: bool, rate: Option<f64>) -> Config {
        let body = body::chat(1024, stream);
        let mut request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        Config {
            addr: format!("127.0.0.1:{port}"),
            request,
            expect: if stream { b"[DONE]".to_vec() } else { b"\"choices\"".to_vec() },
            stream,
            rate,
            conns: 2,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(400),
            timeout: Duration::from_secs(2),
            spin: Duration::ZERO,
        }
    }

    #[test]
    fn open_loop_counts_json_and_chunked_responses() {
        let server = Server::start(|req, res| {
            if String::from_utf8_lossy(&req.body).contains("\"stream\":true") {
                let mut c = res.start_chunked(200, &[]).unwrap();
                c.chunk(b"data: {}\n\n").unwrap();
                c.chunk(b"data: [DONE]\n\n").unwrap();
                c.finish().unwrap();
            } else {
                res.send(200, &[], br#"{"choices":[]}"#).unwrap();
            }
        });
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1e6;
        let out = run(&config(server.port(), false, Some(200.0)), &[]);
        assert_eq!(out["errors"], 0, "{out}");
        let ok = out["ok"].as_u64().unwrap();
        assert!((70..=90).contains(&ok), "{out}");
        // The measured window on the wall clock: after the warm-up, as long as the run.
        let (from, to) = (out["window_unix_us"][0].as_f64().unwrap(), out["window_unix_us"][1].as_f64().unwrap());
        assert!(from > before + 150_000.0 && from < before + 1_000_000.0, "{out}");
        assert!((to - from - 400_000.0).abs() < 1_000.0, "{out}");
        let out = run(&config(server.port(), true, Some(100.0)), &[]);
        assert_eq!(out["errors"], 0, "{out}");
        assert!(out["ttfb_us"]["p50"].as_f64().unwrap() > 0.0, "{out}");
        let out = run(&config(server.port(), false, None), &[std::process::id()]);
        assert!(out["throughput_rps"].as_f64().unwrap() > 100.0, "{out}");
    }

    #[test]
    fn errors_are_counted_by_kind() {
        let server = Server::start(|_, res| {
            let _ = res.send(503, &[], b"no");
        });
        let out = run(&config(server.port(), false, Some(100.0)), &[]);
        assert_eq!(out["ok"], 0, "{out}");
        assert!(out["error_kinds"]["status 503"].as_u64().unwrap() > 0, "{out}");
    }
}
