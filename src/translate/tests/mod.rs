//! Translator tests on payloads shaped like docs/protocols/openai-chat.md and anthropic-messages.md, and helpers
//! that read a translated stream back the way each SDK does.

mod agents;
mod chat_request;
mod messages_request;
mod responses;
mod responses_request;
mod responses_streams;
mod round_trips;
mod streams_to_chat;
mod streams_to_messages;

use serde_json::{json, Map, Value};

use crate::providers::Provider;
use crate::translate::Target;
use crate::wire::stream::Transform;
use crate::wire::SseParser;

/// An Anthropic model as a translation target.
pub(super) fn claude(model: &'static str) -> Target<'static> {
    Target::new(Provider::Anthropic, model)
}

/// An OpenAI model as a translation target.
pub(super) fn openai(model: &'static str) -> Target<'static> {
    Target::new(Provider::OpenAi, model)
}

/// A Gemini model as a translation target.
pub(super) fn gemini(model: &'static str) -> Target<'static> {
    Target::new(Provider::Gemini, model)
}

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

/// Reads a Responses event stream as the SDK's accumulator and Codex do,
/// checking the event order they rely on. Returns the final `response` (from
/// `response.completed`, `.incomplete` or `.failed`) with `output` replaced by
/// the items accumulated from the events, which must equal it.
pub(super) fn collect_responses(sse: &[u8]) -> Value {
    let mut output: Vec<Value> = Vec::new();
    let mut open: Option<usize> = None;
    let mut last: Option<Value> = None;
    let mut error_event = Value::Null;
    for (i, (event, data)) in sse_events(sse).into_iter().enumerate() {
        assert!(last.is_none(), "nothing may follow the final event: {data}");
        let e: Value = serde_json::from_str(&data).unwrap();
        let kind = e["type"].as_str().unwrap().to_owned();
        assert_eq!(event.as_deref(), Some(kind.as_str()), "event name matches data type");
        assert_eq!(e["sequence_number"], i, "sequence numbers count from 0: {data}");
        match (i, kind.as_str()) {
            (0, k) => assert_eq!(k, "response.created"),
            (1, k) => assert_eq!(k, "response.in_progress"),
            _ => {}
        }
        let index = e["output_index"].as_u64().map(|n| n as usize);
        match kind.as_str() {
            "response.created" | "response.in_progress" => {
                assert_eq!(e["response"]["status"], "in_progress");
                assert_eq!(e["response"]["output"], json!([]));
            }
            "response.output_item.added" => {
                assert_eq!(open, None, "an item is added while another is open");
                assert_eq!(index, Some(output.len()), "items are numbered in order");
                assert_eq!(e["item"]["status"].as_str().unwrap_or("in_progress"), "in_progress");
                output.push(e["item"].clone());
                open = index;
            }
            "response.output_item.done" => {
                assert_eq!(index, open, "done for the open item");
                let item = &mut output[index.unwrap()];
                assert_eq!(item["id"], e["item"]["id"]);
                assert_eq!(item["type"], e["item"]["type"]);
                match item["type"].as_str().unwrap() {
                    "message" => assert_eq!(item["content"], e["item"]["content"], "accumulated text"),
                    "function_call" => assert_eq!(item["arguments"], e["item"]["arguments"], "accumulated arguments"),
                    "custom_tool_call" => assert_eq!(item["input"], e["item"]["input"], "accumulated input"),
                    "reasoning" => {
                        let summary = item["summary"].as_array().cloned().unwrap_or_default();
                        assert_eq!(json!(summary), e["item"]["summary"], "accumulated summary");
                    }
                    other => panic!("unexpected item {other}"),
                }
                *item = e["item"].clone();
                open = None;
            }
            "response.content_part.added" => {
                let item = &mut output[index.unwrap()];
                assert_eq!((index, item["type"].as_str()), (open, Some("message")));
                assert_eq!(e["content_index"], item["content"].as_array().unwrap().len());
                item["content"].as_array_mut().unwrap().push(e["part"].clone());
            }
            "response.output_text.delta" => {
                let item = &mut output[index.unwrap()];
                assert_eq!((index, e["item_id"].clone()), (open, item["id"].clone()));
                let part = &mut item["content"][e["content_index"].as_u64().unwrap() as usize];
                assert_eq!(part["type"], "output_text");
                part["text"] = json!(format!("{}{}", part["text"].as_str().unwrap(), e["delta"].as_str().unwrap()));
            }
            "response.output_text.done" | "response.content_part.done" => {
                let item = &output[index.unwrap()];
                let part = &item["content"][e["content_index"].as_u64().unwrap() as usize];
                let text = if kind == "response.output_text.done" { &e["text"] } else { &e["part"]["text"] };
                assert_eq!(&part["text"], text);
            }
            "response.function_call_arguments.delta" => {
                let item = &mut output[index.unwrap()];
                assert_eq!((index, item["type"].as_str()), (open, Some("function_call")));
                item["arguments"] =
                    json!(format!("{}{}", item["arguments"].as_str().unwrap(), e["delta"].as_str().unwrap()));
            }
            "response.function_call_arguments.done" => {
                let item = &output[index.unwrap()];
                assert_eq!(e["name"], item["name"]);
                let so_far = item["arguments"].as_str().unwrap();
                assert!(so_far.is_empty() || e["arguments"] == so_far, "{so_far} vs {}", e["arguments"]);
            }
            "response.custom_tool_call_input.delta" => {
                let item = &mut output[index.unwrap()];
                assert_eq!(item["type"], "custom_tool_call");
                item["input"] = json!(format!("{}{}", item["input"].as_str().unwrap(), e["delta"].as_str().unwrap()));
            }
            "response.custom_tool_call_input.done" => assert_eq!(output[index.unwrap()]["input"], e["input"]),
            "response.reasoning_summary_part.added" => {
                let item = &mut output[index.unwrap()];
                assert_eq!((index, item["type"].as_str()), (open, Some("reasoning")));
                item["summary"].as_array_mut().unwrap().push(e["part"].clone());
            }
            "response.reasoning_summary_text.delta" => {
                let item = &mut output[index.unwrap()];
                let part = &mut item["summary"][e["summary_index"].as_u64().unwrap() as usize];
                part["text"] = json!(format!("{}{}", part["text"].as_str().unwrap(), e["delta"].as_str().unwrap()));
            }
            "response.reasoning_summary_text.done" | "response.reasoning_summary_part.done" => {
                let item = &output[index.unwrap()];
                let part = &item["summary"][e["summary_index"].as_u64().unwrap() as usize];
                let text = if kind.ends_with("text.done") { &e["text"] } else { &e["part"]["text"] };
                assert_eq!(&part["text"], text);
            }
            "error" => {
                assert!(e["message"].is_string() && e["code"].is_string(), "{e}");
                error_event = e.clone();
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                assert_eq!(open, None, "every item is done before the end");
                let status = kind.strip_prefix("response.").unwrap();
                assert_eq!(e["response"]["status"], status);
                assert_eq!(e["response"]["output"], json!(output), "the final output is what the events built");
                if status == "failed" {
                    assert_eq!(e["response"]["error"]["message"], error_event["message"]);
                }
                last = Some(e["response"].clone());
            }
            other => panic!("unexpected event {other}"),
        }
    }
    last.expect("the stream ends with response.completed, .incomplete or .failed")
}
