//! Issue 9 (part): what clients see when a neighbour or a client misbehaves,
//! and that nothing is lost silently.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use llm_gateway_e2e::calls::chat;
use llm_gateway_e2e::http1::Server;
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

/// An auth service that always answers `status` (with `retry-after` on 429), or resets.
fn fake_auth(status: u16) -> Server {
    Server::start(move |_req, res| {
        if status == 0 {
            res.reset();
        } else {
            let _ = res.send(status, &[("retry-after", "1"), ("content-type", "text/plain")], b"nope");
        }
    })
}

#[test]
fn auth_service_errors_fail_closed() {
    let stack = Stack::shared();
    let _g = stack.guard();
    for status in [500, 503, 429, 0] {
        let auth = fake_auth(status);
        let dir = stack.dir.join(format!("auth-fault-{status}"));
        std::fs::create_dir_all(&dir).unwrap();
        let envoy = Envoy::start_with(&dir, &test_plugin_config(), Ports { auth: auth.port(), ..stack.ports() }, 1);
        let resp = send(envoy.port, "POST", "/v1/chat/completions", &[], &chat("gpt-4o", false));
        assert_eq!(resp.status, 503, "auth answering {status}: {}", resp.body);
        assert_eq!(resp.json()["error"]["code"], "auth_unavailable");
        assert_eq!(envoy.metric("llm_gateway.auth_unavailable_total"), 1);
        assert_eq!(envoy.metric("llm_gateway.events_queued_total"), 0, "not forwarded, so no call to report");
    }
}

#[test]
fn provider_garbage_passes_through_and_is_counted() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy = stack.extra_envoy("provider-garbage", json!({}), 1);
    let post = |headers: &[(&str, &str)], body: &str| send(envoy.port, "POST", "/v1/chat/completions", headers, body);
    // A 200 with invalid JSON reaches the client as sent; the call is priced at the fallback.
    let resp = post(&[("x-mock-fault", "invalid-json")], &chat("gpt-4o", false));
    assert_eq!(resp.status, 200);
    assert!(serde_json::from_str::<Value>(&resp.body).is_err());
    // Malformed SSE and a wrong content type: passed through, no crash.
    let resp = post(&[("x-mock-fault", "malformed-sse")], &chat("gpt-4o", true));
    assert_eq!(resp.status, 200);
    assert!(resp.body.contains("[DONE]"));
    let resp = post(&[("x-mock-fault", "wrong-content-type")], &chat("gpt-4o", false));
    assert_eq!(resp.status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while envoy.metric("llm_gateway.events_queued_total") < 3 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    // Only the invalid JSON has no usage to read: the malformed stream's usage chunk is intact,
    // and a JSON body is read as JSON whatever its content type says.
    assert_eq!(envoy.metric("llm_gateway.usage_missing_total"), 1);
    assert_eq!(envoy.metric("llm_gateway.cost_fallback_total"), 1);
    assert_eq!(envoy.metric("llm_gateway.responses_openai_2xx_total"), 3);
}

#[test]
fn bad_client_input_gets_clear_errors() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let deep = format!(r#"{{"model":"gpt-4o","messages":[],"metadata":{}{}}}"#, "[".repeat(5000), "]".repeat(5000));
    let cases: Vec<(String, u16, &str)> = vec![
        ("{\"model\": \"gpt-4o\", \"messages\": [], \"user\": \"\u{1}\"}".into(), 400, "control character"),
        (r#"{"model": "gpt-4o", "messages": [], "user": "a\u0001b"}"#.into(), 200, ""),
        (deep, 400, "metadata"),
        (r#"{"model":["gpt-4o"],"messages":[]}"#.into(), 400, "'model'"),
        (r#"{"model":"gpt-4o","messages":{}}"#.into(), 400, "'messages' must be an array"),
        (r#"{"model":"gpt-4o","messages":[],"stream":"true"}"#.into(), 400, "'stream'"),
        ("null".into(), 400, "Invalid JSON"),
        ("\"text\"".into(), 400, "Invalid JSON"),
    ];
    for (body, status, needle) in cases {
        let resp = stack.post("/v1/chat/completions", &[], &body);
        assert_eq!(resp.status, status, "{}: {}", &body[..body.len().min(60)], resp.body);
        if status != 200 {
            assert!(resp.json()["error"]["message"].as_str().unwrap().contains(needle), "{}", resp.body);
        }
    }
    // Non-UTF-8 bytes: a raw request, since the test client only sends strings.
    let mut s = TcpStream::connect(("127.0.0.1", stack.envoy.port)).unwrap();
    let body = b"{\"model\":\"gpt-4o\",\"messages\":[],\"user\":\"\xff\xfe\"}";
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {TEST_KEY}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    // A repeated credential header is refused, whichever key it repeats.
    for (first, second) in [(TEST_KEY, TEST_KEY), (TEST_KEY, "phx_someone_else_entirely")] {
        let mut s = TcpStream::connect(("127.0.0.1", stack.envoy.port)).unwrap();
        let body = chat("gpt-4o", false);
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {first}\r\nauthorization: Bearer {second}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 401"), "{out}");
        assert!(!out.contains("phx_"), "the error never echoes a key: {out}");
    }
    // An oversized credential is malformed, not a crash.
    let huge = format!("Bearer phx_{}", "a".repeat(8000));
    let resp = stack.post("/v1/chat/completions", &[("authorization", &huge)], &chat("gpt-4o", false));
    assert_eq!(resp.status, 401);
}

#[test]
fn client_leaving_mid_upload_is_not_forwarded_and_nothing_hangs() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy = stack.extra_envoy("client-leaves", json!({}), 1);
    let mut s = TcpStream::connect(("127.0.0.1", envoy.port)).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {TEST_KEY}\r\nx-test-marker: half-upload\r\ncontent-length: 100000\r\n\r\n{{\"model\":\"gpt-4o\""
    );
    s.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    assert!(stack.mock.requests().iter().all(|r| r.header("x-test-marker") != Some("half-upload")));
    // The worker still serves.
    assert_eq!(send(envoy.port, "POST", "/v1/chat/completions", &[], &chat("gpt-4o", false)).status, 200);
    assert_eq!(envoy.metric("llm_gateway.events_queued_total"), 1);
}

#[test]
fn posthog_429_with_retry_after_is_honoured_and_delivered_once() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let primary = llm_gateway_e2e::sink::CaptureSink::start();
    let mirror = llm_gateway_e2e::sink::CaptureSink::start();
    let dir = stack.dir.join("posthog-429");
    std::fs::create_dir_all(&dir).unwrap();
    let ports = Ports { sink: primary.port(), sink2: mirror.port(), ..stack.ports() };
    let envoy = Envoy::start_with(&dir, &test_plugin_config(), ports, 1);
    primary.fail_next(1, 429, Some(1));
    let started = std::time::Instant::now();
    let body = chat("gpt-4o", false);
    assert_eq!(send(envoy.port, "POST", "/v1/chat/completions", &[], &body).status, 200);
    let events = primary.wait_for_events(1, Duration::from_secs(10));
    assert_eq!(events.len(), 1);
    assert!(started.elapsed() >= Duration::from_millis(900), "Retry-After: 1 was not honoured");
    assert_eq!(envoy.metric("llm_gateway.capture_primary_retried_total"), 1);
    assert_eq!(mirror.wait_for_events(1, Duration::from_secs(5)).len(), 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(primary.events().len(), 1, "delivered exactly once");
}

#[test]
fn a_body_that_never_starts_gets_408_instead_of_hanging() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy = stack.extra_envoy("body-timeout", json!({"body_timeout_ms": 300}), 1);
    let mut s = TcpStream::connect(("127.0.0.1", envoy.port)).unwrap();
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {TEST_KEY}\r\ncontent-length: 50\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_body_timeout"), "{text}");
    assert_eq!(envoy.metric("llm_gateway.body_timeouts_total"), 1);
}
