//! Translator tests on payloads shaped like PROTOCOLS.md A and C, and helpers
//! that read a translated stream back the way each SDK does.

mod chat_request;
mod messages_request;
mod responses;
mod round_trips;
mod streams_to_chat;
mod streams_to_messages;

use serde_json::{json, Map, Value};

use crate::wire::stream::Transform;
use crate::wire::SseParser;

pub(super) fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

/// Translates `input` whole, split at every byte offset and one byte at a
/// time; all must give the same bytes. Returns them.
pub(super) fn every_split<T: Transform>(make: impl Fn() -> T, input: &[u8]) -> Vec<u8> {
    let mut t = make();
    let mut whole = t.feed(input);
    whole.extend(t.finish());
    for cut in 0..=input.len() {
        let (a, b) = input.split_at(cut);
        let mut t = make();
        let mut out = t.feed(a);
        out.extend(t.feed(b));
        out.extend(t.finish());
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&whole), "split at {cut}");
    }
    let mut t = make();
    let mut out = Vec::new();
    for byte in input {
        out.extend(t.feed(std::slice::from_ref(byte)));
    }
    out.extend(t.finish());
    assert_eq!(out, whole, "one byte at a time");
    whole
}

fn sse_events(sse: &[u8]) -> Vec<(Option<String>, String)> {
    let mut p = SseParser::default();
    let mut events = p.feed(sse);
    events.extend(p.finish());
    events.into_iter().map(|e| (e.event, e.data)).collect()
}

/// Reads an OpenAI chunk stream as the SDK's stream accumulator does.
pub(super) fn collect_chat(sse: &[u8]) -> Value {
    let mut content: Option<String> = None;
    let mut role = Value::Null;
    let mut tools: Vec<Value> = Vec::new();
    let mut finish = Value::Null;
    let mut usage = Value::Null;
    let mut error = Value::Null;
    let mut done = false;
    let mut ids = std::collections::BTreeSet::new();
    for (event, data) in sse_events(sse) {
        assert_eq!(event, None, "OpenAI streams have unnamed events");
        assert!(!done, "nothing may follow [DONE]");
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(&data).unwrap();
        if chunk.get("error").is_some() {
            error = chunk["error"].clone();
            continue;
        }
        assert_eq!(chunk["object"], "chat.completion.chunk");
        ids.insert(chunk["id"].as_str().unwrap().to_owned());
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
        for choice in chunk["choices"].as_array().unwrap() {
            let delta = &choice["delta"];
            if let Some(r) = delta.get("role") {
                role = r.clone();
            }
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                content.get_or_insert_with(String::new).push_str(text);
            }
            for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                let i = call["index"].as_u64().unwrap() as usize;
                if tools.len() <= i {
                    tools.resize(i + 1, json!({"id": null, "type": null, "function": {"name": "", "arguments": ""}}));
                }
                let t = &mut tools[i];
                for key in ["id", "type"] {
                    if let Some(v) = call.get(key) {
                        t[key] = v.clone();
                    }
                }
                if let Some(name) = call["function"].get("name").and_then(Value::as_str) {
                    t["function"]["name"] = json!(format!("{}{name}", t["function"]["name"].as_str().unwrap()));
                }
                if let Some(args) = call["function"].get("arguments").and_then(Value::as_str) {
                    t["function"]["arguments"] =
                        json!(format!("{}{args}", t["function"]["arguments"].as_str().unwrap()));
                }
            }
            if !choice["finish_reason"].is_null() {
                finish = choice["finish_reason"].clone();
            }
        }
    }
    assert!(ids.len() <= 1, "every chunk has the same id");
    json!({"role": role, "content": content, "tool_calls": tools, "finish_reason": finish, "usage": usage,
           "error": error, "done": done})
}

/// Reads an Anthropic event stream as the SDK's message accumulator does.
pub(super) fn collect_anthropic(sse: &[u8]) -> Value {
    let mut message = Value::Null;
    let mut partial: Vec<String> = Vec::new();
    let mut error = Value::Null;
    let mut done = false;
    for (event, data) in sse_events(sse) {
        assert!(!done, "nothing may follow message_stop");
        let e: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(event.as_deref(), e["type"].as_str(), "event name matches data type");
        match e["type"].as_str().unwrap() {
            "message_start" => message = e["message"].clone(),
            "content_block_start" => {
                let index = e["index"].as_u64().unwrap() as usize;
                let blocks = message["content"].as_array_mut().unwrap();
                assert_eq!(blocks.len(), index, "blocks are numbered in order");
                blocks.push(e["content_block"].clone());
                partial.push(String::new());
            }
            "content_block_delta" => {
                let index = e["index"].as_u64().unwrap() as usize;
                let block = &mut message["content"][index];
                match e["delta"]["type"].as_str().unwrap() {
                    "text_delta" => {
                        let text =
                            format!("{}{}", block["text"].as_str().unwrap(), e["delta"]["text"].as_str().unwrap());
                        block["text"] = json!(text);
                    }
                    "input_json_delta" => partial[index].push_str(e["delta"]["partial_json"].as_str().unwrap()),
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let index = e["index"].as_u64().unwrap() as usize;
                let block = &mut message["content"][index];
                if block["type"] == "tool_use" && !partial[index].is_empty() {
                    block["input"] = serde_json::from_str(&partial[index]).unwrap();
                }
            }
            "message_delta" => {
                message["stop_reason"] = e["delta"]["stop_reason"].clone();
                message["stop_sequence"] = e["delta"]["stop_sequence"].clone();
                let usage: &Map<String, Value> = e["usage"].as_object().unwrap();
                for (k, v) in usage {
                    message["usage"][k] = v.clone();
                }
            }
            "message_stop" => done = true,
            "error" => error = e["error"].clone(),
            "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    json!({"message": message, "error": error, "done": done})
}
