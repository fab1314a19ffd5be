//! Issue 14, item 5: the README's errors table and the gateway agree. Every
//! row of the table has cases here, and every case gets the row's status in
//! the route's error format; a row added to the table without a case, or a
//! case whose status the table does not list, fails the test.

use std::collections::BTreeSet;

use llm_gateway_e2e::calls::chat;
use llm_gateway_e2e::client::exchange;
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

/// The statuses of the README's "## Errors" table.
fn documented_statuses() -> BTreeSet<u16> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme.split("\n## Errors\n").nth(1).expect("an Errors section");
    let section = section.split("\n## ").next().unwrap();
    section.lines().filter_map(|l| l.strip_prefix("| ")?.split(" |").next()?.trim().parse().ok()).collect()
}

/// An error body as the SDKs parse it: OpenAI's object, and on /v1/messages Anthropic's type too.
fn assert_error_shape(status: u16, body: &str, path: &str, what: &str) {
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {status} body is not JSON ({e}): {body}"));
    assert!(v["error"]["message"].is_string(), "{what}: {body}");
    for key in ["type", "param", "code"] {
        assert!(v["error"].get(key).is_some(), "{what}: error.{key} missing: {body}");
    }
    if path.ends_with("/messages") {
        assert_eq!(v["type"], "error", "{what}: {body}");
    }
}

#[test]
fn every_row_of_the_errors_table_is_what_clients_get() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let port = stack.envoy.port;
    // A gateway whose auth service is down, and one with short timeouts and no Gemini key.
    let dead = DeadPort::new();
    let dir = stack.dir.join("errors-table");
    std::fs::create_dir_all(&dir).unwrap();
    let auth_down = Envoy::start_with(&dir, &test_plugin_config(), Ports { auth: dead.port(), ..stack.ports() }, 1);
    let mut config = test_plugin_config();
    merge(&mut config, json!({"body_timeout_ms": 300, "providers": {"openai": {"timeout_ms": 200}}}));
    let limited =
        Envoy::try_start_without_keys(&dir, &config, stack.ports(), 1, &wasm_path(), &["LLM_GATEWAY_GEMINI_API_KEY"])
            .unwrap_or_else(|log| panic!("envoy did not start:\n{}", log_tail(&log)));
    stack.store.put_key("phx_errors_no_scope", &json!({"team_id": 7, "scopes": ["feature_flag:read"]}));
    stack
        .store
        .put_key("phx_errors_wizard", &json!({"team_id": 7, "scopes": ["llm_gateway:read"], "products": ["wizard"]}));

    let deep = |levels: usize| format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels));
    let c = "/v1/chat/completions";
    let m = "/v1/messages";
    let messages = json!({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []}).to_string();
    // (status, what, gateway port, method, path, headers, body, local reply: never reaches the provider)
    let bearer_unknown = "Bearer phx_errors_unknown_key_0001";
    let bearer_test = format!("Bearer {TEST_KEY}");
    type Case<'a> = (u16, &'a str, u16, &'a str, &'a str, Vec<(&'a str, &'a str)>, String, bool);
    let cases: Vec<Case> = vec![
        (401, "missing key", port, "POST", c, vec![("authorization", "")], chat("gpt-4o", false), true),
        (
            401,
            "malformed key",
            port,
            "POST",
            c,
            vec![("authorization", "Bearer sk-not-a-posthog-key")],
            chat("gpt-4o", false),
            true,
        ),
        (401, "unknown key", port, "POST", m, vec![("authorization", bearer_unknown)], messages.clone(), true),
        (
            401,
            "repeated authorization",
            port,
            "POST",
            c,
            vec![("authorization", bearer_test.as_str()), ("authorization", bearer_test.as_str())],
            chat("gpt-4o", false),
            true,
        ),
        (
            403,
            "scope missing",
            port,
            "POST",
            c,
            vec![("x-api-key", "phx_errors_no_scope")],
            chat("gpt-4o", false),
            true,
        ),
        (
            403,
            "product not allowed",
            port,
            "POST",
            "/array/v1/chat/completions",
            vec![("x-api-key", "phx_errors_wizard")],
            chat("gpt-4o", false),
            true,
        ),
        (503, "auth service down", auth_down.port, "POST", m, vec![], messages.clone(), true),
        (400, "empty body", port, "POST", c, vec![], String::new(), true),
        (400, "invalid JSON", port, "POST", c, vec![], "{not json".into(), true),
        (400, "not an object", port, "POST", c, vec![], "[1, 2]".into(), true),
        (
            400,
            "metadata nested 200 levels",
            port,
            "POST",
            m,
            vec![],
            format!(r#"{{"model":"claude-haiku-4-5","max_tokens":5,"messages":[],"metadata":{}}}"#, deep(200)),
            true,
        ),
        (
            400,
            "metadata nested 100,000 levels",
            port,
            "POST",
            c,
            vec![],
            format!(r#"{{"model":"gpt-4o","messages":[],"metadata":{}}}"#, deep(100_000)),
            true,
        ),
        (
            400,
            "duplicate top-level keys",
            port,
            "POST",
            c,
            vec![],
            r#"{"model":"gpt-4o","model":"o3","messages":[]}"#.into(),
            true,
        ),
        (400, "missing model", port, "POST", c, vec![], r#"{"messages":[]}"#.into(), true),
        (
            400,
            "mistyped stream",
            port,
            "POST",
            c,
            vec![],
            r#"{"model":"gpt-4o","messages":[],"stream":"yes"}"#.into(),
            true,
        ),
        (
            400,
            "missing messages",
            port,
            "POST",
            m,
            vec![],
            r#"{"model":"claude-haiku-4-5","max_tokens":5}"#.into(),
            true,
        ),
        (400, "mistyped messages", port, "POST", c, vec![], r#"{"model":"gpt-4o","messages":"hi"}"#.into(), true),
        (400, "unknown model", port, "POST", c, vec![], chat("llama-3-70b", false), true),
        (
            400,
            "a stateful Responses feature on a translated route",
            port,
            "POST",
            "/v1/responses",
            vec![],
            json!({"model": "claude-haiku-4-5", "input": "hi", "previous_response_id": "resp_1"}).to_string(),
            true,
        ),
        (
            400,
            "a model without a price under pricing.unknown_model: reject",
            limited.port,
            "POST",
            c,
            vec![],
            chat("unpriced-model", false),
            true,
        ),
        (
            400,
            "a field the provider cannot express",
            port,
            "POST",
            c,
            vec![],
            json!({"model": "claude-haiku-4-5", "n": 3, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
            true,
        ),
        (404, "unknown path", port, "POST", "/v1/embeddings", vec![], chat("gpt-4o", false), true),
        (404, "unknown product", port, "POST", "/nope/v1/chat/completions", vec![], chat("gpt-4o", false), true),
        (405, "GET on a known path", port, "GET", c, vec![], String::new(), true),
        (
            413,
            "body over max_request_body_bytes",
            port,
            "POST",
            c,
            vec![],
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "a".repeat(1_100_000)}]}).to_string(),
            true,
        ),
        (500, "no key for the provider", limited.port, "POST", c, vec![], chat("gemini-2.5-flash", false), true),
        (
            502,
            "provider unreachable (reset)",
            port,
            "POST",
            c,
            vec![("x-mock-fault", "reset")],
            chat("gpt-4o", false),
            false,
        ),
        (
            504,
            "provider past its timeout_ms",
            limited.port,
            "POST",
            c,
            vec![("x-mock-delay-ms", "1000")],
            chat("gpt-4o", false),
            false,
        ),
    ];
    let mut covered: BTreeSet<u16> = cases.iter().map(|c| c.0).collect();
    for (status, what, gw, method, path, headers, body, local) in cases {
        let before = stack.mock.requests().len();
        let (got, text, allow) = if status == 413 {
            // Read while uploading: the 413 comes before the body is sent.
            let (got, text) = post_reading_early(gw, path, body);
            (got, text, None)
        } else {
            let r = exchange(gw, method, path, &headers, body.as_bytes());
            (r.status, r.text(), r.header("allow").map(str::to_string))
        };
        assert_eq!(got, status, "{what}: {text}");
        assert_error_shape(status, text.trim(), path, what);
        if status == 405 {
            assert_eq!(allow.as_deref(), Some("POST"), "{what}");
        }
        if local {
            assert_eq!(stack.mock.requests().len(), before, "{what}: a refused request reached the provider");
        }
    }
    // Not UTF-8.
    let r = exchange(port, "POST", c, &[], &b"{\"model\":\"gpt-4o\",\"messages\":[],\"user\":\"\xff\"}"[..]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_error_shape(400, &r.text(), c, "not UTF-8");
    // 408: the headers arrive, the body never starts.
    let (status, text) = body_never_starts(limited.port);
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("request_body_timeout"), "{text}");
    covered.insert(408);
    assert_eq!(covered, documented_statuses(), "every row of the README's errors table has a case, and only those");
}

/// Sends the head of a POST with a content-length and no body; returns status and what came back.
fn body_never_starts(port: u16) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {TEST_KEY}\r\ncontent-length: 50\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    (text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), text)
}
