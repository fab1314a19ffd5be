//! OpenAI Responses API.
//!
//! JSON: a `response` object (`usage`, `model`, `output[].content[].text`,
//! `error`). SSE: named events whose data carries `type`; usage arrives on
//! `response.completed` (or `.incomplete`/`.failed`) in `response.usage`;
//! text in `response.output_text.delta`; failures as `response.failed`
//! (`response.error`) or an `error` event (`message`).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::sink::Sink;
use crate::wire::json::error_message;
use crate::wire::lenient::{Items, Obj, Str};
use crate::wire::{usage, SseEvent};

/// A response object, read in one pass (see `crate::wire::lenient`).
#[derive(Deserialize)]
struct Response<'a> {
    #[serde(borrow, default)]
    model: Str<'a>,
    #[serde(borrow, default)]
    output: Items<Obj<Item<'a>>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow, default)]
    content: Items<Obj<Part<'a>>>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow, default)]
    text: Str<'a>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow, default)]
    response: Obj<Response<'a>>,
    #[serde(borrow, default)]
    delta: Str<'a>,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// Reads a response object; `with_text` is off for stream snapshots, whose
/// text already came as deltas.
fn read_response(r: &Response, with_text: bool, sink: &mut Sink) {
    if let Some(message) = error_message(r.error) {
        sink.error(&message);
    }
    if let Some(model) = &r.model.0 {
        sink.model(model);
    }
    let items = || r.output.0.iter().filter_map(|item| item.0.as_ref());
    if let Some(mut u) = r.usage.and_then(|raw| usage::responses(Some(raw))) {
        // Each `web_search_call` output item is one billed search.
        let searches = items().filter(|i| i.kind.0.as_deref() == Some("web_search_call")).count();
        if searches > 0 {
            u.web_search_requests = Some(searches as u64);
        }
        sink.usage = Some(u);
    }
    if !with_text {
        return;
    }
    for item in items() {
        match item.kind.0.as_deref() {
            Some("message") => {}
            Some(_) => {
                sink.token();
                continue;
            }
            None => continue,
        }
        for part in item.content.0.iter().filter_map(|part| part.0.as_ref()) {
            if part.kind.0.as_deref() == Some("output_text") {
                if let Some(text) = &part.text.0 {
                    sink.text(text);
                }
            } else {
                sink.token();
            }
        }
    }
}

pub(super) fn body(body: &[u8], sink: &mut Sink) -> Result<(), serde_json::Error> {
    let response: Response = serde_json::from_slice(body)?;
    read_response(&response, true, sink);
    Ok(())
}

pub(super) fn event(event: &SseEvent, sink: &mut Sink) {
    let Ok(e) = serde_json::from_str::<Event>(&event.data) else {
        return;
    };
    let kind = e.kind.0.as_deref().or(event.event.as_deref()).unwrap_or("");
    if kind == "response.output_text.delta" {
        if let Some(delta) = &e.delta.0 {
            sink.text(delta);
        }
    } else if kind.ends_with(".delta") {
        sink.token();
    } else if kind == "error" {
        let message = error_message(e.message).or_else(|| error_message(e.error));
        sink.error(message.as_deref().unwrap_or("error event"));
    }
    if let Some(response) = &e.response.0 {
        read_response(response, false, sink);
        if kind == "response.failed" && response.error.is_none() {
            sink.error("response.failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{every_split, finish_body};
    use super::super::Usage;
    use crate::wire::Api;

    const WIRE: Api = Api::Responses;

    #[test]
    fn json_body() {
        let body = br#"{"id":"resp_mock","object":"response","created_at":1741569952,"status":"completed","model":"gpt-5.4",
"output":[{"type":"reasoning","id":"rs_1","summary":[]},{"type":"message","id":"msg_mock","status":"completed","role":"assistant",
"content":[{"type":"output_text","text":"Hello from mock-openai.","annotations":[]}]}],
"usage":{"input_tokens":37,"input_tokens_details":{"cached_tokens":5,"cache_write_tokens":0},
"output_tokens":11,"output_tokens_details":{"reasoning_tokens":4},"total_tokens":48}}"#;
        let out = finish_body(WIRE, body);
        assert_eq!(
            out.usage,
            Some(Usage {
                input_tokens: 37,
                output_tokens: 11,
                cache_read_tokens: Some(5),
                cache_creation_tokens: Some(0),
                reasoning_tokens: Some(4),
                input_includes_cache: true,
                ..Usage::default()
            })
        );
        assert_eq!(out.output_text, "Hello from mock-openai.");
        assert_eq!(out.served_model.as_deref(), Some("gpt-5.4"));
    }

    const STREAM: &[u8] = b"event: response.created\n\
data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_67c9\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-5.4\",\"output\":[],\"usage\":null},\"sequence_number\":0}\n\n\
event: response.output_text.delta\n\
data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_67c9\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\",\"sequence_number\":1}\n\n\
event: response.output_text.delta\n\
data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_67c9\",\"output_index\":0,\"content_index\":0,\"delta\":\" there\",\"sequence_number\":2}\n\n\
event: response.completed\n\
data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_67c9\",\"status\":\"completed\",\"model\":\"gpt-5.4-2026-03-05\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi there\"}]}],\"usage\":{\"input_tokens\":37,\"output_tokens\":11,\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":48}},\"sequence_number\":3}\n\n";

    #[test]
    fn stream_usage_from_response_completed() {
        let out = every_split(WIRE, STREAM);
        assert_eq!(
            out.usage,
            Some(Usage {
                input_tokens: 37,
                output_tokens: 11,
                reasoning_tokens: Some(0),
                input_includes_cache: true,
                ..Usage::default()
            })
        );
        // The deltas, not the snapshot again.
        assert_eq!(out.output_text, "Hi there");
        assert_eq!(out.served_model.as_deref(), Some("gpt-5.4-2026-03-05"));
        assert!(out.first_token);
    }

    #[test]
    fn members_of_unexpected_types_skip_themselves_not_the_event() {
        let stream = b"event: response.output_text.delta\n\
data: {\"type\":\"response.output_text.delta\",\"delta\":{\"x\":1}}\n\n\
event: response.output_text.delta\n\
data: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n\
event: response.completed\n\
data: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5\",\"output\":[7,{\"type\":\"web_search_call\"},{\"type\":\"message\",\"content\":\"x\"}],\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n";
        let out = every_split(WIRE, stream);
        assert_eq!(out.output_text, "Hi");
        assert_eq!(out.served_model.as_deref(), Some("gpt-5"));
        let usage = out.usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens, usage.web_search_requests), (3, 1, Some(1)));
    }

    #[test]
    fn response_failed_and_error_event() {
        let stream = b"event: response.failed\n\
data: {\"type\":\"response.failed\",\"response\":{\"id\":\"resp_1\",\"status\":\"failed\",\"model\":\"gpt-5.4\",\"error\":{\"code\":\"server_error\",\"message\":\"The model failed to generate a response.\"},\"usage\":null}}\n\n";
        let out = every_split(WIRE, stream);
        assert_eq!(out.error.as_deref(), Some("The model failed to generate a response."));
        assert_eq!(out.usage, None);

        let stream = b"event: error\n\
data: {\"type\":\"error\",\"code\":\"server_error\",\"param\":null,\"message\":\"The server had an error while processing your request.\",\"sequence_number\":2}\n\n";
        let out = every_split(WIRE, stream);
        assert_eq!(out.error.as_deref(), Some("The server had an error while processing your request."));
    }

    #[test]
    fn function_call_arguments_delta_is_a_first_token() {
        let stream = b"event: response.function_call_arguments.delta\n\
data: {\"type\":\"response.function_call_arguments.delta\",\"delta\":\"{\\\"a\\\"\"}\n\n";
        let out = every_split(WIRE, stream);
        assert!(out.first_token);
        assert_eq!(out.output_text, "");
    }

    #[test]
    fn truncated_stream_has_no_usage() {
        let cut = STREAM.len() - 40;
        let out = every_split(WIRE, STREAM.split_at(cut).0);
        assert_eq!(out.usage, None);
        assert_eq!(out.output_text, "Hi there");
    }

    #[test]
    fn web_search_calls_in_the_output_are_counted() {
        let body = br#"{"object":"response","model":"gpt-5","output":[
{"type":"web_search_call","id":"ws_1","status":"completed"},{"type":"web_search_call","id":"ws_2","status":"completed"},
{"type":"message","content":[{"type":"output_text","text":"Found it"}]}],
"usage":{"input_tokens":10,"output_tokens":5}}"#;
        let out = finish_body(WIRE, body);
        assert_eq!(out.usage.and_then(|u| u.web_search_requests), Some(2));
        assert_eq!(out.output_text, "Found it");
        let stream = b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5\",\"output\":[{\"type\":\"web_search_call\",\"id\":\"ws_1\"}],\"usage\":{\"input_tokens\":3,\"output_tokens\":2}}}\n\n";
        assert_eq!(every_split(WIRE, stream).usage.and_then(|u| u.web_search_requests), Some(1));
    }
}
