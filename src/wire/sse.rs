//! Incremental Server-Sent Events parser.
//!
//! Grammar (WHATWG HTML, "Parsing an event stream"), the parts that matter:
//!
//! ```text
//! stream   = [ bom ] *event *( line )
//! event    = *( comment / field ) end-of-line
//! comment  = ":" *any-char end-of-line
//! field    = name [ ":" [ " " ] *any-char ] end-of-line
//! end-of-line = ( CR LF / LF / CR )
//! ```
//!
//! A blank line dispatches the event. `data` lines are joined with `\n`;
//! `event` sets the type; `id`, `retry` and unknown fields are ignored. An
//! event with no `data` line is not dispatched. Unlike the spec, [`SseParser::finish`]
//! also returns a last event that lacks its blank line, because a provider
//! stream cut short should still yield its final usage.
//!
//! Only the current line and the current event are buffered, and an event
//! larger than the configured cap is dropped (and counted) instead of growing
//! the buffer.

/// Default cap on one event's buffered bytes.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` type, if the event named one.
    pub event: Option<String>,
    pub data: String,
}

/// A stream's buffers keep up to this much capacity from one event to the
/// next; an outsized event's are freed when it ends.
pub const KEPT_BUFFER_BYTES: usize = 16 * 1024;

#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    line: Vec<u8>,
    /// The event in progress: its `event:` name and its `data` lines, each
    /// ending in `\n`. Lent to the caller when it completes, then cleared, so a
    /// steady stream reuses the same buffers.
    pending: SseEvent,
    /// An `event:` name's buffer, kept for the next one.
    spare_name: Option<String>,
    has_data: bool,
    /// The last chunk ended in CR: an LF opening the next one belongs to it.
    skip_lf: bool,
    /// Nothing has been parsed yet, so a UTF-8 BOM may still come.
    at_start: bool,
    /// The current event outgrew the cap; skip until its blank line.
    overflow: bool,
    /// In overflow, whether the current line has any bytes.
    overflow_line_nonempty: bool,
    dropped: u64,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            max_event_bytes,
            line: Vec::new(),
            pending: SseEvent { event: None, data: String::new() },
            spare_name: None,
            has_data: false,
            skip_lf: false,
            at_start: true,
            overflow: false,
            overflow_line_nonempty: false,
            dropped: 0,
        }
    }

    /// Events dropped so far for exceeding the size cap.
    pub fn dropped_events(&self) -> u64 {
        self.dropped
    }

    /// Bytes held for the current line and event (tests check bounds).
    #[cfg(test)]
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.line.capacity() + self.pending.data.capacity()
    }

    /// Parses the next chunk and returns the events it completed (a copy of
    /// each: [`SseParser::feed_each`] lends them instead).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        self.feed_each(chunk, |event| out.push(event.clone()));
        out
    }

    /// Parses the next chunk, handing each event it completes to `on_event`.
    pub fn feed_each(&mut self, chunk: &[u8], mut on_event: impl FnMut(&SseEvent)) {
        let mut rest = chunk;
        if self.skip_lf && !rest.is_empty() {
            self.skip_lf = false;
            if let Some((b'\n', tail)) = rest.split_first() {
                rest = tail;
            }
        }
        while !rest.is_empty() {
            let Some(end) = memchr::memchr2(b'\r', b'\n', rest) else {
                self.push_partial(rest);
                break;
            };
            let (head, tail) = rest.split_at(end);
            self.push_partial(head);
            let mut tail = tail;
            if let Some((&term, after)) = tail.split_first() {
                tail = after;
                if term == b'\r' {
                    match tail.split_first() {
                        Some((b'\n', after_lf)) => tail = after_lf,
                        None => self.skip_lf = true,
                        Some(_) => {}
                    }
                }
            }
            self.end_line(&mut on_event);
            rest = tail;
        }
    }

    /// Ends the stream: a pending line and event are completed as if a blank
    /// line followed.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut out = None;
        self.finish_each(|event| out = Some(event.clone()));
        out
    }

    /// [`SseParser::finish`], lending the last event to `on_event`.
    pub fn finish_each(&mut self, mut on_event: impl FnMut(&SseEvent)) {
        let pending_line = if self.overflow { self.overflow_line_nonempty } else { !self.line.is_empty() };
        let dispatched = pending_line && self.end_line(&mut on_event);
        if !dispatched {
            self.end_line(&mut on_event);
        }
        self.skip_lf = false;
    }

    fn push_partial(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.overflow {
            self.overflow_line_nonempty = true;
            return;
        }
        if self.line.len() + self.pending.data.len() + bytes.len() > self.max_event_bytes {
            self.start_overflow();
            self.overflow_line_nonempty = true;
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn start_overflow(&mut self) {
        self.dropped += 1;
        self.overflow = true;
        self.line = Vec::new();
        self.pending = SseEvent { event: None, data: String::new() };
        self.has_data = false;
    }

    /// Handles the line just terminated; a blank one completes the event.
    /// True when an event went to `on_event`.
    fn end_line(&mut self, on_event: &mut impl FnMut(&SseEvent)) -> bool {
        if self.overflow {
            let blank = !self.overflow_line_nonempty;
            self.overflow_line_nonempty = false;
            if blank {
                self.overflow = false;
            }
            return false;
        }
        let raw = std::mem::take(&mut self.line);
        let mut line: &[u8] = &raw;
        if self.at_start {
            self.at_start = false;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            // The line's buffer serves the next event, unless an outsized line grew it.
            if raw.capacity() <= KEPT_BUFFER_BYTES {
                self.line = raw;
            }
            return self.dispatch(on_event);
        }
        if line.first() == Some(&b':') {
            self.line = raw;
            self.line.clear();
            return false;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let (name, value) = line.split_at(colon);
                let value = value.get(1..).unwrap_or_default();
                (name, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"event" => {
                let mut buf = self.pending.event.take().or_else(|| self.spare_name.take()).unwrap_or_default();
                buf.clear();
                buf.push_str(&String::from_utf8_lossy(value));
                self.pending.event = Some(buf);
            }
            b"data" => {
                // Validating first takes the fast path for the usual valid UTF-8.
                match std::str::from_utf8(value) {
                    Ok(value) => self.pending.data.push_str(value),
                    Err(_) => self.pending.data.push_str(&String::from_utf8_lossy(value)),
                }
                self.pending.data.push('\n');
                self.has_data = true;
                if self.pending.data.len() > self.max_event_bytes {
                    self.start_overflow();
                }
            }
            _ => {}
        }
        // Reusing the allocation keeps steady-state streams allocation-light.
        self.line = raw;
        self.line.clear();
        false
    }

    /// A blank line: lends the event, if it has data, then clears it for the next.
    fn dispatch(&mut self, on_event: &mut impl FnMut(&SseEvent)) -> bool {
        // An empty `event:` names no event.
        if self.pending.event.as_deref() == Some("") {
            self.pending.event = None;
        }
        let has_data = std::mem::take(&mut self.has_data);
        if has_data {
            if self.pending.data.ends_with('\n') {
                self.pending.data.pop();
            }
            on_event(&self.pending);
        }
        // The next event reuses the buffers, unless an outsized one grew them.
        if let Some(name) = self.pending.event.take().filter(|n| n.capacity() <= KEPT_BUFFER_BYTES) {
            self.spare_name = Some(name);
        }
        if self.pending.data.capacity() > KEPT_BUFFER_BYTES {
            self.pending.data = String::new();
        } else {
            self.pending.data.clear();
        }
        has_data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_whole(input: &[u8]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = p.feed(input);
        out.extend(p.finish());
        out
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent { event: event.map(str::to_owned), data: data.to_owned() }
    }

    /// Every split point, and byte-at-a-time, must give the same events.
    fn assert_split_invariant(input: &[u8]) -> Vec<SseEvent> {
        let whole = parse_whole(input);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            let mut p = SseParser::default();
            let mut out = p.feed(a);
            out.extend(p.feed(b));
            out.extend(p.finish());
            assert_eq!(out, whole, "split at {cut}");
        }
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for byte in input {
            out.extend(p.feed(std::slice::from_ref(byte)));
        }
        out.extend(p.finish());
        assert_eq!(out, whole, "one byte at a time");
        whole
    }

    const MIXED: &[u8] = b"\xEF\xBB\xBF: comment\r\n\
event: message_start\r\n\
data: {\"a\":1}\r\n\
\r\n\
data:first\n\
data: second\n\
id: 7\n\
retry: 100\n\
\n\
event:ping\r\
data: {\"type\":\"ping\"}\r\
\r\
: only a comment\n\
\n\
event: lonely\n\
\n\
data\n\
\n\
data: \xC3\xA9t\xC3\xA9\n\
\n\
data: last without blank line";

    #[test]
    fn invalid_utf8_in_data_is_replaced_not_dropped() {
        let events = assert_split_invariant(b"data: a\xFFb \xC3\xA9\n\n");
        assert_eq!(events, vec![ev(None, "a\u{FFFD}b \u{e9}")]);
    }

    #[test]
    fn parses_fields_comments_and_line_endings() {
        let events = assert_split_invariant(MIXED);
        assert_eq!(
            events,
            vec![
                ev(Some("message_start"), "{\"a\":1}"),
                ev(None, "first\nsecond"),
                ev(Some("ping"), "{\"type\":\"ping\"}"),
                ev(None, ""),
                ev(None, "été"),
                ev(None, "last without blank line"),
            ]
        );
    }

    #[test]
    fn crlf_split_between_cr_and_lf_is_one_line_end() {
        let input = b"data: a\r\n\r\ndata: b\r\n\r\n";
        let events = assert_split_invariant(input);
        assert_eq!(events, vec![ev(None, "a"), ev(None, "b")]);
    }

    #[test]
    fn cr_cr_lf_is_line_then_blank_line() {
        let events = assert_split_invariant(b"data: a\r\r\ndata: b\n\n");
        assert_eq!(events, vec![ev(None, "a"), ev(None, "b")]);
    }

    #[test]
    fn openai_done_stream() {
        let input = b"data: {\"x\":1}\n\ndata: [DONE]\n\n";
        let events = assert_split_invariant(input);
        assert_eq!(events, vec![ev(None, "{\"x\":1}"), ev(None, "[DONE]")]);
    }

    #[test]
    fn only_one_space_after_colon_is_stripped() {
        let events = parse_whole(b"data:  two\n\n");
        assert_eq!(events, vec![ev(None, " two")]);
    }

    #[test]
    fn event_type_resets_after_dispatch() {
        let events = parse_whole(b"event: a\ndata: 1\n\ndata: 2\n\n");
        assert_eq!(events, vec![ev(Some("a"), "1"), ev(None, "2")]);
    }

    #[test]
    fn oversized_event_is_dropped_and_counted() {
        let mut input = b"data: small\n\ndata: ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend_from_slice(b"\ndata: more\n\nevent: e\ndata: after\n\n");
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            let mut p = SseParser::new(32);
            let mut out = p.feed(a);
            out.extend(p.feed(b));
            out.extend(p.finish());
            assert_eq!(out, vec![ev(None, "small"), ev(Some("e"), "after")], "split at {cut}");
            assert_eq!(p.dropped_events(), 1);
        }
    }

    #[test]
    fn buffered_bytes_stay_bounded() {
        let mut p = SseParser::new(64);
        for _ in 0..10_000 {
            p.feed(b"xxxxxxxxxxxxxxxx");
        }
        assert!(p.line.len() <= 64);
        assert_eq!(p.dropped_events(), 1);
        assert_eq!(p.feed(b"\n\ndata: ok\n\n"), vec![ev(None, "ok")]);
    }

    #[test]
    fn an_outsized_event_does_not_keep_its_buffers() {
        let mut p = SseParser::default();
        let big = format!("event: {}\ndata: {}\n\n", "e".repeat(100_000), "x".repeat(100_000));
        assert_eq!(p.feed(big.as_bytes()).len(), 1);
        assert_eq!(p.feed(b"data: small\n\n"), vec![ev(None, "small")]);
        let kept = p.buffered_bytes() + p.spare_name.as_ref().map_or(0, String::capacity);
        assert!(kept <= 2 * KEPT_BUFFER_BYTES, "{kept} bytes kept");
    }

    #[test]
    fn finish_without_pending_data_is_none() {
        let mut p = SseParser::default();
        assert_eq!(p.feed(b"data: a\n\n"), vec![ev(None, "a")]);
        assert_eq!(p.finish(), None);
        let mut p = SseParser::default();
        p.feed(b": comment only");
        assert_eq!(p.finish(), None);
    }
}
