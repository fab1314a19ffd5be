//! Bedrock InvokeModelWithResponseStream → Anthropic SSE.
//!
//! An event message (`:message-type: event`, `:event-type: chunk`) carries
//! `{"bytes": "<base64>"}` whose decoded bytes are one Anthropic streaming
//! event (`message_start`, `content_block_delta`, …, with Bedrock's
//! `amazon-bedrock-invocationMetrics` added to `message_stop`); it becomes
//! `event: <type>\ndata: <json>\n\n`. An exception (`:message-type:
//! exception`, named by `:exception-type`, text in the payload's `message`)
//! or an error message (`:message-type: error`, `:error-code`,
//! `:error-message`) becomes an Anthropic `event: error`, and so does a
//! framing error or a stream cut inside a message; nothing follows an error.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::base64;
use super::error::{anthropic_error_json, exception_error_type};
use super::event_stream::{EventStreamDecoder, Message};
use crate::wire::stream::Transform;

/// What one event-stream message means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BedrockEvent {
    /// The JSON text of one Anthropic streaming event.
    Anthropic(String),
    /// An exception or error, with its Anthropic error type.
    Error { kind: &'static str, message: String },
    /// Anything else (unknown event types), skipped.
    Ignored,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    bytes: &'a str,
}

#[derive(Deserialize)]
struct ExceptionBody {
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

/// Reads one decoded message.
pub fn classify(message: &Message) -> BedrockEvent {
    match message.header_str(":message-type").unwrap_or("event") {
        "event" => match message.header_str(":event-type") {
            Some("chunk") => chunk_event(&message.payload),
            _ => BedrockEvent::Ignored,
        },
        "exception" => {
            let name = message.header_str(":exception-type").unwrap_or("exception");
            let text = serde_json::from_slice::<ExceptionBody>(&message.payload).ok().and_then(|b| b.message);
            BedrockEvent::Error {
                kind: exception_error_type(name).unwrap_or("api_error"),
                message: text.unwrap_or_else(|| format!("Bedrock {name}")),
            }
        }
        "error" => {
            let code = message.header_str(":error-code").unwrap_or("error");
            let text = message.header_str(":error-message").unwrap_or_default();
            BedrockEvent::Error {
                kind: exception_error_type(code).unwrap_or("api_error"),
                message: if text.is_empty() { format!("Bedrock {code}") } else { text.to_owned() },
            }
        }
        _ => BedrockEvent::Ignored,
    }
}

fn chunk_event(payload: &[u8]) -> BedrockEvent {
    let bad = |what: &str| BedrockEvent::Error { kind: "api_error", message: format!("Bedrock sent a chunk {what}") };
    let Ok(chunk) = serde_json::from_slice::<Chunk>(payload) else {
        return bad("without base64 `bytes`");
    };
    let Some(bytes) = base64::decode(chunk.bytes.as_bytes()) else {
        return bad("whose `bytes` are not base64");
    };
    match String::from_utf8(bytes) {
        Ok(json) => BedrockEvent::Anthropic(json),
        Err(_) => bad("that is not UTF-8"),
    }
}

#[derive(Deserialize)]
struct EventType<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// Turns Bedrock's event stream into Anthropic SSE text, incrementally.
#[derive(Debug, Default)]
pub struct BedrockToSse {
    decoder: EventStreamDecoder,
    /// An error was emitted; later input is ignored.
    done: bool,
}

impl Transform for BedrockToSse {
    /// Translates the next bytes of the provider's stream; returns the complete SSE events.
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        for decoded in self.decoder.feed(chunk) {
            let event = match decoded {
                Ok(message) => classify(&message),
                // A lost message could be any part of the answer; stop rather than emit a gap.
                Err(e) => BedrockEvent::Error { kind: "api_error", message: format!("Bedrock stream: {e}") },
            };
            self.emit(event, &mut out);
            if self.done {
                break;
            }
        }
        out
    }

    /// Ends the stream: an error event if it stopped inside a message.
    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(e) = self.decoder.finish() {
            if !self.done {
                self.emit(BedrockEvent::Error { kind: "api_error", message: format!("Bedrock stream: {e}") }, &mut out);
            }
        }
        self.done = true;
        out
    }
}

impl BedrockToSse {
    pub fn new() -> Self {
        Self::default()
    }

    fn emit(&mut self, event: BedrockEvent, out: &mut Vec<u8>) {
        match event {
            BedrockEvent::Anthropic(json) => {
                let Ok(raw) = serde_json::from_str::<&RawValue>(&json) else {
                    return self.emit(
                        BedrockEvent::Error {
                            kind: "api_error",
                            message: "Bedrock sent a chunk that is not JSON".into(),
                        },
                        out,
                    );
                };
                let kind =
                    serde_json::from_str::<EventType>(raw.get()).map(|t| t.kind.into_owned()).unwrap_or_default();
                // SSE data must be one line; JSON whitespace may hold newlines, so re-serialise then.
                let data = if raw.get().contains(['\n', '\r']) {
                    serde_json::from_str::<serde_json::Value>(raw.get()).map(|v| v.to_string()).unwrap_or_default()
                } else {
                    raw.get().to_owned()
                };
                // The type becomes the `event:` line: a control character in it would split the line.
                let named = !kind.is_empty() && !kind.chars().any(char::is_control);
                push(out, if named { &kind } else { "message" }, &data);
            }
            BedrockEvent::Error { kind, message } => {
                push(out, "error", &anthropic_error_json(kind, &message));
                self.done = true;
            }
            BedrockEvent::Ignored => {}
        }
    }
}

fn push(out: &mut Vec<u8>, event: &str, data: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_type_with_a_line_break_cannot_inject_an_event() {
        let payload = r#"{"type":"ping\nevent: error\ndata: {}"}"#;
        let mut sse = Vec::new();
        let event = super::BedrockEvent::Anthropic(payload.to_string());
        super::BedrockToSse::new().emit(event, &mut sse);
        let text = String::from_utf8(sse).unwrap();
        assert!(text.starts_with("event: message\ndata: "), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("event:")).count(), 1, "{text}");
    }

    use super::*;
    use crate::bedrock::event_stream::{encode, string_header};
    use crate::wire::SseParser;

    fn chunk_frame(anthropic_event: &str) -> Vec<u8> {
        let payload = format!(r#"{{"bytes":"{}","p":"abcdefghij"}}"#, base64::encode(anthropic_event.as_bytes()));
        encode(
            &[
                string_header(":event-type", "chunk"),
                string_header(":content-type", "application/json"),
                string_header(":message-type", "event"),
            ],
            payload.as_bytes(),
        )
    }

    fn exception_frame(name: &str, message: &str) -> Vec<u8> {
        encode(
            &[
                string_header(":exception-type", name),
                string_header(":content-type", "application/json"),
                string_header(":message-type", "exception"),
            ],
            format!(r#"{{"message":"{message}"}}"#).as_bytes(),
        )
    }

    const EVENTS: [&str; 7] = [
        r#"{"type":"message_start","message":{"id":"msg_bdrk_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_read_input_tokens":0,"cache_creation_input_tokens":0,"output_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello é"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
        "{\"type\":\"message_stop\",\n\"amazon-bedrock-invocationMetrics\":{\"inputTokenCount\":25,\"outputTokenCount\":15,\"invocationLatency\":500,\"firstByteLatency\":200}}",
        r#"{"type":"ping"}"#,
    ];

    fn translate_all(input: &[u8]) -> Vec<u8> {
        let mut t = BedrockToSse::new();
        let mut out = t.feed(input);
        out.extend(t.finish());
        out
    }

    fn assert_split_invariant(input: &[u8]) -> Vec<u8> {
        let whole = translate_all(input);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            let mut t = BedrockToSse::new();
            let mut out = t.feed(a);
            out.extend(t.feed(b));
            out.extend(t.finish());
            assert_eq!(out, whole, "split at {cut}");
        }
        let mut t = BedrockToSse::new();
        let mut out = Vec::new();
        for byte in input {
            out.extend(t.feed(std::slice::from_ref(byte)));
        }
        out.extend(t.finish());
        assert_eq!(out, whole, "one byte at a time");
        whole
    }

    #[test]
    fn chunks_become_anthropic_sse() {
        let stream: Vec<u8> = EVENTS.iter().flat_map(|e| chunk_frame(e)).collect();
        let out = assert_split_invariant(&stream);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("event: message_start\ndata: {\"type\":\"message_start\""));
        // The SSE reader the gateway uses sees the Anthropic events, in order and whole.
        let mut parser = SseParser::default();
        let mut events = parser.feed(&out);
        events.extend(parser.finish());
        assert_eq!(events.len(), EVENTS.len());
        for (event, original) in events.iter().zip(EVENTS) {
            let expected: serde_json::Value = serde_json::from_str(original).unwrap();
            let got: serde_json::Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(got, expected);
            assert_eq!(event.event.as_deref(), expected["type"].as_str());
        }
    }

    #[test]
    fn exception_becomes_error_event_and_ends_the_stream() {
        let mut stream = chunk_frame(EVENTS[0]);
        stream.extend(exception_frame("throttlingException", "Too many tokens, please wait before trying again."));
        stream.extend(chunk_frame(EVENTS[1]));
        let text = String::from_utf8(assert_split_invariant(&stream)).unwrap();
        let expected_error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"Too many tokens, please wait before trying again.\"}}\n\n";
        assert!(text.ends_with(expected_error), "{text}");
        assert_eq!(text.matches("event: ").count(), 2);
    }

    #[test]
    fn error_message_type() {
        let frame = encode(
            &[
                string_header(":message-type", "error"),
                string_header(":error-code", "InternalServerException"),
                string_header(":error-message", "boom"),
            ],
            b"",
        );
        let mut t = BedrockToSse::new();
        let text = String::from_utf8(t.feed(&frame)).unwrap();
        assert!(text.contains(r#""type":"api_error""#) && text.contains(r#""message":"boom""#), "{text}");
    }

    #[test]
    fn corrupt_frame_and_truncation_are_errors() {
        let mut stream = chunk_frame(EVENTS[1]);
        let last = stream.len() - 1;
        stream[last] ^= 1;
        let text = String::from_utf8(translate_all(&stream)).unwrap();
        assert!(text.starts_with("event: error\n") && text.contains("CRC"), "{text}");

        let stream = chunk_frame(EVENTS[1]);
        let text = String::from_utf8(translate_all(&stream[..stream.len() - 3])).unwrap();
        assert!(text.starts_with("event: error\n") && text.contains("ended inside a message"), "{text}");
    }

    #[test]
    fn bad_chunk_payloads() {
        let frame = |payload: &[u8]| {
            encode(&[string_header(":event-type", "chunk"), string_header(":message-type", "event")], payload)
        };
        assert!(matches!(classify(&Message { headers: vec![], payload: vec![] }), BedrockEvent::Ignored));
        for payload in [&b"{}"[..], br#"{"bytes":"!!"}"#, b"not json"] {
            let text = String::from_utf8(translate_all(&frame(payload))).unwrap();
            assert!(text.starts_with("event: error\n"), "{text}");
        }
        let not_json = format!(r#"{{"bytes":"{}"}}"#, base64::encode(b"not json"));
        let text = String::from_utf8(translate_all(&frame(not_json.as_bytes()))).unwrap();
        assert!(text.contains("not JSON"), "{text}");
    }

    #[test]
    fn unknown_event_types_are_skipped() {
        let frame =
            encode(&[string_header(":event-type", "somethingNew"), string_header(":message-type", "event")], b"{}");
        assert!(translate_all(&frame).is_empty());
    }
}
