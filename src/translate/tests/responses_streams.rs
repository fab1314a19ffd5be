//! Anthropic and Chat answers, JSON and SSE, → OpenAI Responses.

use serde_json::{json, Value};

use super::{collect_responses, every_split, parse};
use crate::translate::{
    chat_response_to_responses, messages_response_to_responses, ChatToResponses, MessagesToResponses, ResponsesContext,
};
use crate::wire::stream::Sse;

const CREATED: u64 = 1_700_000_000;

fn ctx(custom_tools: &[&str]) -> ResponsesContext {
    ResponsesContext {
        echo: r#""tools":[],"tool_choice":"auto","parallel_tool_calls":true,"store":false"#.to_owned(),
        custom_tools: custom_tools.iter().map(|s| s.to_string()).collect(),
        namespaced: vec![("multi_agent_v1__wait_agent".into(), "multi_agent_v1".into(), "wait_agent".into())],
    }
}

fn from_anthropic(custom: &[&str], sse: &str) -> (String, Value) {
    let out =
        every_split(|| Sse::new(MessagesToResponses::new(ctx(custom), "claude-opus-4-8", CREATED)), sse.as_bytes());
    let text = String::from_utf8(out).unwrap();
    let response = collect_responses(text.as_bytes());
    (text, response)
}

fn from_chat(custom: &[&str], sse: &str) -> (String, Value) {
    let out = every_split(|| Sse::new(ChatToResponses::new(ctx(custom), "gemini-2.5-flash", CREATED)), sse.as_bytes());
    let text = String::from_utf8(out).unwrap();
    let response = collect_responses(text.as_bytes());
    (text, response)
}

/// Anthropic events as the API sends them.
fn anthropic_sse(events: &[Value]) -> String {
    events.iter().map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap())).collect()
}

fn anthropic_agent_events(stop_reason: &str) -> Vec<Value> {
    vec![
        json!({"type": "message_start", "message": {"id": "msg_01T", "type": "message", "role": "assistant",
            "model": "claude-opus-4-8", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 472, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000, "output_tokens": 2}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Need "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "weather."}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQB"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "ping"}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Checking "}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "\u{e9}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Par"}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "is\"}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}}}),
        json!({"type": "content_block_stop", "index": 3}),
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 89}}),
        json!({"type": "message_stop"}),
    ]
}

/// The same answer as one Anthropic JSON body.
fn anthropic_agent_body(stop_reason: &str) -> Value {
    json!({"id": "msg_01T", "type": "message", "role": "assistant", "model": "claude-opus-4-8", "content": [
        {"type": "thinking", "thinking": "Need weather.", "signature": "EqQB"},
        {"type": "text", "text": "Checking \u{e9}"},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}}],
        "stop_reason": stop_reason, "stop_sequence": null,
        "usage": {"input_tokens": 472, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000, "output_tokens": 89}})
}

fn agent_output() -> Value {
    json!([
        {"id": "rs_msg_01T_0", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Need weather."}],
         "encrypted_content": "anthropic-thinking:EqQB"},
        {"id": "msg_msg_01T_1", "type": "message", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": "Checking \u{e9}", "annotations": [], "logprobs": []}]},
        {"id": "fc_toolu_01", "type": "function_call", "status": "completed", "arguments": "{\"city\": \"Paris\"}",
         "call_id": "toolu_01", "name": "get_weather"},
        {"id": "fc_toolu_02", "type": "function_call", "status": "completed", "arguments": "{}",
         "call_id": "toolu_02", "name": "get_time"}
    ])
}

#[test]
fn an_anthropic_agent_stream_reads_as_a_responses_stream() {
    let (text, response) = from_anthropic(&[], &anthropic_agent_sse());
    assert_eq!(response["id"], "resp_msg_01T");
    assert_eq!((response["status"].clone(), response["model"].clone()), (json!("completed"), json!("claude-opus-4-8")));
    assert_eq!(response["output"], agent_output());
    assert_eq!(
        response["usage"],
        json!({"input_tokens": 2572, "input_tokens_details": {"cached_tokens": 2000, "cache_write_tokens": 100},
               "output_tokens": 89, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 2661})
    );
    assert_eq!((response["tools"].clone(), response["store"].clone()), (json!([]), json!(false)));
    // The first event, exactly.
    let first = text.split("\n\n").next().unwrap();
    assert_eq!(
        first,
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_msg_01T\",\
         \"object\":\"response\",\"created_at\":1700000000,\"status\":\"in_progress\",\"error\":null,\"incomplete_details\":null,\
         \"model\":\"claude-opus-4-8\",\"output\":[],\"usage\":null,\"tools\":[],\"tool_choice\":\"auto\",\
         \"parallel_tool_calls\":true,\"store\":false}}"
    );
    // The JSON answer translates to the same response (its arguments as the provider wrote them).
    let body = anthropic_agent_body("tool_use").to_string();
    let whole = parse(&messages_response_to_responses(body.as_bytes(), &ctx(&[]), "claude-opus-4-8", CREATED).unwrap());
    assert_eq!(whole["output"][2]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(same_arguments(whole), same_arguments(response));
}

/// A response with each call's arguments parsed, so JSON spacing does not count.
fn same_arguments(mut response: Value) -> Value {
    for item in response["output"].as_array_mut().unwrap() {
        if let Some(args) = item.get("arguments").and_then(Value::as_str) {
            item["arguments"] = serde_json::from_str(args).unwrap();
        }
    }
    response
}

fn anthropic_agent_sse() -> String {
    anthropic_sse(&anthropic_agent_events("tool_use"))
}

#[test]
fn a_truncated_answer_is_incomplete() {
    let (_, response) = from_anthropic(&[], &anthropic_sse(&anthropic_agent_events("max_tokens")));
    assert_eq!(response["status"], "incomplete");
    assert_eq!(response["incomplete_details"], json!({"reason": "max_output_tokens"}));
    let body = anthropic_agent_body("refusal").to_string();
    let whole = parse(&messages_response_to_responses(body.as_bytes(), &ctx(&[]), "m", CREATED).unwrap());
    assert_eq!(
        (whole["status"].clone(), whole["incomplete_details"]["reason"].clone()),
        (json!("incomplete"), json!("content_filter"))
    );
}

#[test]
fn custom_tool_calls_come_back_as_custom_items() {
    let events = vec![
        json!({"type": "message_start", "message": {"id": "msg_C", "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "Zm9v"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_P", "name": "apply_patch", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"input\": \"*** Begin"}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": " Patch\\n\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_W", "name": "multi_agent_v1__wait_agent", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"id\":\"a1\"}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ];
    let (text, response) = from_anthropic(&["apply_patch"], &anthropic_sse(&events));
    assert_eq!(
        response["output"],
        json!([
            {"id": "rs_msg_C_0", "type": "reasoning", "summary": [], "encrypted_content": "anthropic-redacted-thinking:Zm9v"},
            {"id": "fc_toolu_P", "type": "custom_tool_call", "status": "completed", "call_id": "toolu_P",
             "name": "apply_patch", "input": "*** Begin Patch\n"},
            // A namespaced function comes back under its own name and namespace, as Codex runs it.
            {"id": "fc_toolu_W", "type": "function_call", "status": "completed", "arguments": "{\"id\":\"a1\"}",
             "call_id": "toolu_W", "name": "wait_agent", "namespace": "multi_agent_v1"}
        ])
    );
    let argument_events = text.split("\n\n").filter(|e| e.contains("function_call_arguments"));
    assert!(argument_events.clone().all(|e| !e.contains("fc_toolu_P")), "a custom call has no argument events: {text}");
    assert!(text.contains("response.custom_tool_call_input.done"), "{text}");
    let body = json!({"id": "msg_C", "content": [{"type": "redacted_thinking", "data": "Zm9v"},
        {"type": "tool_use", "id": "toolu_P", "name": "apply_patch", "input": {"input": "*** Begin Patch\n"}},
        {"type": "tool_use", "id": "toolu_W", "name": "multi_agent_v1__wait_agent", "input": {"id": "a1"}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 9}});
    let whole = parse(
        &messages_response_to_responses(
            body.to_string().as_bytes(),
            &ctx(&["apply_patch"]),
            "claude-opus-4-8",
            CREATED,
        )
        .unwrap(),
    );
    assert_eq!(whole["output"], response["output"]);
}

#[test]
fn provider_errors_and_cut_streams_fail_the_response() {
    let start =
        json!({"type": "message_start", "message": {"id": "msg_E", "usage": {"input_tokens": 5, "output_tokens": 1}}});
    let text = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}});
    let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}});
    for (kind, code) in [("overloaded_error", "server_error"), ("rate_limit_error", "rate_limit_exceeded")] {
        let error = json!({"type": "error", "error": {"type": kind, "message": "Overloaded"}});
        let (_, response) = from_anthropic(&[], &anthropic_sse(&[start.clone(), text.clone(), delta.clone(), error]));
        assert_eq!(response["status"], "failed");
        assert_eq!(response["error"], json!({"code": code, "message": "Overloaded"}));
        // What was said before the error is kept, as a completed item.
        assert_eq!(response["output"][0]["content"][0]["text"], "Hel");
    }
    let (_, response) = from_anthropic(&[], &anthropic_sse(&[start, text, delta]));
    assert_eq!(response["error"]["code"], "server_error");
    assert!(response["error"]["message"].as_str().unwrap().contains("ended before"));
    // Nothing at all from the provider still fails cleanly.
    let (_, response) = from_anthropic(&[], "");
    assert_eq!(response["status"], "failed");
}

/// Gemini's way: each call whole without `index`, `finish_reason: stop`, usage last.
const GEMINI_TOOLS: &str = concat!(
    "data: {\"id\":\"chatcmpl-G\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Let me \"}}]}\n\n",
    "data: {\"id\":\"chatcmpl-G\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"check.\"}}]}\n\n",
    "data: {\"id\":\"chatcmpl-G\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]}}]}\n\n",
    "data: {\"id\":\"chatcmpl-G\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"apply_patch\",\"arguments\":\"{\\\"input\\\":\\\"diff\\\"}\"}}]}}]}\n\n",
    "data: {\"id\":\"chatcmpl-G\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"chatcmpl-G\",\"choices\":[],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":40,\"total_tokens\":140,",
    "\"prompt_tokens_details\":{\"cached_tokens\":20},\"completion_tokens_details\":{\"reasoning_tokens\":12}}}\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn a_chat_stream_reads_as_a_responses_stream() {
    let (_, response) = from_chat(&["apply_patch"], GEMINI_TOOLS);
    assert_eq!((response["id"].clone(), response["status"].clone()), (json!("resp_chatcmpl-G"), json!("completed")));
    assert_eq!(
        response["output"],
        json!([
            {"id": "msg_chatcmpl-G_0", "type": "message", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Let me check.", "annotations": [], "logprobs": []}]},
            {"id": "fc_call_a", "type": "function_call", "status": "completed", "arguments": "{\"city\":\"Paris\"}",
             "call_id": "call_a", "name": "get_weather"},
            {"id": "fc_call_b", "type": "custom_tool_call", "status": "completed", "call_id": "call_b",
             "name": "apply_patch", "input": "diff"}
        ])
    );
    assert_eq!(
        response["usage"],
        json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 20}, "output_tokens": 40,
               "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 140})
    );
    let body = json!({"id": "chatcmpl-G", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_b", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"diff\"}"}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140,
                  "prompt_tokens_details": {"cached_tokens": 20}, "completion_tokens_details": {"reasoning_tokens": 12}}});
    let whole = parse(
        &chat_response_to_responses(body.to_string().as_bytes(), &ctx(&["apply_patch"]), "gemini-2.5-flash", CREATED)
            .unwrap(),
    );
    assert_eq!(whole, response);
}

#[test]
fn openai_style_call_fragments_and_stream_ends() {
    let stream = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]}}]}\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
    );
    // No [DONE], but a finish reason: complete (as incomplete, from `length`).
    let (_, response) = from_chat(&[], stream);
    assert_eq!(
        (response["status"].clone(), response["output"][0]["arguments"].clone()),
        (json!("incomplete"), json!("{\"a\":1}"))
    );
    // Cut before any finish reason: failed.
    let cut = stream.rsplit_once("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},").unwrap().0;
    let (_, response) = from_chat(&[], cut);
    assert_eq!(response["status"], "failed");
    let error = "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n\
                 data: {\"error\":{\"message\":\"quota\",\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}\n\n";
    let (_, response) = from_chat(&[], error);
    assert_eq!(response["error"], json!({"code": "insufficient_quota", "message": "quota"}));
}
