//! One response's usage, model, error and text, read as the bytes pass.

use super::sink::Sink;
use super::{anthropic, openai_chat, openai_responses, Usage};
use crate::wire::SseParser;
use crate::wire::{Api, SseEvent};

/// Buffer caps; past them the tracker gives up on that part, never grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A non-streaming body is buffered up to this many bytes.
    pub max_body_bytes: usize,
    /// One SSE event is buffered up to this many bytes.
    pub max_event_bytes: usize,
    /// Assistant text kept for `$ai_output_choices`.
    pub max_output_text_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 32 * 1024 * 1024,
            max_event_bytes: crate::wire::sse::DEFAULT_MAX_EVENT_BYTES,
            max_output_text_bytes: 256 * 1024,
        }
    }
}

/// Why usage may be missing or partial although the provider sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The JSON body outgrew `max_body_bytes`; it was not parsed.
    BodyOverCap,
    /// The JSON body was not the expected JSON object.
    UnparsableBody,
    /// At least one SSE event outgrew `max_event_bytes` and was dropped.
    EventOverCap,
}

/// What a finished response yielded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extracted {
    pub usage: Option<Usage>,
    /// The model the provider says answered (`model` / `modelVersion`).
    pub served_model: Option<String>,
    /// An error reported in the body or stream, at most 512 characters.
    pub error: Option<String>,
    /// Assistant text (first choice), capped at `max_output_text_bytes`.
    pub output_text: String,
    /// Whether any content (text, tool call, reasoning) was generated.
    pub first_token: bool,
    pub problem: Option<Problem>,
}

/// What one `feed` call noticed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// This chunk carried the first content token (for time to first token).
    pub first_token: bool,
}

/// JSON's insignificant whitespace (RFC 8259), which serde_json skips before a
/// value. Only these bytes are skipped while sniffing, so dropping them before
/// a JSON body is parsed changes nothing (a form feed is not JSON whitespace).
fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[derive(Debug)]
enum Mode {
    /// `skipped` counts leading whitespace dropped while sniffing a stream: it
    /// counts against `max_body_bytes` but is not stored.
    Body { buf: Vec<u8>, over: bool, skipped: usize },
    /// While `sniffing`, only JSON whitespace has arrived: the first other byte
    /// tells SSE from a JSON body (a provider error answering a streaming
    /// request). The whitespace is not held: it goes to the SSE parser (which
    /// then ends up exactly as if it had read the stream from the start, and
    /// keeps at most one line, within its event cap) and is counted in
    /// `skipped`, so the result does not depend on how the bytes are chunked.
    Stream { parser: SseParser, sniffing: bool, skipped: usize },
}

/// Reads one response: JSON bodies are buffered (up to a cap) and parsed once
/// at the end; SSE streams are parsed event by event, keeping only the
/// current event. A response to a streaming request that turns out to be a
/// JSON object or array (an error reply) is read as a JSON body.
#[derive(Debug)]
pub struct UsageTracker {
    wire: Api,
    limits: Limits,
    mode: Mode,
    sink: Sink,
}

impl UsageTracker {
    pub fn new(wire: Api, streaming: bool) -> Self {
        Self::with_limits(wire, streaming, Limits::default())
    }

    pub fn with_limits(wire: Api, streaming: bool, limits: Limits) -> Self {
        let mode = if streaming {
            Mode::Stream { parser: SseParser::new(limits.max_event_bytes), sniffing: true, skipped: 0 }
        } else {
            Mode::Body { buf: Vec::new(), over: false, skipped: 0 }
        };
        UsageTracker { wire, limits, mode, sink: Sink { max_text: limits.max_output_text_bytes, ..Sink::default() } }
    }

    /// Whether the first content token has arrived (streams only; a JSON
    /// body is read at `finish`).
    pub fn saw_first_token(&self) -> bool {
        self.sink.first_token
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Progress {
        let before = self.sink.first_token;
        let mut chunk = chunk;
        if let Mode::Stream { parser, sniffing: sniffing @ true, skipped } = &mut self.mode {
            let ws = chunk.iter().position(|&b| !is_json_whitespace(b)).unwrap_or(chunk.len());
            let (lead, rest) = chunk.split_at(ws);
            // Whitespace alone completes no SSE event.
            parser.feed_each(lead, |_| {});
            *skipped = skipped.saturating_add(lead.len());
            chunk = rest;
            match rest.first() {
                None => return Progress::default(),
                Some(b'{' | b'[') => self.mode = Mode::Body { buf: Vec::new(), over: false, skipped: *skipped },
                Some(_) => *sniffing = false,
            }
        }
        match &mut self.mode {
            Mode::Body { buf, over, skipped } => {
                if !*over {
                    if skipped.saturating_add(buf.len()).saturating_add(chunk.len()) > self.limits.max_body_bytes {
                        *over = true;
                        *buf = Vec::new();
                    } else {
                        buf.extend_from_slice(chunk);
                    }
                }
            }
            Mode::Stream { parser, .. } => {
                let (wire, sink) = (self.wire, &mut self.sink);
                parser.feed_each(chunk, |event| handle_event(wire, event, sink));
            }
        }
        Progress { first_token: !before && self.sink.first_token }
    }

    pub fn finish(&mut self) -> Extracted {
        let mut problem = None;
        match &mut self.mode {
            Mode::Body { buf, over, .. } => {
                let body = std::mem::take(buf);
                if *over {
                    problem = Some(Problem::BodyOverCap);
                } else if handle_body(self.wire, &body, &mut self.sink).is_err() {
                    problem = Some(Problem::UnparsableBody);
                }
            }
            Mode::Stream { parser, .. } => {
                let (wire, sink) = (self.wire, &mut self.sink);
                parser.finish_each(|event| handle_event(wire, event, sink));
                if parser.dropped_events() > 0 {
                    problem = Some(Problem::EventOverCap);
                }
            }
        }
        let sink = std::mem::take(&mut self.sink);
        self.sink.max_text = sink.max_text;
        Extracted {
            usage: sink.usage,
            served_model: sink.model,
            error: sink.error,
            output_text: sink.text,
            first_token: sink.first_token,
            problem,
        }
    }
}

fn handle_body(wire: Api, body: &[u8], sink: &mut Sink) -> Result<(), serde_json::Error> {
    match wire {
        Api::Chat => openai_chat::body(body, sink),
        Api::Responses => openai_responses::body(body, sink),
        Api::Messages => anthropic::body(body, sink),
    }
}

fn handle_event(wire: Api, event: &SseEvent, sink: &mut Sink) {
    match wire {
        Api::Chat => openai_chat::event(event, sink),
        Api::Responses => openai_responses::event(event, sink),
        Api::Messages => anthropic::event(event, sink),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_answering_a_streaming_request_is_read_as_json() {
        let body = b"\n {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\"}}";
        for cut in 0..=body.len() {
            let (a, b) = body.split_at(cut);
            let mut t = UsageTracker::new(Api::Chat, true);
            t.feed(a);
            t.feed(b);
            let out = t.finish();
            assert_eq!(out.error.as_deref(), Some("Rate limit reached"), "split at {cut}");
            assert_eq!(out.problem, None);
        }
        let mut t = UsageTracker::new(Api::Messages, true);
        t.feed(b"\r\n");
        assert_eq!(t.finish(), Extracted::default());
    }

    fn track(wire: Api, limits: Limits, chunks: &[&[u8]]) -> Extracted {
        let mut t = UsageTracker::with_limits(wire, true, limits);
        for chunk in chunks {
            t.feed(chunk);
        }
        t.finish()
    }

    /// The result for `body` read as a stream, checked to be the same fed
    /// whole, in two pieces at every cut, and byte by byte.
    fn track_any_chunking(wire: Api, limits: Limits, body: &[u8]) -> Extracted {
        let whole = track(wire, limits, &[body]);
        for cut in 0..=body.len() {
            let (a, b) = body.split_at(cut);
            assert_eq!(track(wire, limits, &[a, b]), whole, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(track(wire, limits, &bytes), whole, "byte by byte");
        whole
    }

    /// Regression (fuzz/corpus/usage_openai_chat/crash-sniff-whitespace-over-1024):
    /// a first chunk of more than 1 KiB of whitespace made the stream read as
    /// SSE, losing the JSON error that followed, unless it came in one piece.
    #[test]
    fn long_leading_whitespace_does_not_change_the_result() {
        let mut body = vec![b' '; 3000];
        body.extend_from_slice(br#"{"error":{"message":"Rate limit reached"}}"#);
        let out = track_any_chunking(Api::Chat, Limits::default(), &body);
        assert_eq!(out.error.as_deref(), Some("Rate limit reached"));
        assert_eq!(out.problem, None);

        let mut body = b" \t\r\n".repeat(700);
        body.extend_from_slice(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n");
        let out = track_any_chunking(Api::Chat, Limits::default(), &body);
        assert_eq!(out.output_text, "hi");
        assert_eq!(out.problem, None);
    }

    #[test]
    fn skipped_whitespace_counts_against_the_caps_without_being_held() {
        // Counted against the body cap, as if it had been buffered.
        let limits = Limits { max_body_bytes: 12, ..Limits::default() };
        let out = track_any_chunking(Api::Chat, limits, b"\n\n\n\n\n\n\n\n\n\n{}");
        assert_eq!(out.problem, None);
        let out = track_any_chunking(Api::Chat, limits, b"\n\n\n\n\n\n\n\n\n\n\n{}");
        assert_eq!(out.problem, Some(Problem::BodyOverCap));
        // A whitespace line longer than the event cap is an oversized SSE line.
        let limits = Limits { max_event_bytes: 8, ..Limits::default() };
        let out = track_any_chunking(Api::Chat, limits, b"         \n\ndata: {}\n\n");
        assert_eq!(out.problem, Some(Problem::EventOverCap));
        // A form feed is not JSON whitespace: what follows it is not a JSON body.
        let out = track_any_chunking(Api::Chat, Limits::default(), b"\x0C{\"error\":\"x\"}");
        assert_eq!(out, Extracted::default());
        // Megabytes of whitespace, then a JSON error: only one line is held.
        let mut t = UsageTracker::new(Api::Chat, true);
        for _ in 0..4096 {
            t.feed(&[b' '; 1024]);
            t.feed(b"\r\n");
        }
        let Mode::Stream { parser, .. } = &t.mode else { panic!("still sniffing") };
        assert!(parser.buffered_bytes() <= 4096, "{} bytes held", parser.buffered_bytes());
        t.feed(br#"{"error":"late"}"#);
        assert_eq!(t.finish().error.as_deref(), Some("late"));
    }

    #[test]
    fn oversized_body_gives_up_and_says_why() {
        let limits = Limits { max_body_bytes: 10, ..Limits::default() };
        let mut t = UsageTracker::with_limits(Api::Chat, false, limits);
        t.feed(br#"{"usage":{"prompt_tokens":1,"completion_tokens":2}}"#);
        let out = t.finish();
        assert_eq!(out.usage, None);
        assert_eq!(out.problem, Some(Problem::BodyOverCap));
    }
}
