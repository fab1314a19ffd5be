//! The benchmark's upstream: a mock provider with a fixed, known service time
//! and a capture sink that accepts and discards batches, at once or after a
//! set delay.
//!
//! Both reuse the e2e harness's HTTP/1.1 server (`llm_gateway_e2e::http1`:
//! keep-alive, TCP_NODELAY, a whole response in one write). The e2e
//! `MockProvider` itself is not used: it keeps a copy of every request (a
//! 256 KB body per request grows without bound under load) and parses each
//! body into a `serde_json::Value`, so its service time would grow with the
//! body size. This mock answers every POST with one precomputed response,
//! chosen by a substring search for `"stream":true` (and `include_usage`):
//! Chat Completions JSON or SSE, or Anthropic Messages on paths ending in
//! `/messages`. Its service time is `--service-us` (default 0: it answers as
//! soon as the request is read); streams send `--chunks` content events
//! `--chunk-gap-us` apart (default 8 events, 1 ms).

use crate::Args;
use llm_gateway_e2e::http1::{Request, Responder, Server};
use serde_json::{json, Value};
use std::io::Write;
use std::thread;
use std::time::Duration;

const CREATED: u64 = 1_741_569_952;
const MODEL: &str = "gpt-4o-mini";

fn usage() -> Value {
    json!({"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
           "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}})
}

fn chat_json() -> Vec<u8> {
    json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": CREATED, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the bench mock.",
                     "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
        "usage": usage(), "system_fingerprint": "fp_bench",
    })
    .to_string()
    .into_bytes()
}

/// SSE writes: a role chunk, `parts` content chunks, a finish chunk, then the
/// usage chunk when asked for (`include_usage`) with `[DONE]`.
fn chat_stream(parts: usize, include_usage: bool) -> Vec<Vec<u8>> {
    let chunk = |choices: Value| {
        let mut c = json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": CREATED,
                           "model": MODEL, "system_fingerprint": "fp_bench", "choices": choices});
        if include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let choice = |delta: Value, finish: Value| chunk(json!([{"index": 0, "delta": delta, "finish_reason": finish}]));
    let mut events = vec![choice(json!({"role": "assistant", "content": ""}), Value::Null)];
    events.extend((0..parts).map(|i| choice(json!({"content": format!("token{i} ")}), Value::Null)));
    events.push(choice(json!({}), json!("stop")));
    let mut out: Vec<Vec<u8>> = events.iter().map(|e| format!("data: {e}\n\n").into_bytes()).collect();
    // The usage chunk shares the last write with `[DONE]`, so asking for usage adds
    // no chunk gap and streams with and without it take equally long.
    let mut last = Vec::new();
    if include_usage {
        let mut usage_chunk = chunk(json!([]));
        usage_chunk["usage"] = usage();
        last.extend(format!("data: {usage_chunk}\n\n").into_bytes());
    }
    last.extend(b"data: [DONE]\n\n");
    out.push(last);
    out
}

/// Whether the JSON body sets `key` to `true` (compact or with one space).
fn flag(body: &str, key: &str) -> bool {
    body.contains(&format!("\"{key}\":true")) || body.contains(&format!("\"{key}\": true"))
}

/// Anthropic Messages, for scenarios on `/v1/messages` (e.g. Save Mode).
fn messages_json() -> Vec<u8> {
    json!({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "Hello from the bench mock."}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens": 15},
    })
    .to_string()
    .into_bytes()
}

fn messages_stream(parts: usize) -> Vec<Vec<u8>> {
    let mut events = vec![
        json!({"type": "message_start", "message": {"id": "msg_bench", "type": "message", "role": "assistant",
               "content": [], "model": "claude-sonnet-4-6", "stop_reason": null, "stop_sequence": null,
               "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                         "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ];
    events.extend((0..parts).map(|i| {
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": format!("token{i} ")}})
    }));
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                       "usage": {"output_tokens": 15}}));
    events.push(json!({"type": "message_stop"}));
    events.iter().map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")).into_bytes()).collect()
}

struct Mock {
    json: Vec<u8>,
    stream: Vec<Vec<u8>>,
    stream_usage: Vec<Vec<u8>>,
    messages_json: Vec<u8>,
    messages_stream: Vec<Vec<u8>>,
    gap: Duration,
    service: Duration,
}

impl Mock {
    fn handle(&self, req: Request, res: &mut Responder) {
        if !self.service.is_zero() {
            thread::sleep(self.service);
        }
        if req.method != "POST" {
            let _ = res.send(200, &[("content-type", "text/plain")], b"ok");
            return;
        }
        let body = std::str::from_utf8(&req.body).unwrap_or_default();
        let messages = req.route().ends_with("/messages");
        if !flag(body, "stream") {
            let json = if messages { &self.messages_json } else { &self.json };
            let _ = res.send(200, &[("content-type", "application/json")], json);
            return;
        }
        let events = if messages {
            &self.messages_stream
        } else if flag(body, "include_usage") {
            &self.stream_usage
        } else {
            &self.stream
        };
        let Ok(mut out) = res.start_chunked(200, &[("content-type", "text/event-stream")]) else { return };
        out.set_gap(self.gap);
        for event in events {
            if out.chunk(event).is_err() {
                return;
            }
        }
        let _ = out.finish();
    }
}

fn serve(port: u16, handler: impl Fn(Request, &mut Responder) + Send + Sync + 'static) -> Result<(), String> {
    crate::tight_timer_slack();
    let server = Server::start_on(port, handler).map_err(|e| format!("cannot listen: {e}"))?;
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening {}", server.port());
    let _ = stdout.flush();
    loop {
        thread::park();
    }
}

pub fn mock_main(args: &[String]) -> Result<(), String> {
    let a = Args::parse(args, &[])?;
    a.only(&["--port", "--chunks", "--chunk-gap-us", "--service-us"])?;
    let parts = a.get("--chunks", 8usize)?;
    let mock = Mock {
        json: chat_json(),
        stream: chat_stream(parts, false),
        stream_usage: chat_stream(parts, true),
        messages_json: messages_json(),
        messages_stream: messages_stream(parts),
        gap: Duration::from_micros(a.get("--chunk-gap-us", 1000)?),
        service: Duration::from_micros(a.get("--service-us", 0)?),
    };
    serve(a.get("--port", 0)?, move |req, res| mock.handle(req, res))
}

/// `--delay-ms` holds each answer that long, like a PostHog one round trip
/// away; each connection is served on its own thread, so batches sent at once
/// are held at once.
pub fn sink_main(args: &[String]) -> Result<(), String> {
    let a = Args::parse(args, &[])?;
    a.only(&["--port", "--delay-ms"])?;
    let delay = Duration::from_millis(a.get("--delay-ms", 0)?);
    serve(a.get("--port", 0)?, move |_req, res| {
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        let _ = res.send(200, &[("content-type", "application/json")], br#"{"status":"Ok"}"#);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_valid() {
        let v: Value = serde_json::from_slice(&chat_json()).unwrap();
        assert_eq!(v["usage"]["prompt_tokens"], 19);
        let events = chat_stream(3, true);
        assert_eq!(events.len(), chat_stream(3, false).len());
        let text: String = events.iter().map(|e| std::str::from_utf8(e).unwrap()).collect();
        let data: Vec<&str> = text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect();
        assert_eq!(data.len(), 1 + 3 + 1 + 1 + 1);
        for d in &data[..data.len() - 1] {
            let _: Value = serde_json::from_str(d).unwrap();
        }
        assert_eq!(data[data.len() - 1], "[DONE]");
        assert_eq!(serde_json::from_str::<Value>(data[data.len() - 2]).unwrap()["usage"]["completion_tokens"], 10);
        assert!(flag(r#"{"a":1,"stream":true}"#, "stream"));
        assert!(flag(r#"{"stream_options": {"include_usage": true}}"#, "include_usage"));
        assert!(!flag(r#"{"stream":false}"#, "stream"));
    }
}
