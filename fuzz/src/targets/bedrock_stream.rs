//! Bedrock's event stream (`bedrock::BedrockToSse`, over `EventStreamDecoder`).
//!
//! Raw bytes: the SSE it emits does not depend on chunking; it is made of
//! `event:`, `data:` and blank lines only (no CR: nothing from the provider
//! can inject a line); every event is `event: <type>` + one `data:` line of
//! JSON; an `error` event, if any, is the last one.
//!
//! Round trip: the input is read as an Anthropic SSE stream; each event whose
//! data is a JSON value is framed as Bedrock would send it (`:event-type:
//! chunk`, payload `{"bytes": base64(json)}`, CRCs computed), and the frames,
//! cut anywhere, must come back as the same events, each named by its JSON
//! `type` (`message` when it has none).
use llm_gateway::bedrock::{crc32, BedrockToSse};
use llm_gateway::wire::stream::Transform;
use llm_gateway::wire::{SseEvent, SseParser};
use serde_json::value::RawValue;

use crate::{pieces, Rng};

fn translate(chunks: &[&[u8]]) -> Vec<u8> {
    let mut t = BedrockToSse::new();
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(t.feed(chunk));
    }
    out.extend(t.finish());
    out
}

fn events(sse: &[u8]) -> Vec<SseEvent> {
    let mut p = SseParser::default();
    let mut out = p.feed(sse);
    out.extend(p.finish());
    out
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in input.chunks(3) {
        let b = [group[0], *group.get(1).unwrap_or(&0), *group.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One event-stream message with string headers (AWS's vnd.amazon.eventstream framing).
fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = (12 + h.len() + payload.len() + 4) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Well-formed SSE text: `event:`/`data:` lines and blank lines, LF only.
fn check_lines(sse: &[u8]) {
    assert!(!sse.contains(&b'\r'), "CR in the SSE output: {:?}", String::from_utf8_lossy(sse));
    for line in sse.split(|b| *b == b'\n') {
        assert!(
            line.is_empty() || line.starts_with(b"event: ") || line.starts_with(b"data: "),
            "stray SSE line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

pub fn run(data: &[u8]) {
    let mut rng = Rng::new(data);
    let whole = translate(&[data]);
    for max_cuts in [4, 64] {
        assert_eq!(translate(&pieces(data, &mut rng, max_cuts)), whole, "SSE depends on chunking");
    }
    check_lines(&whole);
    let out = events(&whole);
    for (i, e) in out.iter().enumerate() {
        let Some(kind) = &e.event else { panic!("event without a type: {e:?}") };
        assert!(!e.data.contains('\n'), "multi-line data: {e:?}");
        assert!(serde_json::from_str::<&RawValue>(&e.data).is_ok(), "data is not JSON: {e:?}");
        if kind == "error" {
            assert_eq!(i + 1, out.len(), "events after an error");
        }
    }

    // Round trip through real frames.
    let mut frames = Vec::new();
    let mut expected = Vec::new();
    for e in events(data) {
        let Ok(raw) = serde_json::from_str::<&RawValue>(&e.data) else { continue };
        if raw.get() != e.data || e.data.contains(['\n', '\r']) {
            continue;
        }
        #[derive(serde::Deserialize)]
        struct Typed<'a> {
            #[serde(rename = "type", borrow)]
            kind: std::borrow::Cow<'a, str>,
        }
        let kind = serde_json::from_str::<Typed>(&e.data).map(|t| t.kind.into_owned()).unwrap_or_default();
        let kind = if kind.is_empty() { "message".to_string() } else { kind };
        let payload = format!(r#"{{"bytes":"{}","p":"abc"}}"#, base64(e.data.as_bytes()));
        frames.extend(frame(
            &[(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")],
            payload.as_bytes(),
        ));
        expected.push(SseEvent { event: Some(kind), data: e.data });
    }
    let sse = translate(&pieces(&frames, &mut rng, 16));
    check_lines(&sse);
    let back = events(&sse);
    let data_back: Vec<&str> = back.iter().map(|e| e.data.as_str()).collect();
    let data_sent: Vec<&str> = expected.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data_back, data_sent, "Bedrock frames did not come back as the events they carried");
    for (got, sent) in back.iter().zip(&expected) {
        let name = got.event.as_deref().unwrap_or_default();
        assert!(!name.is_empty() && !name.contains(['\r', '\n']), "bad event name {name:?}");
        // A `type` with control characters may be cleaned or replaced; any other is kept as it is.
        if let Some(kind) = sent.event.as_deref().filter(|k| !k.chars().any(char::is_control)) {
            assert_eq!(name, kind, "event named otherwise than its type");
        }
    }
}
