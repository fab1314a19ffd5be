//! The stream-transform driver. Every conversion of a response stream is a
//! [`Transform`]: provider bytes in, client bytes out, chunk by chunk. The
//! SSE-to-SSE ones only say what to do with one event ([`EventHandler`]);
//! [`Sse`] owns the parsing, the end of the stream and what comes after it.

use super::{SseEvent, SseParser};

/// One stage of a response stream.
pub trait Transform {
    /// Converts the next bytes; returns what is complete.
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8>;
    /// The input ended; returns the rest.
    fn finish(&mut self) -> Vec<u8>;
    /// The input ended before the answer was complete, and the client was told so.
    fn incomplete(&self) -> bool {
        false
    }
}

/// Whether an event was the stream's last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// The stream is over for the client; later input is ignored.
    Done,
}

/// An SSE-to-SSE conversion, one complete input event at a time.
pub trait EventHandler {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Next;
    /// The input ended before an event said [`Next::Done`]: close the client's
    /// stream; true when the answer was incomplete and the client got an error.
    fn cut(&mut self, _out: &mut Vec<u8>) -> bool {
        false
    }
}

/// Runs an [`EventHandler`] over a byte stream, holding at most one input event.
pub struct Sse<H> {
    parser: SseParser,
    handler: H,
    done: bool,
    incomplete: bool,
}

impl<H: EventHandler> Sse<H> {
    pub fn new(handler: H) -> Self {
        Sse { parser: SseParser::default(), handler, done: false, incomplete: false }
    }
}

/// One input event to the handler, unless the stream is already over for the client.
fn handle<H: EventHandler>(handler: &mut H, done: &mut bool, event: &SseEvent, out: &mut Vec<u8>) {
    if !*done && handler.event(event, out) == Next::Done {
        *done = true;
    }
}

impl<H: EventHandler> Transform for Sse<H> {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.done {
            return Vec::new();
        }
        // A converted event is about as long as the one it came from.
        let mut out = Vec::with_capacity(chunk.len());
        let Sse { parser, handler, done, .. } = self;
        parser.feed_each(chunk, |event| handle(handler, done, event, &mut out));
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        let Sse { parser, handler, done, .. } = self;
        parser.finish_each(|event| handle(handler, done, event, &mut out));
        if !self.done {
            self.done = true;
            self.incomplete = self.handler.cut(&mut out);
        }
        out
    }

    fn incomplete(&self) -> bool {
        self.incomplete
    }
}

/// Appends an unnamed SSE event (OpenAI's format).
pub fn push_data(out: &mut Vec<u8>, json: &str) {
    push_data_with(out, |out| out.extend_from_slice(json.as_bytes()));
}

/// The same, with its data written by `write` straight into `out`.
pub fn push_data_with(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b"data: ");
    write(out);
    out.extend_from_slice(b"\n\n");
}

/// Appends a named SSE event (Anthropic's and the Responses API's format).
pub fn push_named(out: &mut Vec<u8>, event: &str, json: &str) {
    push_named_with(out, event, |out| out.extend_from_slice(json.as_bytes()));
}

/// The same, with its data written by `write` straight into `out` (a large
/// event is then not built apart and copied in).
pub fn push_named_with(out: &mut Vec<u8>, event: &str, write: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    write(out);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes events; `stop` ends the stream; a cut writes `cut`.
    struct Echo;

    impl EventHandler for Echo {
        fn event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Next {
            push_data(out, &event.data);
            if event.data == "stop" {
                Next::Done
            } else {
                Next::Continue
            }
        }

        fn cut(&mut self, out: &mut Vec<u8>) -> bool {
            push_data(out, "cut");
            true
        }
    }

    #[test]
    fn input_after_the_last_event_is_ignored() {
        let mut s = Sse::new(Echo);
        let mut out = s.feed(b"data: a\n\ndata: stop\n\ndata: b\n\n");
        out.extend(s.feed(b"data: c\n\n"));
        out.extend(s.finish());
        assert_eq!(out, b"data: a\n\ndata: stop\n\n");
    }

    #[test]
    fn a_stream_without_its_last_event_is_cut_once() {
        let mut s = Sse::new(Echo);
        let mut out = s.feed(b"data: a\n\ndata: b");
        out.extend(s.finish());
        out.extend(s.finish());
        assert_eq!(out, b"data: a\n\ndata: b\n\ndata: cut\n\n");
        assert!(s.incomplete());
    }
}
