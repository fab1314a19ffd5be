//! Tool-call round trips as an SDK client drives them: request, provider
//! answer with tool calls, the client appends that answer and the tool
//! results, next request.

use serde_json::{json, Value};

use super::{claude, openai, parse};
use crate::translate::{
    chat_request_to_messages, chat_response_to_messages, messages_request_to_chat, messages_response_to_chat,
};

fn args(call: &Value) -> Value {
    serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap()
}

#[test]
fn openai_client_anthropic_provider() {
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let mut messages = vec![json!({"role": "user", "content": "Weather in Paris and Oslo?"})];
    let first = json!({"model": "claude-sonnet-4-5", "messages": messages, "tools": tools});
    let upstream =
        parse(&chat_request_to_messages(first.to_string().as_bytes(), &claude("claude-sonnet-4-5")).unwrap());
    assert_eq!(upstream["tools"][0]["input_schema"], tools[0]["function"]["parameters"]);

    // Anthropic answers with two tool calls.
    let answer = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": [
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "toolu_P", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_O", "name": "get_weather", "input": {"city": "Oslo"}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 50, "output_tokens": 40}});
    let completion = parse(&messages_response_to_chat(answer.to_string().as_bytes(), "claude-sonnet-4-5", 1).unwrap());
    let assistant = completion["choices"][0]["message"].clone();
    assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");

    // The client appends the assistant message and one tool message per call.
    messages.push(assistant.clone());
    for call in assistant["tool_calls"].as_array().unwrap() {
        let city = args(call)["city"].as_str().unwrap().to_owned();
        messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": format!("{city}: 18C")}));
    }
    let second = json!({"model": "claude-sonnet-4-5", "messages": messages, "tools": tools});
    let upstream =
        parse(&chat_request_to_messages(second.to_string().as_bytes(), &claude("claude-sonnet-4-5")).unwrap());
    assert_eq!(
        upstream["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {"role": "assistant", "content": answer["content"]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_P", "content": "Paris: 18C"},
                {"type": "tool_result", "tool_use_id": "toolu_O", "content": "Oslo: 18C"}
            ]}
        ])
    );
}

#[test]
fn anthropic_client_openai_provider() {
    let tools = json!([{"name": "get_weather", "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let mut messages = vec![json!({"role": "user", "content": "Weather in Paris?"})];
    let first = json!({"model": "gpt-4o", "max_tokens": 512, "messages": messages, "tools": tools});
    let upstream = parse(&messages_request_to_chat(first.to_string().as_bytes(), &openai("gpt-4o")).unwrap());
    assert_eq!(upstream["tools"][0]["function"]["parameters"], tools[0]["input_schema"]);

    // OpenAI answers with a tool call.
    let answer = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
            {"id": "call_P", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
         "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 60, "completion_tokens": 15, "total_tokens": 75}});
    let message = parse(&chat_response_to_messages(answer.to_string().as_bytes(), "gpt-4o").unwrap());
    assert_eq!(message["stop_reason"], "tool_use");

    // The client appends the assistant content and a user turn with the result.
    messages.push(json!({"role": "assistant", "content": message["content"]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": message["content"][0]["id"], "content": "18C"}]}));
    let second = json!({"model": "gpt-4o", "max_tokens": 512, "messages": messages, "tools": tools});
    let upstream = parse(&messages_request_to_chat(second.to_string().as_bytes(), &openai("gpt-4o")).unwrap());
    let sent = upstream["messages"].as_array().unwrap();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[1]["role"], "assistant");
    let original = &answer["choices"][0]["message"]["tool_calls"][0];
    let replayed = &sent[1]["tool_calls"][0];
    assert_eq!((&replayed["id"], &replayed["function"]["name"]), (&original["id"], &original["function"]["name"]));
    assert_eq!(args(replayed), args(original));
    assert_eq!(sent[2], json!({"role": "tool", "content": "18C", "tool_call_id": "call_P"}));
}

#[test]
fn chat_request_survives_a_trip_through_anthropic_and_back() {
    let original = json!({"model": "x", "max_completion_tokens": 100, "messages": [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "Calling.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "R"},
        {"role": "user", "content": [{"type": "text", "text": "More"},
            {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGOD"}}]}
    ], "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
       "tool_choice": {"type": "function", "function": {"name": "f"}}, "stop": ["X"], "temperature": 0.3, "user": "u"});
    let anthropic = chat_request_to_messages(original.to_string().as_bytes(), &claude("claude")).unwrap();
    let back = parse(&messages_request_to_chat(&anthropic, &openai("x")).unwrap());
    assert_eq!(back["messages"], original["messages"]);
    for key in ["tools", "tool_choice", "stop", "temperature", "user", "max_completion_tokens"] {
        assert_eq!(back[key], original[key], "{key}");
    }
}

/// Codex against Claude: the answer's reasoning and tool call go back in the
/// next request as they came, so Anthropic accepts thinking in a tool loop.
#[test]
fn responses_client_anthropic_provider_keeps_thinking_across_a_tool_loop() {
    use crate::translate::{messages_response_to_responses, responses_request_to_messages, ResponsesContext};
    let tools = json!([{"type": "function", "name": "shell", "parameters": {"type": "object",
        "properties": {"command": {"type": "string"}}}}]);
    let mut input = vec![json!({"role": "user", "content": "List the files."})];
    let request = |input: &[Value]| {
        json!({"model": "claude-sonnet-4-5", "input": input, "tools": tools, "store": false,
               "reasoning": {"effort": "medium", "summary": "auto"}, "include": ["reasoning.encrypted_content"]})
        .to_string()
    };
    let sonnet = claude("claude-sonnet-4-5");
    let first = parse(&responses_request_to_messages(request(&input).as_bytes(), &sonnet).unwrap());
    assert_eq!(first["thinking"], json!({"type": "enabled", "budget_tokens": 8192}));
    let answer = json!({"id": "msg_1", "type": "message", "role": "assistant", "content": [
        {"type": "thinking", "thinking": "Use ls.", "signature": "SIG1"},
        {"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {"command": "ls"}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 50, "output_tokens": 40}});
    let response = parse(
        &messages_response_to_responses(
            answer.to_string().as_bytes(),
            &ResponsesContext::default(),
            "claude-sonnet-4-5",
            1,
        )
        .unwrap(),
    );
    // The client appends the output items and the call's output.
    input.extend(response["output"].as_array().unwrap().iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": "toolu_1", "output": "a.rs"}));
    let second = parse(&responses_request_to_messages(request(&input).as_bytes(), &sonnet).unwrap());
    assert_eq!(
        second["messages"],
        json!([
            {"role": "user", "content": "List the files."},
            {"role": "assistant", "content": answer["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.rs"}]}
        ])
    );
    assert_eq!(second["thinking"], first["thinking"], "the signed turn keeps thinking on");
}

/// A tool's description is copied as the client escaped it, on every route
/// that carries tools, and still means the same text; one that is not a
/// string is refused as invalid.
#[test]
fn tool_descriptions_pass_through_as_written() {
    use crate::translate::{responses_request_to_chat, responses_request_to_messages, TranslateError};
    let text = "Run \"cmd\"\n\tin C:\\tmp — é \u{1F600}";
    let escaped = r#""Run \"cmd\"\n\tin C:\\tmp \u2014 \u00e9 \ud83d\ude00""#;
    let schema = r#"{"type":"object","properties":{}}"#;
    type Translate = fn(&[u8], &crate::translate::Target) -> Result<Vec<u8>, TranslateError>;
    let cases: [(&str, Translate, &str, &str); 4] = [
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"t","description":D,"input_schema":S}]}"#,
            messages_request_to_chat,
            "gpt-4o",
            "/tools/0/function/description",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"t","description":D,"parameters":S}}]}"#,
            chat_request_to_messages,
            "claude-sonnet-4-6",
            "/tools/0/description",
        ),
        (
            r#"{"model":"m","input":"hi","tools":[{"type":"function","name":"t","description":D,"parameters":S}]}"#,
            responses_request_to_messages,
            "claude-sonnet-4-6",
            "/tools/0/description",
        ),
        (
            r#"{"model":"m","input":"hi","tools":[{"type":"function","name":"t","description":D,"parameters":S}]}"#,
            responses_request_to_chat,
            "gemini-2.5-pro",
            "/tools/0/function/description",
        ),
    ];
    for (template, translate, model, pointer) in cases {
        let target = match model {
            m if m.starts_with("claude") => claude("claude-sonnet-4-6"),
            m if m.starts_with("gemini") => super::gemini("gemini-2.5-pro"),
            _ => openai("gpt-4o"),
        };
        let body = template.replace('D', escaped).replace('S', schema);
        let sent = translate(body.as_bytes(), &target).unwrap();
        assert!(String::from_utf8_lossy(&sent).contains(escaped), "{pointer}: copied as written");
        assert_eq!(parse(&sent).pointer(pointer).and_then(Value::as_str), Some(text), "{pointer}");
        let refused = translate(template.replace('D', "7").replace('S', schema).as_bytes(), &target);
        assert!(
            matches!(refused, Err(TranslateError::Invalid(ref m)) if m.contains("expected a string")),
            "{refused:?}"
        );
    }
}
