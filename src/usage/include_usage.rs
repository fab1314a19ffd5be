//! Undoing an injected `stream_options.include_usage`.
//!
//! The gateway asks OpenAI-format streams for usage even when the client did
//! not. With it, every chunk carries `"usage":null` and one extra chunk with
//! `"choices":[]` and the usage object comes before `data: [DONE]` (docs/protocols/openai-chat.md
//! A). [`UsageChunkStripper`] turns that stream back into the one the client
//! asked for: it drops the usage-only event and cuts the top-level
//! `"usage":null` member out of the others, textually, so every other byte
//! (formatting, key order, comments, `[DONE]`, unknown lines) is forwarded
//! unchanged. It only holds the event in progress.

use std::ops::Range;

use serde::de::IgnoredAny;

use crate::wire::sse::{DEFAULT_MAX_EVENT_BYTES, KEPT_BUFFER_BYTES};
use crate::wire::stream::Transform;

#[derive(Debug)]
pub struct UsageChunkStripper {
    /// The current event's bytes, not yet forwarded.
    buf: Vec<u8>,
    /// The next byte starts a line.
    line_start: bool,
    /// The previous byte was a CR: an LF now completes that line end.
    after_cr: bool,
    /// That CR ended a blank line, so the event ends after an optional LF.
    blank_cr: bool,
    /// The current event outgrew the cap and is being forwarded as is.
    passthrough: bool,
    max_event_bytes: usize,
}

impl Default for UsageChunkStripper {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl Transform for UsageChunkStripper {
    /// Returns the bytes to forward now: every event this chunk completed.
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        // At most what is held and what came, in one allocation.
        let mut out = Vec::with_capacity(self.buf.len() + chunk.len());
        let mut pending = chunk;
        let mut i = 0;
        while let Some(&b) = pending.get(i) {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    if self.blank_cr {
                        self.blank_cr = false;
                        pending = self.take_event(pending, i + 1, &mut out);
                        i = 0;
                    } else {
                        i += 1;
                    }
                    continue;
                }
                if self.blank_cr {
                    self.blank_cr = false;
                    pending = self.take_event(pending, i, &mut out);
                    i = 0;
                    continue;
                }
            }
            if !self.after_cr {
                // Only line ends matter: jump to the next one.
                let rest = pending.get(i..).unwrap_or_default();
                let Some(skip) = memchr::memchr2(b'\r', b'\n', rest) else {
                    self.line_start &= rest.is_empty();
                    break;
                };
                self.line_start &= skip == 0;
                i += skip;
            }
            let Some(&b) = pending.get(i) else {
                break;
            };
            match b {
                b'\r' => {
                    self.after_cr = true;
                    self.blank_cr = self.line_start;
                    self.line_start = true;
                }
                b'\n' if self.line_start => {
                    pending = self.take_event(pending, i + 1, &mut out);
                    i = 0;
                    continue;
                }
                b'\n' => self.line_start = true,
                _ => self.line_start = false,
            }
            i += 1;
        }
        self.buf.extend_from_slice(pending);
        if self.buf.len() > self.max_event_bytes && !self.blank_cr {
            out.append(&mut self.buf);
            self.passthrough = true;
        }
        out
    }

    /// Flushes whatever is left, as a last event without its blank line.
    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.end_event(&mut out);
        self.line_start = true;
        self.after_cr = false;
        self.blank_cr = false;
        out
    }
}

impl UsageChunkStripper {
    /// Events larger than `max_event_bytes` are forwarded untouched rather
    /// than buffered.
    pub fn new(max_event_bytes: usize) -> Self {
        UsageChunkStripper {
            buf: Vec::new(),
            line_start: true,
            after_cr: false,
            blank_cr: false,
            passthrough: false,
            max_event_bytes,
        }
    }

    /// Ends the event at `end` of `pending`; returns the rest of `pending`.
    fn take_event<'c>(&mut self, pending: &'c [u8], end: usize, out: &mut Vec<u8>) -> &'c [u8] {
        let (head, rest) = pending.split_at(end.min(pending.len()));
        self.buf.extend_from_slice(head);
        self.end_event(out);
        self.line_start = true;
        rest
    }

    fn end_event(&mut self, out: &mut Vec<u8>) {
        let event = &self.buf;
        let rewrite = if std::mem::take(&mut self.passthrough) { Rewrite::Keep } else { rewrite(event) };
        match rewrite {
            Rewrite::Keep => out.extend_from_slice(event),
            Rewrite::Drop => {}
            Rewrite::Cut(range) => {
                let (head, tail) = event.split_at(range.start.min(event.len()));
                out.extend_from_slice(head);
                out.extend_from_slice(tail.get(range.len()..).unwrap_or_default());
            }
        }
        // The next event reuses the buffer, unless an outsized one grew it.
        if self.buf.capacity() > KEPT_BUFFER_BYTES {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

#[derive(Debug, PartialEq)]
enum Rewrite {
    Keep,
    Drop,
    /// Remove these bytes of the event.
    Cut(Range<usize>),
}

/// Decides what to do with one complete event (its bytes, blank line included).
fn rewrite(event: &[u8]) -> Rewrite {
    let mut data = None;
    for line in lines(event) {
        let text = event.get(line.clone()).unwrap_or_default();
        if let Some(value) = text.strip_prefix(b"data:") {
            if data.is_some() {
                // Multi-line data never comes from OpenAI; leave it alone.
                return Rewrite::Keep;
            }
            let skip = 5 + usize::from(value.first() == Some(&b' '));
            data = Some(line.start + skip..line.end);
        }
    }
    let Some(data) = data else {
        return Rewrite::Keep;
    };
    match rewrite_json(event.get(data.clone()).unwrap_or_default()) {
        Rewrite::Cut(cut) => Rewrite::Cut(data.start + cut.start..data.start + cut.end),
        other => other,
    }
}

/// The same decision for an event's JSON, read in one textual pass: a
/// top-level `"usage":null` is cut; a usage-only chunk (`"choices":[]` and a
/// usage object) is dropped, once serde agrees it is JSON, since dropping is
/// the one change that loses bytes.
fn rewrite_json(json: &[u8]) -> Rewrite {
    let Some(top) = top_level(json) else {
        return Rewrite::Keep;
    };
    match top.usage {
        Some((key, value))
            if json.get(value..value + 4) == Some(b"null")
                && matches!(json.get(skip_ws(json, value + 4)), Some(b',' | b'}')) =>
        {
            Rewrite::Cut(with_comma(json, key, value + 4))
        }
        Some(_) if top.choices_empty && serde_json::from_slice::<IgnoredAny>(json).is_ok() => Rewrite::Drop,
        _ => Rewrite::Keep,
    }
}

/// What the rewrite needs of a JSON object's top-level members.
#[derive(Default)]
struct TopLevel {
    /// Where the `usage` member's key and its value start.
    usage: Option<(usize, usize)>,
    /// `choices` is an empty array.
    choices_empty: bool,
}

/// Reads `json` as one object whose brackets balance (else `None`), strings
/// skipped a word at a time.
fn top_level(json: &[u8]) -> Option<TopLevel> {
    let mut top = TopLevel::default();
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    let mut depth = 0usize;
    while let Some(&b) = json.get(i) {
        match b {
            b'"' => {
                let end = string_end(json, i)?;
                let colon = skip_ws(json, end);
                if depth == 1 && json.get(colon) == Some(&b':') {
                    let value = skip_ws(json, colon + 1);
                    match json.get(i + 1..end - 1) {
                        Some(b"usage") => top.usage = Some((i, value)),
                        Some(b"choices") => {
                            top.choices_empty =
                                json.get(value) == Some(&b'[') && json.get(skip_ws(json, value + 1)) == Some(&b']');
                        }
                        _ => {}
                    }
                }
                i = end;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return (skip_ws(json, i + 1) == json.len()).then_some(top);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Byte ranges of the lines of `event`, without their line ends.
fn lines(event: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        let rest = event.get(start..).filter(|r| !r.is_empty())?;
        let line = match memchr::memchr2(b'\r', b'\n', rest) {
            Some(len) => {
                let crlf = rest.get(len..len + 2) == Some(b"\r\n");
                let line = start..start + len;
                start += len + 1 + usize::from(crlf);
                line
            }
            None => {
                let line = start..event.len();
                start = event.len();
                line
            }
        };
        Some(line)
    })
}

/// Widens `start..end` to take the comma before it, else the one after it.
fn with_comma(json: &[u8], start: usize, end: usize) -> Range<usize> {
    let before = json.get(..start).and_then(|head| head.iter().rposition(|b| !b.is_ascii_whitespace()));
    if let Some(comma) = before.filter(|&p| json.get(p) == Some(&b',')) {
        return comma..end;
    }
    let after = skip_ws(json, end);
    if json.get(after) == Some(&b',') {
        return start..after + 1;
    }
    start..end
}

/// Index just past the string starting at `start` (a `"`).
fn string_end(json: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', json.get(i..)?)?;
        match json.get(i)? {
            b'\\' => i += 2,
            _ => return Some(i + 1),
        }
    }
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_whole(input: &[u8]) -> Vec<u8> {
        let mut s = UsageChunkStripper::default();
        let mut out = s.feed(input);
        out.extend(s.finish());
        out
    }

    /// The stripped stream must equal `expected` however it is chunked.
    fn assert_strips_to(with: &[u8], expected: &[u8]) {
        assert_eq!(String::from_utf8_lossy(&strip_whole(with)), String::from_utf8_lossy(expected));
        for cut in 0..=with.len() {
            let (a, b) = with.split_at(cut);
            let mut s = UsageChunkStripper::default();
            let mut out = s.feed(a);
            out.extend(s.feed(b));
            out.extend(s.finish());
            assert_eq!(out, expected, "split at {cut}");
        }
        let mut s = UsageChunkStripper::default();
        let mut out = Vec::new();
        for byte in with {
            out.extend(s.feed(std::slice::from_ref(byte)));
        }
        out.extend(s.finish());
        assert_eq!(out, expected, "one byte at a time");
    }

    /// The mock provider's chunk shape (keys sorted, compact), with and
    /// without include_usage, as `tests/e2e/src/mock.rs::chat_stream` builds it.
    fn mock_streams(eol: &str) -> (Vec<u8>, Vec<u8>) {
        let head = r#"{"choices":CHOICES,"created":1741569952,"id":"chatcmpl-mock","model":"gpt-4o-mini","object":"chat.completion.chunk","system_fingerprint":"fp_mock""#;
        let choices = [
            r#"[{"delta":{"content":"","role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}]"#,
            r#"[{"delta":{"content":"Hello"},"finish_reason":null,"index":0,"logprobs":null}]"#,
            r#"[{"delta":{"content":" \"usage\":null"},"finish_reason":null,"index":0,"logprobs":null}]"#,
            r#"[{"delta":{},"finish_reason":"stop","index":0,"logprobs":null}]"#,
        ];
        let usage = r#"{"completion_tokens":10,"prompt_tokens":19,"total_tokens":29}"#;
        let (mut with, mut without) = (String::new(), String::new());
        for c in choices {
            let chunk = head.replace("CHOICES", c);
            with.push_str(&format!("data: {chunk},\"usage\":null}}{eol}{eol}"));
            without.push_str(&format!("data: {chunk}}}{eol}{eol}"));
        }
        let last = head.replace("CHOICES", "[]");
        with.push_str(&format!("data: {last},\"usage\":{usage}}}{eol}{eol}"));
        with.push_str(&format!("data: [DONE]{eol}{eol}"));
        without.push_str(&format!("data: [DONE]{eol}{eol}"));
        (with.into_bytes(), without.into_bytes())
    }

    #[test]
    fn mock_stream_with_lf() {
        let (with, without) = mock_streams("\n");
        assert_strips_to(&with, &without);
    }

    #[test]
    fn mock_stream_with_crlf_and_cr() {
        let (with, without) = mock_streams("\r\n");
        assert_strips_to(&with, &without);
        let (with, without) = mock_streams("\r");
        assert_strips_to(&with, &without);
    }

    #[test]
    fn protocols_example_stream() {
        let with = b"data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n\
: keep-alive comment\n\n\
data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"r4N7\"}\n\n\
data: {\"usage\":null,\"id\":\"chatcmpl-123\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n\
data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n\
data: [DONE]\n\n";
        let without = b"data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n\
: keep-alive comment\n\n\
data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"obfuscation\":\"r4N7\"}\n\n\
data: {\"id\":\"chatcmpl-123\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";
        assert_strips_to(with, without);
    }

    #[test]
    fn unrelated_content_passes_through_byte_identical() {
        let input = b": comment\r\n\r\nevent: x\nid: 1\ndata: not json\n\n\
data: {\"error\":{\"message\":\"boom\",\"usage\":null}}\n\n\
data: {\"choices\":[],\"usage\":null}\n\n\
data: {\"a\":[{\"usage\":null}]}\n\n\
data: {\"usage\":{\"x\":1},\"choices\":[{}]}\n\n\
stray line without end";
        let expected = b": comment\r\n\r\nevent: x\nid: 1\ndata: not json\n\n\
data: {\"error\":{\"message\":\"boom\",\"usage\":null}}\n\n\
data: {\"choices\":[]}\n\n\
data: {\"a\":[{\"usage\":null}]}\n\n\
data: {\"usage\":{\"x\":1},\"choices\":[{}]}\n\n\
stray line without end";
        assert_strips_to(input, expected);
    }

    #[test]
    fn cut_handles_whitespace_and_position() {
        let cut = |json: &str| {
            let Rewrite::Cut(r) = rewrite_json(json.as_bytes()) else {
                panic!("no cut in {json}");
            };
            let mut s = json.to_owned();
            s.replace_range(r, "");
            s
        };
        assert_eq!(cut(r#"{"a":1,"usage":null}"#), r#"{"a":1}"#);
        assert_eq!(cut(r#"{"usage":null,"a":1}"#), r#"{"a":1}"#);
        assert_eq!(cut(r#"{"a":1 , "usage" : null }"#), r#"{"a":1  }"#);
        assert_eq!(cut(r#"{"usage":null}"#), r#"{}"#);
        assert_eq!(cut(r#"{"s":"}\"usage\":null","usage":null}"#), r#"{"s":"}\"usage\":null"}"#);
        assert_eq!(cut(r#" {"a":"\\","usage":null} "#), r#" {"a":"\\"} "#);
        for keep in [
            r#"{"usage":{"a":null}}"#,
            r#"{"x":"usage","y":null}"#,
            r#"{"usage":null"#,
            r#"{"usage":null}}"#,
            r#"{"usage":null} x"#,
            r#"{"usage":nullx}"#,
            r#"[{"usage":null}]"#,
        ] {
            assert_eq!(rewrite_json(keep.as_bytes()), Rewrite::Keep, "{keep}");
        }
    }

    #[test]
    fn only_a_usage_only_chunk_that_is_json_is_dropped() {
        assert_eq!(rewrite_json(br#"{"choices":[ ],"usage":{"total_tokens":3}}"#), Rewrite::Drop);
        assert_eq!(rewrite_json(br#"{"choices":[],"usage":{"total_tokens":3,}}"#), Rewrite::Keep);
        assert_eq!(rewrite_json(br#"{"choices":[{}],"usage":{"total_tokens":3}}"#), Rewrite::Keep);
        assert_eq!(rewrite_json(br#"{"choices":{},"usage":{"total_tokens":3}}"#), Rewrite::Keep);
    }

    #[test]
    fn oversized_partial_event_is_forwarded_untouched() {
        let mut s = UsageChunkStripper::new(16);
        let big = b"data: {\"choices\":[],\"usage\":{\"a\":1}}";
        let mut out = s.feed(big);
        assert_eq!(out, big.to_vec());
        assert!(s.buf.is_empty());
        out.extend(s.feed(b"\n\ndata: {\"x\":1,\"usage\":null}\n\n"));
        out.extend(s.finish());
        let mut expected = big.to_vec();
        expected.extend_from_slice(b"\n\ndata: {\"x\":1}\n\n");
        assert_eq!(out, expected);
    }

    #[test]
    fn the_buffer_is_reused_between_events_and_an_outsized_one_is_not_kept() {
        let text = "x".repeat(KEPT_BUFFER_BYTES);
        let big = format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}],\"usage\":null}}\n\n");
        let small = "data: {\"choices\":[],\"usage\":null}\n\n";
        let mut s = UsageChunkStripper::default();
        let mut out = s.feed(small.as_bytes());
        let kept = s.buf.capacity();
        assert!(kept > 0, "a small event's buffer is kept for the next");
        out.extend(s.feed(small.as_bytes()));
        assert_eq!(s.buf.capacity(), kept);
        out.extend(s.feed(big.as_bytes()));
        assert_eq!(s.buf.capacity(), 0, "an outsized event's buffer is let go");
        out.extend(s.feed(small.as_bytes()));
        out.extend(s.finish());
        let cut_small = "data: {\"choices\":[]}\n\n";
        let cut_big = big.replace(",\"usage\":null", "");
        assert_eq!(String::from_utf8(out).unwrap(), [cut_small, cut_small, &cut_big, cut_small].concat());
    }
}
