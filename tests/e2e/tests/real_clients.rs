//! Issue 14: every event tells the truth for real clients. The official SDKs
//! (OpenAI Python and Node, Anthropic Python) and a raw-socket client read a
//! stream to its terminal event and close the connection at once, as real
//! clients do, on every client format and provider, translated routes and
//! the stripped usage chunk included; the call is complete, not a disconnect.
//! A client that leaves one event before the end is still a disconnect.
//!
//! The mock keeps each stream open after its last event (`x-mock-hold: end`)
//! until the client closes, so the client is always the one that ends the
//! call and the order "terminal event passed, client closes, provider never
//! ends" is deterministic; the mock records that the client closed first.

use std::process::Command;

use llm_gateway_e2e::client::{event_arrived, request_until, terminal_arrived};
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

const BEDROCK_ID: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// One client format against one provider.
struct Route {
    name: &'static str,
    path: &'static str,
    model: &'static str,
    /// `x-posthog-provider`, to reach Bedrock with a first-party model name.
    provider_header: Option<&'static str>,
    /// `$ai_provider`, and the greeting's vendor.
    provider: &'static str,
    /// The mock's default usage for the provider: (input, output) tokens.
    usage: (u64, u64),
}

const ROUTES: [Route; 13] = [
    Route {
        name: "chat-openai",
        path: "/v1/chat/completions",
        model: "gpt-4o",
        provider_header: None,
        provider: "openai",
        usage: (19, 10),
    },
    Route {
        name: "chat-gemini",
        path: "/v1/chat/completions",
        model: "gemini-2.5-flash",
        provider_header: None,
        provider: "gemini",
        usage: (19, 10),
    },
    Route {
        name: "chat-anthropic",
        path: "/v1/chat/completions",
        model: "claude-haiku-4-5",
        provider_header: None,
        provider: "anthropic",
        usage: (25, 15),
    },
    Route {
        name: "chat-bedrock",
        path: "/v1/chat/completions",
        model: BEDROCK_ID,
        provider_header: None,
        provider: "bedrock",
        usage: (25, 15),
    },
    Route {
        name: "messages-anthropic",
        path: "/v1/messages",
        model: "claude-haiku-4-5",
        provider_header: None,
        provider: "anthropic",
        usage: (25, 15),
    },
    Route {
        name: "messages-openai",
        path: "/v1/messages",
        model: "gpt-4o",
        provider_header: None,
        provider: "openai",
        usage: (19, 10),
    },
    Route {
        name: "messages-gemini",
        path: "/v1/messages",
        model: "gemini-2.5-flash",
        provider_header: None,
        provider: "gemini",
        usage: (19, 10),
    },
    Route {
        name: "messages-bedrock",
        path: "/v1/messages",
        model: "claude-haiku-4-5",
        provider_header: Some("bedrock"),
        provider: "bedrock",
        usage: (25, 15),
    },
    Route {
        name: "messages-bedrock-id",
        path: "/v1/messages",
        model: BEDROCK_ID,
        provider_header: None,
        provider: "bedrock",
        usage: (25, 15),
    },
    Route {
        name: "responses-openai",
        path: "/v1/responses",
        model: "gpt-4o",
        provider_header: None,
        provider: "openai",
        usage: (37, 11),
    },
    Route {
        name: "responses-anthropic",
        path: "/v1/responses",
        model: "claude-haiku-4-5",
        provider_header: None,
        provider: "anthropic",
        usage: (25, 15),
    },
    Route {
        name: "responses-gemini",
        path: "/v1/responses",
        model: "gemini-2.5-flash",
        provider_header: None,
        provider: "gemini",
        usage: (19, 10),
    },
    Route {
        name: "responses-bedrock",
        path: "/v1/responses",
        model: "claude-haiku-4-5",
        provider_header: Some("bedrock"),
        provider: "bedrock",
        usage: (25, 15),
    },
];

fn route(name: &str) -> &'static Route {
    ROUTES.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no route {name}"))
}

fn body(r: &Route, include_usage: bool) -> String {
    let mut b = match r.path {
        "/v1/responses" => json!({"model": r.model, "input": "hi", "stream": true}),
        "/v1/messages" => json!({"model": r.model, "max_tokens": 64, "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}),
        _ => json!({"model": r.model, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    };
    if include_usage {
        b["stream_options"] = json!({"include_usage": true});
    }
    b.to_string()
}

/// What PostHog must see for a complete call on `r`.
fn assert_complete(p: &Value, r: &Route, format: &str, what: &str) {
    assert_eq!(p["$ai_is_error"], false, "{what}: {p}");
    assert!(p.get("$ai_error").is_none(), "{what}: {p}");
    assert_eq!(p["$ai_http_status"], 200, "{what}");
    assert_eq!(
        (p["$ai_input_tokens"].as_u64(), p["$ai_output_tokens"].as_u64()),
        (Some(r.usage.0), Some(r.usage.1)),
        "{what}: {p}"
    );
    assert_eq!((p["$ai_provider"].as_str(), p["$ai_api_format"].as_str()), (Some(r.provider), Some(format)), "{what}");
    assert_eq!(p["$ai_stream"], true, "{what}");
    assert!(p["$ai_total_cost_usd"].as_f64() > Some(0.0), "{what}: {p}");
}

fn api_format(path: &str) -> &'static str {
    match path {
        "/v1/responses" => "openai_responses",
        "/v1/messages" => "anthropic_messages",
        _ => "openai_chat",
    }
}

/// A raw-socket client that closes the instant the terminal event's bytes
/// arrive, on every route, with the provider holding the stream open (the
/// client closes first, always) and without (a real race): complete either
/// way, with the exact usage, and the stripped usage chunk never shown.
#[test]
fn closing_at_the_terminal_event_is_a_complete_call() {
    let stack = Stack::shared();
    let _g = stack.guard();
    for r in &ROUTES {
        for (hold, include_usage) in [(true, false), (false, false), (true, true)] {
            if include_usage && r.path != "/v1/chat/completions" {
                continue;
            }
            let marker = format!("raw-{}-hold-{hold}-usage-{include_usage}", r.name);
            let mut headers = vec![("x-test-marker", marker.as_str()), ("x-posthog-trace-id", marker.as_str())];
            headers.extend(r.provider_header.map(|p| ("x-posthog-provider", p)));
            if hold {
                headers.push(("x-mock-hold", "end"));
            }
            let resp = request_until(stack.envoy.port, "POST", r.path, &headers, body(r, include_usage), |b| {
                terminal_arrived(r.path, b)
            });
            assert_eq!(resp.status, 200, "{marker}: {}", resp.text());
            assert!(terminal_arrived(r.path, &resp.body), "{marker}: {}", resp.text());
            let text = resp.text();
            assert!(text.contains(&format!("mock-{}", r.provider)), "{marker}: {text}");
            if r.path == "/v1/chat/completions" {
                assert_eq!(
                    text.contains("\"usage\":{"),
                    include_usage,
                    "{marker}: the usage chunk only when asked: {text}"
                );
            }
            if hold {
                assert!(resp.left_early, "{marker}: the client closed first");
                assert_eq!(stack.mock.hold_outcome(&marker), Some(true), "{marker}: the provider saw the client leave");
            }
            assert_complete(&stack.sink.properties(&marker), r, api_format(r.path), &marker);
        }
    }
}

/// A client that leaves one event before the end: a disconnect, with the
/// usage seen so far, whatever the route.
#[test]
fn leaving_one_event_before_the_end_is_a_disconnect() {
    let stack = Stack::shared();
    let _g = stack.guard();
    // (route, ask for usage, the last event the client reads before leaving)
    let cases = [
        ("messages-anthropic", false, "event: message_delta"),
        ("messages-bedrock", false, "event: message_delta"),
        ("chat-openai", true, "\"usage\":{"),
        ("chat-anthropic", false, "mock-anthropic."),
        ("responses-openai", false, "mock-openai."),
    ];
    for (name, include_usage, last_read) in cases {
        let r = route(name);
        let marker = format!("leave-{name}");
        let mut headers =
            vec![("x-test-marker", marker.as_str()), ("x-posthog-trace-id", marker.as_str()), ("x-mock-hold", "last")];
        headers.extend(r.provider_header.map(|p| ("x-posthog-provider", p)));
        let resp = request_until(stack.envoy.port, "POST", r.path, &headers, body(r, include_usage), |b| {
            event_arrived(b, last_read)
        });
        assert_eq!(resp.status, 200, "{marker}");
        assert!(resp.left_early && !terminal_arrived(r.path, &resp.body), "{marker}: {}", resp.text());
        assert_eq!(stack.mock.hold_outcome(&marker), Some(true), "{marker}");
        let p = stack.sink.properties(&marker);
        assert_eq!(p["$ai_is_error"], true, "{marker}: {p}");
        assert_eq!(p["$ai_error"], "client disconnected before the response completed", "{marker}");
        assert_eq!(p["$ai_http_status"], 200, "{marker}");
        // Usage seen so far: Anthropic reports input at the start and output before
        // message_stop; OpenAI's usage chunk came; the Responses API only at its end.
        let tokens = (p["$ai_input_tokens"].as_u64(), p["$ai_output_tokens"].as_u64());
        match name {
            "responses-openai" => assert_eq!(tokens, (None, None), "{marker}: {p}"),
            _ => assert_eq!(tokens, (Some(r.usage.0), Some(r.usage.1)), "{marker}: {p}"),
        }
    }
}

/// (SDK, route, include_usage) for the SDK scripts; the marker is derived.
fn sdk_cases(sdk: &str) -> Vec<(String, &'static Route, bool)> {
    let mut cases = Vec::new();
    for r in &ROUTES {
        let fits = match sdk {
            "anthropic" => r.path == "/v1/messages",
            _ => r.path != "/v1/messages",
        };
        if !fits {
            continue;
        }
        for include_usage in [false, true] {
            if include_usage && r.path != "/v1/chat/completions" {
                continue;
            }
            cases.push((format!("{sdk}-{}-usage-{include_usage}", r.name), r, include_usage));
        }
    }
    cases
}

fn cases_json(cases: &[(String, &Route, bool)]) -> String {
    let list: Vec<Value> = cases
        .iter()
        .map(|(marker, r, include_usage)| {
            json!({"marker": marker, "path": r.path, "model": r.model, "include_usage": include_usage,
                   "provider_header": r.provider_header})
        })
        .collect();
    Value::from(list).to_string()
}

fn run(mut cmd: Command, stack: &Stack, cases: &str) -> Value {
    let out = cmd
        .env("GATEWAY_URL", stack.url(""))
        .env("KEY", TEST_KEY)
        .env("CASES", cases)
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run scripts/setup.sh)"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {stdout}"))
}

/// What every SDK case must show: the client got the whole answer (and the
/// usage chunk only when it asked), closed first, and PostHog saw a complete call.
fn check_sdk_cases(stack: &Stack, summary: &Value, cases: &[(String, &Route, bool)]) {
    for (marker, r, include_usage) in cases {
        let c = &summary[marker.as_str()];
        assert!(c.get("exception").is_none(), "{marker}: {c}");
        assert_eq!(c["text"], format!("Hello from mock-{}.", r.provider), "{marker}: {c}");
        assert_eq!(c["terminal"], true, "{marker}: read to its terminal event: {c}");
        if r.path == "/v1/chat/completions" {
            let want = include_usage.then(|| json!([r.usage.0, r.usage.1]));
            let want_usage = want.unwrap_or(Value::Null);
            // A translated Anthropic answer counts cache tokens in prompt_tokens: none here.
            assert_eq!(c["usage"], want_usage, "{marker}: {c}");
        } else {
            assert_eq!(c["usage"], json!([r.usage.0, r.usage.1]), "{marker}: {c}");
        }
        assert_eq!(stack.mock.hold_outcome(marker), Some(true), "{marker}: the SDK closed the connection itself");
        assert_complete(&stack.sink.properties(marker), r, api_format(r.path), marker);
    }
}

#[test]
fn python_sdks_reading_to_the_terminal_event_are_complete() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let mut cases = sdk_cases("openai");
    cases.extend(sdk_cases("anthropic"));
    let python = repo_root().join(".venv/bin/python");
    let mut cmd = Command::new(python);
    cmd.args(["-W", "ignore", "-c", PYTHON_SCRIPT]);
    let summary = run(cmd, stack, &cases_json(&cases));
    check_sdk_cases(stack, &summary, &cases);
}

#[test]
fn the_node_openai_sdk_reading_to_the_terminal_event_is_complete() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let cases = sdk_cases("node");
    let mut cmd = Command::new("node");
    cmd.args(["-e", NODE_SCRIPT]).env("NODE_PATH", repo_root().join(".venv/node/node_modules"));
    let summary = run(cmd, stack, &cases_json(&cases));
    check_sdk_cases(stack, &summary, &cases);
}

/// Each case as a real application writes it: iterate the SDK's stream to the
/// terminal event, then close (the OpenAI SDK stops at `[DONE]` and closes by
/// itself; Responses and Messages streams are left at their terminal event).
const PYTHON_SCRIPT: &str = r#"
import json, os
import anthropic, openai

url, key = os.environ["GATEWAY_URL"], os.environ["KEY"]
oa = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)
an = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=30)
out = {}
for case in json.loads(os.environ["CASES"]):
    marker = case["marker"]
    headers = {"x-mock-hold": "end", "x-test-marker": marker, "x-posthog-trace-id": marker}
    if case["provider_header"]:
        headers["x-posthog-provider"] = case["provider_header"]
    text, usage, terminal = "", None, False
    messages = [{"role": "user", "content": "hi"}]
    try:
        if case["path"] == "/v1/chat/completions":
            extra = {"stream_options": {"include_usage": True}} if case["include_usage"] else {}
            stream = oa.chat.completions.create(model=case["model"], messages=messages, stream=True,
                                                extra_headers=headers, **extra)
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
                if chunk.usage:
                    usage = [chunk.usage.prompt_tokens, chunk.usage.completion_tokens]
            terminal = True  # the SDK ends the iteration at [DONE] only
        elif case["path"] == "/v1/responses":
            stream = oa.responses.create(model=case["model"], input="hi", stream=True, extra_headers=headers)
            for event in stream:
                if event.type == "response.output_text.delta":
                    text += event.delta
                if event.type in ("response.completed", "response.incomplete", "response.failed"):
                    usage = [event.response.usage.input_tokens, event.response.usage.output_tokens]
                    terminal = True
                    break
            stream.close()
        else:
            stream = an.messages.create(model=case["model"], max_tokens=64, messages=messages, stream=True,
                                        extra_headers=headers)
            inp = None
            for event in stream:
                if event.type == "message_start":
                    inp = event.message.usage.input_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    text += event.delta.text
                elif event.type == "message_delta":
                    # A translated stream reports the input at the end, as the SDK accumulates it.
                    usage = [event.usage.input_tokens or inp, event.usage.output_tokens]
                elif event.type == "message_stop":
                    terminal = True
                    break
            stream.close()
        out[marker] = {"text": text, "usage": usage, "terminal": terminal}
    except Exception as e:
        out[marker] = {"exception": type(e).__name__ + ": " + str(e)[:300]}
print(json.dumps(out))
"#;

/// The same with the OpenAI Node SDK (`for await`, which ends at `[DONE]`;
/// a Responses stream is left at its terminal event).
const NODE_SCRIPT: &str = r#"
const OpenAI = require("openai");
const client = new OpenAI({ baseURL: process.env.GATEWAY_URL + "/v1", apiKey: process.env.KEY, maxRetries: 0, timeout: 30000 });
(async () => {
  const out = {};
  for (const c of JSON.parse(process.env.CASES)) {
    const headers = { "x-mock-hold": "end", "x-test-marker": c.marker, "x-posthog-trace-id": c.marker };
    if (c.provider_header) headers["x-posthog-provider"] = c.provider_header;
    let text = "", usage = null, terminal = false;
    try {
      if (c.path === "/v1/chat/completions") {
        const params = { model: c.model, messages: [{ role: "user", content: "hi" }], stream: true };
        if (c.include_usage) params.stream_options = { include_usage: true };
        const stream = await client.chat.completions.create(params, { headers });
        for await (const chunk of stream) {
          if (chunk.choices.length && chunk.choices[0].delta.content) text += chunk.choices[0].delta.content;
          if (chunk.usage) usage = [chunk.usage.prompt_tokens, chunk.usage.completion_tokens];
        }
        terminal = true;
      } else {
        const stream = await client.responses.create({ model: c.model, input: "hi", stream: true }, { headers });
        for await (const event of stream) {
          if (event.type === "response.output_text.delta") text += event.delta;
          if (["response.completed", "response.incomplete", "response.failed"].includes(event.type)) {
            usage = [event.response.usage.input_tokens, event.response.usage.output_tokens];
            terminal = true;
            break;
          }
        }
      }
      out[c.marker] = { text, usage, terminal };
    } catch (e) {
      out[c.marker] = { exception: String(e).slice(0, 300) };
    }
  }
  console.log(JSON.stringify(out));
})();
"#;
