//! OpenAI Responses request → Anthropic and Chat requests.

use serde_json::{json, Value};

use super::{claude, gemini, parse};
use crate::translate::{responses_request_to_chat, responses_request_to_messages, Target, TranslateError};

fn to_messages(target: &Target, body: Value) -> Result<Value, TranslateError> {
    responses_request_to_messages(body.to_string().as_bytes(), target).map(|b| parse(&b))
}

fn to_chat(target: &Target, body: Value) -> Result<Value, TranslateError> {
    responses_request_to_chat(body.to_string().as_bytes(), target).map(|b| parse(&b))
}

fn refused(result: Result<Value, TranslateError>) -> String {
    match result {
        Err(TranslateError::Unsupported(m)) => m,
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

/// A Codex-like turn: instructions, a developer message, a user message with
/// an image, the model's reasoning and tool call, the tool's output.
fn agent_turn() -> Value {
    json!({
        "model": "claude-sonnet-4-5", "instructions": "You are a coding agent.", "stream": true, "store": false,
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "session-1", "parallel_tool_calls": false,
        "reasoning": {"effort": "high", "summary": "auto"}, "tool_choice": "auto", "max_output_tokens": 64000,
        "metadata": {"k": "v"}, "user": "end-user-1", "text": {"verbosity": "low"},
        "tools": [
            {"type": "function", "name": "shell", "description": "Run a command", "strict": false,
             "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                            "required": ["command"]}},
            {"type": "custom", "name": "apply_patch", "description": "Apply a patch",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}
        ],
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be careful."}]},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Fix the bug in this screenshot."},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Look first."}],
             "encrypted_content": "anthropic-thinking:EqQBsig"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "id": "fc_1", "call_id": "toolu_1", "name": "shell",
             "arguments": "{\"command\":[\"ls\"]}"},
            {"type": "function_call_output", "call_id": "toolu_1", "output": "src\nREADME.md"},
            {"type": "custom_tool_call", "call_id": "toolu_2", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "toolu_2", "output": "Done"},
            {"role": "user", "content": "Thanks"}
        ]
    })
}

#[test]
fn an_agent_turn_becomes_an_anthropic_request() {
    let sent = to_messages(&claude("claude-sonnet-4-5"), agent_turn()).unwrap();
    assert_eq!(
        sent,
        json!({
            "model": "claude-sonnet-4-5", "max_tokens": 64000,
            "system": [{"type": "text", "text": "You are a coding agent."}, {"type": "text", "text": "Be careful."}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "Fix the bug in this screenshot."},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Look first.", "signature": "EqQBsig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {"command": ["ls"]}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "src\nREADME.md"}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_2", "name": "apply_patch", "input": {"input": "*** Begin Patch"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "Done"},
                    {"type": "text", "text": "Thanks"}]}
            ],
            "tools": [
                {"name": "shell", "description": "Run a command",
                 "input_schema": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                                  "required": ["command"]}},
                {"name": "apply_patch", "description": "Apply a patch",
                 "input_schema": {"type": "object", "properties": {"input": {"type": "string",
                    "description": "The tool's input, as free text."}}, "required": ["input"]}}
            ],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "metadata": {"user_id": "end-user-1"},
            // The last assistant turn's calls came without thinking: Anthropic would refuse thinking.
            "cache_control": {"type": "ephemeral"},
            "stream": true
        })
    );
}

#[test]
fn reasoning_effort_becomes_thinking_by_model() {
    let body = |effort: &str| {
        json!({"model": "x", "input": "Prove it.", "reasoning": {"effort": effort, "summary": "detailed"},
               "max_output_tokens": 40000})
    };
    let sonnet = to_messages(&claude("claude-sonnet-4-5"), body("medium")).unwrap();
    assert_eq!(sonnet["thinking"], json!({"type": "enabled", "budget_tokens": 8192}));
    assert!(sonnet.get("output_config").is_none());
    let opus = to_messages(&claude("claude-opus-4-8"), body("xhigh")).unwrap();
    assert_eq!(opus["thinking"], json!({"type": "adaptive", "display": "summarized"}));
    assert_eq!(opus["output_config"], json!({"effort": "xhigh"}));
    assert!(to_messages(&claude("claude-opus-4-8"), body("none")).unwrap().get("thinking").is_none());
    // A reasoning item another provider made cannot be sent back: dropped.
    let mut foreign = body("low");
    foreign["input"] = json!([{"role": "user", "content": "Q"},
        {"type": "reasoning", "id": "rs_x", "summary": [], "encrypted_content": "gAAAAABfernet"},
        {"role": "assistant", "content": "A"}, {"role": "user", "content": "Q2"}]);
    let sent = to_messages(&claude("claude-sonnet-4-5"), foreign).unwrap();
    assert_eq!(sent["messages"][1], json!({"role": "assistant", "content": "A"}));
    assert_eq!(sent["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
    let redacted = json!({"model": "x", "input": [{"role": "user", "content": "Q"},
        {"type": "reasoning", "id": "rs_r", "summary": [], "encrypted_content": "anthropic-redacted-thinking:Zm9v"},
        {"type": "function_call", "call_id": "t1", "name": "f", "arguments": ""},
        {"type": "function_call_output", "call_id": "t1", "output": [{"type": "input_text", "text": "r"}]}],
        "tools": [{"type": "function", "name": "f"}], "reasoning": {"effort": "low"}});
    let sent = to_messages(&claude("claude-sonnet-4-5"), redacted).unwrap();
    assert_eq!(
        sent["messages"][1]["content"],
        json!([{"type": "redacted_thinking", "data": "Zm9v"}, {"type": "tool_use", "id": "t1", "name": "f", "input": {}}])
    );
    assert_eq!(sent["tools"][0]["input_schema"], json!({"type": "object", "properties": {}}));
    // The signed turn lets thinking stay on.
    assert_eq!(sent["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
}

#[test]
fn output_limits_are_clamped_or_defaulted_to_the_model() {
    let body = |n: Option<u64>| match n {
        Some(n) => json!({"model": "x", "input": "hi", "max_output_tokens": n}),
        None => json!({"model": "x", "input": "hi"}),
    };
    assert_eq!(to_messages(&claude("claude-sonnet-4-5"), body(Some(200_000))).unwrap()["max_tokens"], 64000);
    assert_eq!(to_messages(&claude("claude-sonnet-4-5"), body(None)).unwrap()["max_tokens"], 32000);
    assert_eq!(to_messages(&claude("claude-unknown"), body(None)).unwrap()["max_tokens"], 4096);
    let sent = to_chat(&gemini("gemini-2.5-flash"), body(Some(1_000_000))).unwrap();
    assert_eq!(sent["max_completion_tokens"], 65536);
    assert!(to_chat(&gemini("gemini-2.5-flash"), body(None)).unwrap().get("max_completion_tokens").is_none());
}

#[test]
fn structured_output_and_sampling() {
    let body = json!({"model": "x", "input": "List.", "temperature": 0.2, "top_p": 0.9,
        "text": {"format": {"type": "json_schema", "name": "list", "strict": true,
                            "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}},
        "reasoning": {"effort": "high"}, "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "f"}});
    let sent = to_messages(&claude("claude-sonnet-4-5"), body.clone()).unwrap();
    assert_eq!(
        sent["output_config"],
        json!({"format": {"type": "json_schema", "schema": body["text"]["format"]["schema"]}})
    );
    assert_eq!((sent["temperature"].clone(), sent["top_p"].clone()), (json!(0.2), json!(0.9)));
    assert_eq!(sent["tool_choice"], json!({"type": "tool", "name": "f"}));
    // Sampling settings and a forced tool leave thinking out.
    assert!(sent.get("thinking").is_none());
    let sent = to_chat(&gemini("gemini-2.5-flash"), body.clone()).unwrap();
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "list", "schema": body["text"]["format"]["schema"], "strict": true}})
    );
    assert_eq!(sent["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
    assert_eq!(sent["reasoning_effort"], "high");
    let json_object = json!({"model": "x", "input": "x", "text": {"format": {"type": "json_object"}}});
    assert!(refused(to_messages(&claude("claude-sonnet-4-5"), json_object.clone())).contains("json_object"));
    assert_eq!(
        to_chat(&gemini("gemini-2.5-flash"), json_object).unwrap()["response_format"],
        json!({"type": "json_object"})
    );
}

#[test]
fn an_agent_turn_becomes_a_chat_request() {
    let mut turn = agent_turn();
    turn["model"] = json!("gemini-2.5-flash");
    let sent = to_chat(&gemini("gemini-2.5-flash"), turn).unwrap();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "You are a coding agent.\n\nBe careful."},
            {"role": "user", "content": [{"type": "text", "text": "Fix the bug in this screenshot."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "shell", "arguments": "{\"command\":[\"ls\"]}"}}]},
            {"role": "tool", "content": "src\nREADME.md", "tool_call_id": "toolu_1"},
            {"role": "assistant", "tool_calls": [{"id": "toolu_2", "type": "function",
                "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\"}"}}]},
            {"role": "tool", "content": "Done", "tool_call_id": "toolu_2"},
            {"role": "user", "content": "Thanks"}
        ])
    );
    assert_eq!(sent["tools"][1]["function"]["name"], "apply_patch");
    assert_eq!(sent["tools"][1]["function"]["parameters"]["required"], json!(["input"]));
    assert_eq!((sent["tool_choice"].clone(), sent["parallel_tool_calls"].clone()), (json!("auto"), json!(false)));
    assert_eq!(sent["reasoning_effort"], "high");
    assert!(sent.get("user").is_none(), "Gemini refuses fields it does not know");
    assert_eq!((sent["stream"].clone(), sent["stream_options"].clone()), (json!(true), json!({"include_usage": true})));
    assert_eq!(sent["max_completion_tokens"], 64000);
    for dropped in ["store", "include", "prompt_cache_key", "metadata", "text", "reasoning", "instructions", "input"] {
        assert!(sent.get(dropped).is_none(), "{dropped}: {sent}");
    }
}

#[test]
fn tool_output_images_follow_the_tool_messages() {
    let body = json!({"model": "x", "input": [
        {"type": "function_call", "call_id": "c1", "name": "screenshot", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [
            {"type": "input_text", "text": "Here."}, {"type": "input_image", "image_url": "https://x/s.png"}]}]});
    let sent = to_chat(&gemini("gemini-2.5-flash"), body.clone()).unwrap();
    assert_eq!(sent["messages"][1], json!({"role": "tool", "content": "Here.", "tool_call_id": "c1"}));
    assert_eq!(
        sent["messages"][2],
        json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/s.png"}}]})
    );
    let sent = to_messages(&claude("claude-sonnet-4-5"), body).unwrap();
    assert_eq!(
        sent["messages"][1]["content"][0]["content"],
        json!([{"type": "text", "text": "Here."}, {"type": "image", "source": {"type": "url", "url": "https://x/s.png"}}])
    );
}

#[test]
fn stateful_and_hosted_features_are_refused_by_name() {
    let base = || json!({"model": "x", "input": "hi"});
    let with = |key: &str, value: Value| {
        let mut b = base();
        b[key] = value;
        b
    };
    let t = claude("claude-sonnet-4-5");
    for (body, needle) in [
        (with("previous_response_id", json!("resp_1")), "'previous_response_id' is not supported for anthropic"),
        (with("store", json!(true)), "'store': true"),
        (with("conversation", json!("conv_1")), "'conversation'"),
        (with("background", json!(true)), "'background': true"),
        (with("prompt", json!({"id": "pmpt_1"})), "'prompt'"),
        (with("top_logprobs", json!(2)), "'top_logprobs'"),
        (with("tools", json!([{"type": "file_search", "vector_store_ids": []}])), "type 'file_search'"),
        (with("tools", json!([{"type": "local_shell"}])), "type 'local_shell'"),
        (with("tool_choice", json!({"type": "allowed_tools", "mode": "auto", "tools": []})), "'allowed_tools'"),
        (with("input", json!([{"type": "item_reference", "id": "msg_1"}])), "'item_reference'"),
        (with("input", json!([{"type": "web_search_call", "id": "ws_1"}])), "'web_search_call' items"),
        (
            with("input", json!([{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}])),
            "'file_id'",
        ),
        (with("input", json!([{"role": "user", "content": [{"type": "input_audio"}]}])), "audio"),
    ] {
        let m = refused(to_messages(&t, body.clone()));
        assert!(m.contains(needle), "{m} should contain {needle}");
        let m = refused(to_chat(&gemini("gemini-2.5-flash"), body));
        assert!(m.contains(needle.replace("anthropic", "gemini").as_str()), "{m} should contain {needle}");
    }
    // Accepted and dropped.
    let ok = json!({"model": "x", "input": "hi", "store": false,
        "tools": [{"type": "web_search", "external_web_access": false}, {"type": "tool_search", "execution": "client"}], "background": false, "top_logprobs": 0,
        "truncation": "auto", "service_tier": "auto", "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k", "metadata": {"a": "b"}, "stream_options": {"include_obfuscation": false}});
    let sent = to_messages(&t, ok).unwrap();
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "hi"}]));
    assert!(sent.get("tools").is_none(), "{sent}");
    assert!(matches!(to_messages(&t, json!({"model": "x"})), Err(TranslateError::Invalid(_))));
    assert!(matches!(
        to_messages(&t, json!({"model": "x", "input": "x", "reasoning": {"effort": "extreme"}})),
        Err(TranslateError::Invalid(_))
    ));
}
