//! A raw-socket HTTP/1.1 client that behaves like the real ones: it reads a
//! response as it arrives and closes the connection the instant it has what
//! it wants (the stream's terminal event, say), as the official SDKs do,
//! instead of reading until the server closes. It also keeps every header
//! line as sent, so a test can see a header that appears twice.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::stack::TEST_KEY;

/// What the client saw, up to where it stopped reading.
#[derive(Debug, Default)]
pub struct RawResponse {
    pub status: u16,
    /// Every header line, in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked) as far as it was read.
    pub body: Vec<u8>,
    /// The client closed the connection before the response ended.
    pub left_early: bool,
}

impl RawResponse {
    /// How many times the header appears.
    pub fn count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(k, _)| k == name).count()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request on a new connection and reads the response until it ends,
/// or until `stop(body so far)` is true: then the socket is closed at once.
/// Sends `TEST_KEY` unless `headers` name a credential; a header with an empty
/// value is not sent (`("authorization", "")` sends no credential at all).
pub fn request_until(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl AsRef<[u8]>,
    stop: impl Fn(&[u8]) -> bool,
) -> RawResponse {
    let body = body.as_ref();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: gateway\r\ncontent-length: {}\r\n", body.len());
    let has_credential =
        headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("x-api-key"));
    if !has_credential {
        head.push_str(&format!("authorization: Bearer {TEST_KEY}\r\n"));
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        head.push_str("content-type: application/json\r\n");
    }
    for (k, v) in headers.iter().filter(|(_, v)| !v.is_empty()) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    send_until(port, &request, stop)
}

/// Sends `request` (the whole message, as bytes: a test can send a header
/// value that is not UTF-8) on a new connection and reads the response as
/// [`request_until`] does.
pub fn send_until(port: u16, request: &[u8], stop: impl Fn(&[u8]) -> bool) -> RawResponse {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect {port}: {e}"));
    let _ = conn.set_nodelay(true);
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap_or_default();
    conn.write_all(request).unwrap_or_else(|e| panic!("write: {e}"));

    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut out = RawResponse::default();
    // The head.
    let body_start = loop {
        if let Some(i) = find(&raw, b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..body_start]).into_owned();
    let mut lines = head.split("\r\n");
    out.status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    for line in lines.filter(|l| !l.is_empty()) {
        if let Some((k, v)) = line.split_once(':') {
            out.headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let chunked = out.header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length: Option<usize> = out.header("content-length").and_then(|v| v.parse().ok());
    let mut pending = raw[body_start..].to_vec();
    let mut decoder = Dechunker::default();
    loop {
        let finished = if chunked {
            decoder.feed(&pending, &mut out.body)
        } else {
            out.body.extend_from_slice(&pending);
            length.is_some_and(|l| out.body.len() >= l)
        };
        pending.clear();
        if finished {
            return out;
        }
        if stop(&out.body) {
            out.left_early = true;
            drop(conn);
            return out;
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

/// A request read to its end.
pub fn exchange(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> RawResponse {
    request_until(port, method, path, headers, body, |_| false)
}

/// Whether the client's terminal event has fully arrived (its blank line
/// included), by the route's API: `data: [DONE]`, `message_stop`, or
/// `response.completed` / `.incomplete` / `.failed`.
pub fn terminal_arrived(path: &str, body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let markers: &[&str] = if path.ends_with("/chat/completions") {
        &["data: [DONE]\n\n"]
    } else if path.ends_with("/messages") {
        &["event: message_stop\n"]
    } else {
        &["event: response.completed\n", "event: response.incomplete\n", "event: response.failed\n"]
    };
    markers.iter().any(|m| text.find(m).is_some_and(|at| text[at..].contains("\n\n")))
}

/// Whether `event` (an `event:` name, or a `data:` prefix) has fully arrived.
pub fn event_arrived(body: &[u8], event: &str) -> bool {
    let text = String::from_utf8_lossy(body);
    text.find(event).is_some_and(|at| text[at..].contains("\n\n"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Incremental chunked-transfer decoding.
#[derive(Default)]
struct Dechunker {
    buf: Vec<u8>,
    /// Bytes of the current chunk's data still to come.
    remaining: usize,
    /// The CRLF after a chunk's data is still to come.
    crlf: bool,
}

impl Dechunker {
    /// Appends decoded bytes to `out`; true at the last chunk.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> bool {
        self.buf.extend_from_slice(bytes);
        loop {
            if self.remaining > 0 {
                let n = self.remaining.min(self.buf.len());
                out.extend(self.buf.drain(..n));
                self.remaining -= n;
                if self.remaining > 0 {
                    return false;
                }
                self.crlf = true;
            }
            if self.crlf {
                if self.buf.len() < 2 {
                    return false;
                }
                self.buf.drain(..2);
                self.crlf = false;
            }
            let Some(end) = find(&self.buf, b"\r\n") else { return false };
            let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.drain(..end + 2);
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
            if size == 0 {
                return true;
            }
            self.remaining = size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_across_any_split() {
        let wire = b"5\r\nhello\r\n1;x=y\r\n \r\n6\r\nworld!\r\n0\r\n\r\n";
        for cut in 0..wire.len() {
            let (mut d, mut out) = (Dechunker::default(), Vec::new());
            let done = d.feed(&wire[..cut], &mut out) || d.feed(&wire[cut..], &mut out);
            assert!(done, "cut {cut}");
            assert_eq!(out, b"hello world!", "cut {cut}");
        }
    }

    #[test]
    fn terminal_events_by_route() {
        assert!(terminal_arrived("/v1/chat/completions", b"data: {}\n\ndata: [DONE]\n\n"));
        assert!(!terminal_arrived("/v1/chat/completions", b"data: {}\n\ndata: [DONE]\n"));
        let stop = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        assert!(terminal_arrived("/array/v1/messages", stop));
        assert!(!terminal_arrived("/v1/messages", &stop[..stop.len() - 1]));
        assert!(terminal_arrived("/v1/responses", b"event: response.completed\ndata: {}\n\n"));
    }
}
