//! Issue 3: credentials, the auth-service contract (webdis in front of Redis),
//! scopes and products, fail-closed behaviour, caching and revocation.

use std::net::TcpListener;
use std::time::Duration;

use llm_gateway_e2e::client::{send_until, RawResponse};
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

fn chat() -> String {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

fn principal(scopes: &[&str], products: Option<&[&str]>) -> Value {
    json!({"team_id": 42, "user_id": 7, "distinct_id": "user-7", "scopes": scopes, "products": products})
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[test]
fn personal_keys_and_oauth_tokens_in_both_header_forms() {
    let stack = Stack::shared();
    let _g = stack.guard();
    for key in ["phx_auth_valid_personal_key", "pha_auth_valid.oauth-token"] {
        stack.store.put_key(key, &principal(&["llm_gateway:read"], None));
        let b = bearer(key);
        for headers in [vec![("authorization", b.as_str())], vec![("x-api-key", key)], vec![("X-Api-Key", key)]] {
            let resp = stack.post("/v1/chat/completions", &headers, &chat());
            assert_eq!(resp.status, 200, "{key} {headers:?}: {}", resp.body);
        }
        let both = [("authorization", b.as_str()), ("x-api-key", key)];
        assert_eq!(stack.post("/v1/chat/completions", &both, &chat()).status, 200);
        let seen = stack.mock.requests();
        assert!(
            seen.iter().all(|r| r.headers.iter().all(|(_, v)| !v.contains(key))),
            "client key reached the provider"
        );
    }
}

#[test]
fn bad_or_unknown_credentials_are_401_in_the_api_format() {
    let stack = Stack::shared();
    let _g = stack.guard();
    stack.store.put_key("phx_auth_known_a", &principal(&["llm_gateway:read"], None));
    let cases: [(&str, &str, &str, &str); 6] = [
        ("authorization", "", "x", "Missing API key"),
        ("authorization", "Bearer phx_auth_never_provisioned", "x", "Invalid API key"),
        ("authorization", "Bearer sk-openai-style-key", "x", "phx_"),
        ("authorization", "Basic dXNlcjpwYXNz", "x", "Bearer"),
        ("x-api-key", "phc_project_token", "x", "phx_"),
        ("authorization", "Bearer phx_auth_known_a", "phx_auth_other", "different keys"),
    ];
    for (name, value, other, needle) in cases {
        let mut headers = vec![(name, value)];
        if other != "x" {
            headers.push(("x-api-key", other));
        }
        for path in ["/v1/chat/completions", "/v1/messages"] {
            let resp = stack.post(path, &headers, &chat());
            assert_eq!(resp.status, 401, "{headers:?}: {}", resp.body);
            let v = resp.json();
            assert!(v["error"]["message"].as_str().unwrap().contains(needle), "{}", resp.body);
            assert_eq!(v["error"]["type"], "authentication_error");
            assert_eq!(v.get("type").is_some(), path == "/v1/messages");
        }
    }
}

/// A chat call whose `extra` header lines are raw bytes.
fn raw_chat(port: u16, extra: &[u8]) -> RawResponse {
    let body = chat();
    let mut req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(extra);
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body.as_bytes());
    send_until(port, &req, |_| false)
}

/// HTTP lets a header value carry bytes that are not UTF-8 (obs-text, here
/// Latin-1), and Envoy passes them on. The filter reads them like any other
/// value, with U+FFFD for the invalid bytes, and its VM does not trap (a trap
/// would answer 503 with an empty body and drop every request in flight).
#[test]
fn header_values_that_are_not_utf8_neither_trap_nor_authenticate() {
    let stack = Stack::shared();
    let _g = stack.guard();
    stack.store.put_key("phx_auth_latin1", &principal(&["llm_gateway:read"], None));
    let r = raw_chat(stack.envoy.port, b"authorization: Bearer phx_auth_latin1\r\nx-note: caf\xe9\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from mock-openai.", "{v}");

    let r = raw_chat(stack.envoy.port, b"authorization: Bearer phx_auth_latin\xe9\r\n");
    assert_eq!(r.status, 401, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("Malformed API key"), "{v}");
}

#[test]
fn scopes_and_products_are_403() {
    let stack = Stack::shared();
    let _g = stack.guard();
    stack.store.put_key("phx_auth_no_scope", &principal(&["feature_flag:read"], None));
    let resp = stack.post("/v1/chat/completions", &[("x-api-key", "phx_auth_no_scope")], &chat());
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert_eq!(resp.json()["error"]["code"], "insufficient_scope");

    stack.store.put_key("phx_auth_wizard_only", &principal(&["llm_gateway:read"], Some(&["wizard"])));
    let k = [("x-api-key", "phx_auth_wizard_only")];
    assert_eq!(stack.post("/wizard/v1/chat/completions", &k, &chat()).status, 200);
    let resp = stack.post("/array/v1/chat/completions", &k, &chat());
    assert_eq!(resp.status, 403);
    assert_eq!(resp.json()["error"]["code"], "product_not_allowed");
    // Unknown products stay 404 whatever the key.
    assert_eq!(stack.post("/nope/v1/chat/completions", &k, &chat()).status, 404);
}

#[test]
fn auth_service_down_slow_or_garbage_fails_closed_with_503() {
    let stack = Stack::shared();
    let _g = stack.guard();
    // Down: nothing listens on the auth port.
    let dir = stack.dir.join("auth-down");
    std::fs::create_dir_all(&dir).unwrap();
    let dead = DeadPort::new();
    let down = Envoy::start_with(&dir, &test_plugin_config(), Ports { auth: dead.port(), ..stack.ports() }, 1);
    let resp = send(down.port, "POST", "/v1/chat/completions", &[], &chat());
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert_eq!(resp.json()["error"]["code"], "auth_unavailable");
    assert_eq!(down.metric("llm_gateway.auth_unavailable_total"), 1);

    // Slow: accepts and never answers, past a 300 ms auth timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let _held: Vec<_> = silent.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(30));
    });
    let dir = stack.dir.join("auth-slow");
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = test_plugin_config();
    merge(&mut config, json!({"auth": {"timeout_ms": 300}}));
    let slow = Envoy::start_with(&dir, &config, Ports { auth: silent_port, ..stack.ports() }, 1);
    let resp = send(slow.port, "POST", "/v1/messages", &[], &chat());
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert_eq!(resp.json()["type"], "error");

    // Garbage: the auth service answers 200 with something that is not a principal.
    stack.store.command(&["SET", &format!("llmgw:key:{}", sha256_hex("phx_auth_garbage")), "<html>oops</html>"]);
    let resp = stack.post("/v1/chat/completions", &[("x-api-key", "phx_auth_garbage")], &chat());
    assert_eq!(resp.status, 503, "{}", resp.body);
    assert_eq!(stack.mock.requests().iter().filter(|r| r.header("x-api-key") == Some("phx_auth_garbage")).count(), 0);
}

#[test]
fn cached_keys_make_no_lookup_and_concurrent_cold_requests_make_one() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy = stack.extra_envoy("auth-count", json!({}), 1);
    let lookups = || envoy.stat("cluster.auth.upstream_rq_total");
    stack.store.put_key("phx_auth_counted", &principal(&["llm_gateway:read"], None));
    let k = [("x-api-key", "phx_auth_counted")];
    for _ in 0..5 {
        assert_eq!(send(envoy.port, "POST", "/v1/chat/completions", &k, &chat()).status, 200);
    }
    assert_eq!(lookups(), 1, "five requests with one key: one lookup");
    assert_eq!(envoy.metric("llm_gateway.auth_cache_hits_total"), 4);

    stack.store.put_key("phx_auth_cold_burst", &principal(&["llm_gateway:read"], None));
    let port = envoy.port;
    let threads: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                send(port, "POST", "/v1/chat/completions", &[("x-api-key", "phx_auth_cold_burst")], &chat()).status
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(lookups(), 2, "sixteen concurrent requests with one cold key: one more lookup");
}

#[test]
fn workers_share_positive_answers() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy = stack.extra_envoy("auth-shared", json!({}), 2);
    stack.store.put_key("phx_auth_two_workers", &principal(&["llm_gateway:read"], None));
    for _ in 0..12 {
        let r = send(envoy.port, "POST", "/v1/chat/completions", &[("x-api-key", "phx_auth_two_workers")], &chat());
        assert_eq!(r.status, 200);
    }
    assert_eq!(envoy.stat("cluster.auth.upstream_rq_total"), 1, "one lookup for the whole process");
}

#[test]
fn revocation_takes_effect_within_the_ttls() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let ttl = json!({"auth": {"cache_ttl_seconds": 1, "negative_cache_ttl_seconds": 1}});
    let envoy = stack.extra_envoy("auth-ttl", ttl, 1);
    let post = |key: &str| send(envoy.port, "POST", "/v1/chat/completions", &[("x-api-key", key)], &chat()).status;

    stack.store.put_key("phx_auth_revoked", &principal(&["llm_gateway:read"], None));
    assert_eq!(post("phx_auth_revoked"), 200);
    stack.store.delete_key("phx_auth_revoked");
    assert_eq!(post("phx_auth_revoked"), 200, "cached within the positive TTL");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(post("phx_auth_revoked"), 401, "revoked after the positive TTL");

    assert_eq!(post("phx_auth_late_key"), 401);
    stack.store.put_key("phx_auth_late_key", &principal(&["llm_gateway:read"], None));
    assert_eq!(post("phx_auth_late_key"), 401, "negative answer cached");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(post("phx_auth_late_key"), 200, "known after the negative TTL");
}

#[test]
fn only_the_key_hash_reaches_the_auth_service() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let key = "phx_auth_hash_only_check";
    stack.store.put_key(key, &principal(&["llm_gateway:read"], None));
    assert_eq!(stack.post("/v1/chat/completions", &[("x-api-key", key)], &chat()).status, 200);
    let webdis_log = std::fs::read_to_string(stack.dir.join("webdis.log")).unwrap_or_default();
    assert!(!webdis_log.contains(key));
    assert!(!stack.envoy.log_text().contains(key));
}
