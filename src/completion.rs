//! When a streamed call is complete: decided by the protocol, not by who
//! closes the connection first.
//!
//! Real clients (the OpenAI and Anthropic SDKs, Codex, LangChain, LiteLLM)
//! close the connection as soon as they have read the terminal event, often
//! before the provider's end of stream reaches the gateway. So a stream is
//! complete once the client's terminal event has been handed to the client:
//!
//! | client format | terminal event |
//! |---|---|
//! | OpenAI Chat Completions | `data: [DONE]` |
//! | Anthropic Messages | `message_stop` (also what Bedrock's decoded stream ends with) |
//! | OpenAI Responses | `response.completed`, `response.incomplete` or `response.failed` |
//!
//! [`TerminalScanner`] reads the bytes the client receives (after any
//! translation, so a translated stream's terminal event is the one the
//! translator produced) and says when that event has passed. A JSON body is
//! complete at the end of the stream. A client that leaves before its
//! terminal event is still a disconnect; see [`ending`].

use crate::wire::Api;

/// Bytes of a line kept: enough for a field name and the start of its value.
const LINE_HEAD: usize = 96;

/// Finds the client's terminal event in the SSE bytes the client receives.
///
/// Incremental and bounded: it keeps at most [`LINE_HEAD`] bytes of the
/// current line, the current event's name and the head of its first data
/// line, whatever the chunking. An event counts once its blank line has
/// passed, as an SSE client dispatches it only then.
#[derive(Debug)]
pub struct TerminalScanner {
    client: Api,
    line: Vec<u8>,
    /// The last byte was a CR: an LF right after it ends the same line.
    after_cr: bool,
    /// The current event has a name, and a data line; their heads are in the
    /// buffers, which are reused from event to event.
    has_event: bool,
    has_data: bool,
    event: Vec<u8>,
    data: Vec<u8>,
    seen: bool,
}

impl TerminalScanner {
    pub fn new(client: Api) -> Self {
        TerminalScanner {
            client,
            line: Vec::new(),
            after_cr: false,
            has_event: false,
            has_data: false,
            event: Vec::new(),
            data: Vec::new(),
            seen: false,
        }
    }

    /// Whether the terminal event has passed.
    pub fn seen(&self) -> bool {
        self.seen
    }

    /// Reads the next bytes; true when the terminal event completed in them.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        if self.seen {
            return false;
        }
        let mut rest = bytes;
        while let Some((&first, after_first)) = rest.split_first() {
            if self.after_cr {
                self.after_cr = false;
                if first == b'\n' {
                    rest = after_first;
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', rest) {
                Some(end) => {
                    let (line, tail) = rest.split_at(end);
                    self.keep(line);
                    let Some((&eol, tail)) = tail.split_first() else { break };
                    self.after_cr = eol == b'\r';
                    rest = tail;
                    if self.end_line() {
                        self.seen = true;
                        return true;
                    }
                }
                None => {
                    self.keep(rest);
                    rest = &[];
                }
            }
        }
        false
    }

    fn keep(&mut self, part: &[u8]) {
        let room = LINE_HEAD.saturating_sub(self.line.len());
        self.line.extend_from_slice(part.get(..part.len().min(room)).unwrap_or(part));
    }

    /// A line ended; true when it dispatched the terminal event.
    fn end_line(&mut self) -> bool {
        let line = std::mem::take(&mut self.line);
        let terminal = self.read_line(&line);
        // The line's buffer serves the next line.
        self.line = line;
        self.line.clear();
        terminal
    }

    fn read_line(&mut self, line: &[u8]) -> bool {
        if line.is_empty() {
            let has_event = std::mem::take(&mut self.has_event);
            return std::mem::take(&mut self.has_data)
                && self.is_terminal(has_event.then_some(self.event.as_slice()), &self.data);
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(0) => return false, // a comment
            Some(i) => {
                let (name, value) = line.split_at(i);
                (name, value.get(1..).unwrap_or_default())
            }
            None => (line, &[][..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let (has, buf) = match name {
            b"event" => (&mut self.has_event, &mut self.event),
            b"data" if !self.has_data => (&mut self.has_data, &mut self.data),
            _ => return false,
        };
        buf.clear();
        buf.extend_from_slice(value);
        *has = true;
        false
    }

    fn is_terminal(&self, event: Option<&[u8]>, data: &[u8]) -> bool {
        // Bedrock's decoded stream names events it cannot type `message`.
        let name = match event.filter(|e| !e.is_empty() && *e != b"message") {
            Some(e) => Some(e),
            None => json_type(data),
        };
        match self.client {
            Api::Chat => data.trim_ascii() == b"[DONE]",
            Api::Messages => name == Some(b"message_stop"),
            Api::Responses => {
                matches!(name, Some(b"response.completed" | b"response.incomplete" | b"response.failed"))
            }
        }
    }
}

/// The value of `"type"` when it is the object's first member (as Anthropic
/// and OpenAI write their events).
fn json_type(data: &[u8]) -> Option<&[u8]> {
    let rest = data.trim_ascii_start().strip_prefix(b"{")?.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"type\"")?.trim_ascii_start();
    let rest = rest.strip_prefix(b":")?.trim_ascii_start().strip_prefix(b"\"")?;
    let end = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
    let (value, tail) = rest.split_at(end);
    tail.starts_with(b"\"").then_some(value)
}

/// The message of an event for a call whose client left before it was complete.
pub const CLIENT_DISCONNECTED: &str = "client disconnected before the response completed";

/// How a call ended: when it ended, and why it is incomplete if it is.
/// `completed_ms` is when the response became complete by its protocol (the
/// terminal event passed, or the end of a JSON body), if it did;
/// `code_details` is Envoy's `response.code_details`, read only when needed.
/// A complete call ended when it completed, whoever closed first afterwards.
pub fn ending(completed_ms: Option<u64>, now_ms: u64, code_details: impl FnOnce() -> String) -> (u64, Option<String>) {
    if let Some(at) = completed_ms {
        return (at.min(now_ms), None);
    }
    let details = code_details();
    let why = if details.contains("downstream") {
        CLIENT_DISCONNECTED.to_string()
    } else {
        format!("response did not complete ({})", crate::routes::truncate(&details, 80))
    };
    (now_ms, Some(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where in `stream` the scanner first reports the terminal event, fed in
    /// pieces of `size` bytes: the offset just past the piece that completed it.
    fn found_at(client: Api, stream: &[u8], size: usize) -> Option<usize> {
        let mut s = TerminalScanner::new(client);
        let mut at = None;
        for (i, piece) in stream.chunks(size).enumerate() {
            if s.feed(piece) {
                assert!(at.is_none(), "reported twice");
                at = Some((i * size + piece.len()).min(stream.len()));
            }
        }
        assert_eq!(s.seen(), at.is_some());
        at
    }

    /// The terminal event is reported exactly when its blank line has passed,
    /// however the stream is chunked, and never for the stream without it.
    fn check(client: Api, before: &str, terminal: &str) {
        let whole = format!("{before}{terminal}");
        for size in 1..=whole.len() {
            let at = found_at(client, whole.as_bytes(), size).unwrap_or_else(|| panic!("not found, size {size}"));
            assert!(at >= whole.len() - 1, "too early at {at} of {}, size {size}", whole.len());
            assert_eq!(found_at(client, before.as_bytes(), size), None, "false terminal, size {size}");
            // One event short of the end: everything but the terminal event's blank line.
            let cut = whole.trim_end_matches(['\n', '\r']);
            assert_eq!(found_at(client, cut.as_bytes(), size), None, "before its blank line, size {size}");
        }
    }

    #[test]
    fn chat_ends_at_done() {
        let before = "data: {\"choices\":[{\"delta\":{\"content\":\"data: [DONE]\\n\\n\"}}]}\n\n\
                      : keep-alive\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n";
        check(Api::Chat, before, "data: [DONE]\n\n");
        check(Api::Chat, &before.replace('\n', "\r\n"), "data:[DONE]\r\n\r\n");
        check(Api::Chat, &before.replace('\n', "\r"), "data: [DONE]\r\r");
    }

    #[test]
    fn messages_end_at_message_stop() {
        let before = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n\
                      event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"message_stop\"}}\n\n\
                      event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":3}}\n\n";
        check(Api::Messages, before, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        // Data-only, as some clients and proxies send it, and Bedrock's metrics member after the type.
        let metrics =
            "data: { \"type\" : \"message_stop\",\"amazon-bedrock-invocationMetrics\":{\"inputTokenCount\":2}}\n\n";
        check(Api::Messages, before, metrics);
        check(Api::Messages, before, "event: message\ndata: {\"type\":\"message_stop\"}\n\n");
    }

    #[test]
    fn responses_end_at_completed_incomplete_or_failed() {
        let before = "event: response.created\ndata: {\"type\":\"response.created\"}\n\n\
                      event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"response.completed\"}\n\n";
        for kind in ["response.completed", "response.incomplete", "response.failed"] {
            let long = "x".repeat(5000);
            let terminal =
                format!("event: {kind}\ndata: {{\"type\":\"{kind}\",\"response\":{{\"text\":\"{long}\"}}}}\n\n");
            check(Api::Responses, before, &terminal);
        }
    }

    #[test]
    fn another_formats_terminal_or_an_error_is_not_the_end() {
        let stop = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        assert_eq!(found_at(Api::Chat, stop, 4), None);
        assert_eq!(found_at(Api::Messages, b"data: [DONE]\n\n", 4), None);
        let error = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"message\":\"Overloaded\"}}\n\n";
        assert_eq!(found_at(Api::Messages, error, 7), None);
        // A named event wins over its data's type.
        let named = b"event: ping\ndata: {\"type\":\"message_stop\"}\n\n";
        assert_eq!(found_at(Api::Messages, named, 3), None);
        // An escaped type is not taken apart.
        assert_eq!(json_type(br#"{"type":"message_\"stop"}"#), None);
        assert_eq!(json_type(br#"{"id":1,"type":"message_stop"}"#), None);
    }

    #[test]
    fn long_lines_are_not_held() {
        let mut s = TerminalScanner::new(Api::Chat);
        for _ in 0..1000 {
            assert!(!s.feed(&[b'a'; 1000]));
        }
        assert!(s.line.len() <= LINE_HEAD);
        assert!(!s.feed(b"\n\n"));
        assert!(s.feed(b"data: [DONE]\n\n"));
        assert!(!s.feed(b"data: [DONE]\n\n"), "reported once");
    }

    use crate::pipeline::{ResponsePipeline, ResponsePlan};
    use crate::wire::ProviderWire;

    fn sse(events: &[&str]) -> Vec<Vec<u8>> {
        events.iter().map(|e| e.as_bytes().to_vec()).collect()
    }

    fn chat_events() -> Vec<Vec<u8>> {
        sse(&[
            "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"}}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n",
            "data: [DONE]\n\n",
        ])
    }

    fn anthropic_events() -> Vec<&'static str> {
        vec![
            "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}",
            "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
            "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}",
            "{\"type\":\"content_block_stop\",\"index\":0}",
            "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}",
            "{\"type\":\"message_stop\"}",
        ]
    }

    fn named(data: &str) -> Vec<u8> {
        let kind = json_type(data.as_bytes()).map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
        format!("event: {kind}\ndata: {data}\n\n").into_bytes()
    }

    /// One AWS event-stream `chunk` message carrying an Anthropic event.
    fn bedrock_frame(event: &str) -> Vec<u8> {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b64 = String::new();
        for group in event.as_bytes().chunks(3) {
            let b = [group[0], group.get(1).copied().unwrap_or(0), group.get(2).copied().unwrap_or(0)];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                b64.push(if i <= group.len() { char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]) } else { '=' });
            }
        }
        let payload = format!("{{\"bytes\":\"{b64}\"}}");
        let mut headers = Vec::new();
        for (name, value) in
            [(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")]
        {
            headers.push(name.len() as u8);
            headers.extend_from_slice(name.as_bytes());
            headers.push(7);
            headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
            headers.extend_from_slice(value.as_bytes());
        }
        let total = (16 + headers.len() + payload.len()) as u32;
        let mut out = total.to_be_bytes().to_vec();
        out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        let prelude = crate::bedrock::crc32(&out);
        out.extend_from_slice(&prelude.to_be_bytes());
        out.extend_from_slice(&headers);
        out.extend_from_slice(payload.as_bytes());
        let crc = crate::bedrock::crc32(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    struct Case {
        client: Api,
        provider: ProviderWire,
        strip: bool,
        events: Vec<Vec<u8>>,
    }

    fn cases() -> Vec<Case> {
        let anthropic: Vec<Vec<u8>> = anthropic_events().into_iter().map(named).collect();
        let bedrock: Vec<Vec<u8>> = anthropic_events().into_iter().map(bedrock_frame).collect();
        let responses = ["{\"type\":\"response.created\",\"response\":{\"status\":\"in_progress\"}}",
            "{\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}",
            "{\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-4o\",\"usage\":{\"input_tokens\":7,\"output_tokens\":3}}}"];
        let case =
            |client, provider, strip, events: &Vec<Vec<u8>>| Case { client, provider, strip, events: events.clone() };
        use Api::*;
        vec![
            case(Chat, ProviderWire::OpenAiChat, false, &chat_events()),
            case(Chat, ProviderWire::OpenAiChat, true, &chat_events()),
            case(Chat, ProviderWire::GeminiChat, true, &chat_events()),
            case(Chat, ProviderWire::Anthropic, false, &anthropic),
            case(Chat, ProviderWire::Bedrock, false, &bedrock),
            case(Messages, ProviderWire::Anthropic, false, &anthropic),
            case(Messages, ProviderWire::Bedrock, false, &bedrock),
            case(Messages, ProviderWire::OpenAiChat, false, &chat_events()),
            case(Messages, ProviderWire::GeminiChat, false, &chat_events()),
            case(Responses, ProviderWire::OpenAiResponses, false, &responses.map(named).to_vec()),
            case(Responses, ProviderWire::Anthropic, false, &anthropic),
            case(Responses, ProviderWire::Bedrock, false, &bedrock),
            case(Responses, ProviderWire::GeminiChat, false, &chat_events()),
        ]
    }

    fn pipeline(c: &Case) -> ResponsePipeline {
        let plan = ResponsePlan {
            client: c.client,
            provider: c.provider,
            requested_model: "m".into(),
            client_wants_usage: !c.strip,
            strip_usage_chunk: c.strip,
            responses: (c.client == Api::Responses && c.provider.api() != Api::Responses).then(|| {
                crate::translate::ResponsesContext {
                    echo: String::new(),
                    custom_tools: Vec::new(),
                    namespaced: Vec::new(),
                }
            }),
            keep_output_text: true,
        };
        let ct = if c.provider == ProviderWire::Bedrock {
            "application/vnd.amazon.eventstream"
        } else {
            "text/event-stream"
        };
        ResponsePipeline::start(plan, 200, Some(ct), None, 0)
    }

    /// Every client format on every provider, translated or not, usage chunk
    /// stripped or not: the call completes with the chunk that gives the
    /// client its terminal event, before any end of stream, and not a chunk
    /// earlier; without that chunk it never completes, even at the end of stream.
    #[test]
    fn every_route_completes_with_the_clients_terminal_event() {
        for c in cases() {
            let what = format!("{:?} <- {:?} strip={}", c.client, c.provider, c.strip);
            let mut p = pipeline(&c);
            let mut client = Vec::new();
            let mut completed = Vec::new();
            for (i, event) in c.events.iter().enumerate() {
                let fed = p.feed(event, false);
                client.extend(fed.replace.unwrap_or_else(|| event.clone()));
                if fed.terminal {
                    completed.push(i);
                }
            }
            assert_eq!(completed, [c.events.len() - 1], "{what}: {}", String::from_utf8_lossy(&client));
            assert!(!p.feed(b"", true).terminal, "{what}: reported again at the end");
            let usage = p.finish().usage.unwrap_or_else(|| panic!("{what}: no usage"));
            assert_eq!((usage.input_tokens, usage.output_tokens), (7, 3), "{what}");

            // The client leaves one event before the end: not complete.
            let mut p = pipeline(&c);
            let (last, head) = c.events.split_last().unwrap();
            assert!(!last.is_empty());
            for event in head {
                assert!(!p.feed(event, false).terminal, "{what}");
            }
            // The Chat-to-Messages translator completes a stream without `[DONE]` (some
            // compatible endpoints omit it) once a finish_reason came; the Responses
            // translators end a cut stream with `response.failed`, a terminal event; the
            // rest end such a stream with an error event.
            let completes_at_end = (c.client == Api::Messages && c.provider.api() == Api::Chat)
                || (c.client == Api::Responses && c.provider.api() != Api::Responses);
            assert_eq!(
                p.feed(b"", true).terminal,
                completes_at_end,
                "{what}: the end of a stream without its terminal event"
            );
        }
    }

    #[test]
    fn ending_in_every_order() {
        let disconnected = || "downstream_remote_disconnect".to_string();
        // Terminal event passed, then the client closed (the provider never ended):
        // complete, ended when it completed.
        assert_eq!(ending(Some(1_500), 2_000, disconnected), (1_500, None));
        // Terminal event passed, the provider ended, then the client closed.
        assert_eq!(ending(Some(1_500), 1_501, || unreachable!("not read")), (1_500, None));
        // The client left one event before the end.
        assert_eq!(ending(None, 2_000, disconnected), (2_000, Some(CLIENT_DISCONNECTED.to_string())));
        // The provider cut the stream.
        let (_, why) = ending(None, 2_000, || "upstream_reset_after_response_started{remote_reset}".into());
        assert_eq!(
            why.as_deref(),
            Some("response did not complete (upstream_reset_after_response_started{remote_reset})")
        );
    }
}
