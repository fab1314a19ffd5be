//! A minimal blocking HTTP/1.1 server for the mock provider and the capture
//! sink: one thread per connection, keep-alive, request bodies by
//! content-length or chunked encoding, and responses that are either whole,
//! streamed chunk by chunk, or cut off with a TCP reset.
//!
//! It trusts its peer (Envoy or a test client) and is not hardened.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// One parsed request. Header names are lowercased; `path` keeps its query.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First value of a header; `name` must be lowercase.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The path without its query string.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

/// What the connection can do after the handler returns.
#[derive(Clone, Copy, PartialEq)]
enum State {
    Pending,
    /// A complete response was written: the connection can serve another request.
    Done,
    /// The response is incomplete or the socket was reset: close it.
    Closed,
}

/// How a handler answers. A handler that answers nothing gets the connection
/// closed.
pub struct Responder<'a> {
    conn: &'a TcpStream,
    state: State,
}

impl Responder<'_> {
    /// A whole response with content-length, written at once so the peer sees
    /// head and body together.
    pub fn send(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> io::Result<()> {
        self.state = State::Closed;
        let mut out = head(status, headers, &format!("content-length: {}\r\n", body.len()));
        out.extend_from_slice(body);
        (&*self.conn).write_all(&out)?;
        self.state = State::Done;
        Ok(())
    }

    /// Sends the head of a chunked response; the body follows through the
    /// returned writer.
    pub fn start_chunked(&mut self, status: u16, headers: &[(&str, &str)]) -> io::Result<Chunked<'_>> {
        // Until `finish`, the response is incomplete and the connection unusable.
        self.state = State::Closed;
        (&*self.conn).write_all(&head(status, headers, "transfer-encoding: chunked\r\n"))?;
        Ok(Chunked { conn: self.conn, state: &mut self.state, gap: Duration::ZERO, sent: 0 })
    }

    /// Resets the connection without answering.
    pub fn reset(&mut self) {
        reset(self.conn);
        self.state = State::Closed;
    }
}

/// The body of a chunked response. Dropping it without `finish` closes the
/// connection, so the peer sees a truncated body.
pub struct Chunked<'r> {
    conn: &'r TcpStream,
    state: &'r mut State,
    gap: Duration,
    sent: usize,
}

impl Chunked<'_> {
    /// Sleep this long before every chunk but the first.
    pub fn set_gap(&mut self, gap: Duration) {
        self.gap = gap;
    }

    /// Writes one chunk in one write; with TCP_NODELAY it leaves at once.
    pub fn chunk(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(()); // an empty chunk would end the body
        }
        if self.sent > 0 && !self.gap.is_zero() {
            thread::sleep(self.gap);
        }
        self.sent += 1;
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        (&*self.conn).write_all(&out)
    }

    /// Ends the body; the connection stays open for the next request.
    pub fn finish(self) -> io::Result<()> {
        (&*self.conn).write_all(b"0\r\n\r\n")?;
        *self.state = State::Done;
        Ok(())
    }

    /// Resets the connection mid-body.
    pub fn reset(self) {
        reset(self.conn);
    }

    /// Waits, sending nothing, until the peer closes the connection (true) or
    /// `max` passes (false): a provider that keeps a stream open after its last
    /// event, so the client is the one that ends it.
    pub fn wait_for_peer_close(&mut self, max: Duration) -> bool {
        let deadline = std::time::Instant::now() + max;
        let mut buf = [0u8; 512];
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || self.conn.set_read_timeout(Some(left)).is_err() {
                return false;
            }
            match (&*self.conn).read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return false,
                Err(_) => return true,
            }
        }
    }
}

/// Makes the coming close send RST instead of FIN (SO_LINGER with a zero
/// timeout), the way a crashed upstream looks to Envoy. The close itself
/// happens when the connection's thread lets go of the socket.
fn reset(conn: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid fd and a pointer to a properly sized, live `linger`.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn head(status: u16, headers: &[(&str, &str)], framing: &str) -> Vec<u8> {
    let mut s = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        let _ = write!(s, "{name}: {value}\r\n");
    }
    s.push_str(framing);
    s.push_str("\r\n");
    s.into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

type Handler = dyn Fn(Request, &mut Responder) + Send + Sync;
type Connections = Arc<Mutex<HashMap<u64, TcpStream>>>;

/// A running server. Dropping it stops accepting and shuts down open
/// connections, so pooled upstream connections in Envoy see it go away too.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Connections,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves on 127.0.0.1 at a free port.
    #[allow(clippy::expect_used)] // test infrastructure: no port is a setup failure
    pub fn start(handler: impl Fn(Request, &mut Responder) + Send + Sync + 'static) -> Server {
        Self::start_on(0, handler).expect("bind 127.0.0.1:0")
    }

    /// Serves on 127.0.0.1:`port` (0 picks a free one).
    pub fn start_on(
        port: u16,
        handler: impl Fn(Request, &mut Responder) + Send + Sync + 'static,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Connections::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let acceptor = {
            let (stop, conns) = (stop.clone(), conns.clone());
            thread::spawn(move || accept_loop(&listener, &stop, &conns, &handler))
        };
        Ok(Server { addr, stop, conns, acceptor: Some(acceptor) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // `accept` only returns on a connection: make one so it sees the flag.
        if TcpStream::connect(self.addr).is_ok() {
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
        for conn in lock(&self.conns).values() {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn accept_loop(listener: &TcpListener, stop: &AtomicBool, conns: &Connections, handler: &Arc<Handler>) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        // Streamed chunks must leave as written, not wait for Nagle.
        let _ = conn.set_nodelay(true);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = conn.try_clone() {
            lock(conns).insert(id, clone);
        }
        let (conns, handler) = (conns.clone(), handler.clone());
        thread::spawn(move || {
            serve(&conn, &*handler);
            // Drop the registry's duplicate first: the socket closes (or
            // resets) only when its last descriptor does.
            lock(&conns).remove(&id);
        });
    }
}

/// Serves requests on one connection until the peer closes it, a response is
/// left incomplete, or the request asks for `connection: close`.
fn serve(conn: &TcpStream, handler: &Handler) {
    let mut reader = BufReader::new(conn);
    while let Ok(Some(request)) = read_request(&mut reader, conn) {
        let close = request.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut responder = Responder { conn, state: State::Pending };
        handler(request, &mut responder);
        if close || responder.state != State::Done {
            return;
        }
    }
}

/// Reads one request; `None` when the peer closed the connection between
/// requests.
fn read_request(reader: &mut impl BufRead, conn: &TcpStream) -> io::Result<Option<Request>> {
    let mut first = String::new();
    if reader.read_line(&mut first)? == 0 {
        return Ok(None);
    }
    let mut parts = first.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(invalid("malformed request line"));
    };
    let mut request = Request { method: method.into(), path: path.into(), ..Request::default() };
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| invalid("malformed header"))?;
        request.headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    if request.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        (&*conn).write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let chunked = request.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked(reader)?;
    } else if let Some(len) = request.header("content-length") {
        let len = len.parse().map_err(|_| invalid("bad content-length"))?;
        read_exactly(reader, len, &mut request.body)?;
    }
    Ok(Some(request))
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Skip trailers up to the blank line that ends the message.
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        read_exactly(reader, size, &mut body)?;
        read_line(reader)?; // the CRLF after the chunk data
    }
}

fn read_exactly(reader: &mut impl BufRead, len: usize, into: &mut Vec<u8>) -> io::Result<()> {
    let got = reader.take(len as u64).read_to_end(into)?;
    if got < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// One line without its line ending; EOF is an error here because it would
/// cut a request short. A header value may carry bytes that are not UTF-8
/// (obs-text), which HTTP servers accept: they are read as U+FFFD.
fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut bytes = Vec::new();
    if reader.read_until(b'\n', &mut bytes)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let mut line = String::from_utf8_lossy(&bytes).into_owned();
    line.truncate(line.trim_end_matches(['\r', '\n']).len());
    Ok(line)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Locks a mutex, ignoring poisoning: a panicked handler thread must not take
/// the recorded state down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Server {
        Server::start(|req, res| {
            let _ = res.send(200, &[("x-path", &req.path)], &req.body);
        })
    }

    /// Reads one content-length response off a raw connection.
    fn read_response(reader: &mut impl BufRead) -> (String, Vec<u8>) {
        let status = read_line(reader).unwrap();
        let mut len = 0;
        loop {
            let line = read_line(reader).unwrap();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("content-length: ") {
                len = v.parse().unwrap();
            }
        }
        let mut body = Vec::new();
        read_exactly(reader, len, &mut body).unwrap();
        (status, body)
    }

    #[test]
    fn keep_alive_serves_chunked_and_sized_bodies_on_one_connection() {
        let server = echo();
        let conn = TcpStream::connect(server.addr()).unwrap();
        (&conn)
            .write_all(
                b"POST /a?q=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\
                  POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz",
            )
            .unwrap();
        let mut reader = BufReader::new(&conn);
        assert_eq!(read_response(&mut reader), ("HTTP/1.1 200 OK".into(), b"abcde".to_vec()));
        assert_eq!(read_response(&mut reader), ("HTTP/1.1 200 OK".into(), b"xyz".to_vec()));
    }

    #[test]
    fn reset_reaches_the_client_as_an_error() {
        let server = Server::start(|_, res| res.reset());
        let conn = TcpStream::connect(server.addr()).unwrap();
        (&conn).write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut buf = [0; 16];
        let err = (&conn).read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn drop_stops_accepting_and_frees_the_port() {
        let server = echo();
        let port = server.port();
        drop(server);
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        let again = Server::start_on(port, |_, _| {}).unwrap();
        assert_eq!(again.port(), port);
    }
}
