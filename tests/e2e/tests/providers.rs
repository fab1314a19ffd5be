//! Issue 20, item 4: the provider set-ups enterprises run, through a real Envoy
//! rendered from the shipped template.
//!
//! - Bedrock on IAM credentials: the filter sends no key and Envoy's own
//!   `aws_request_signing`, an upstream filter of the template's `bedrock`
//!   cluster, signs each request; the mock checks the signature as AWS does,
//!   botocore (AWS's own signer) agrees with it, and a wrong secret is refused.
//! - Azure OpenAI: the template's `azure` cluster, the `api-key` header, the v1
//!   and the deployment-based paths, a model mapped to its deployment and priced
//!   as the model, every client format.
//! - Key pools: several keys in one variable, used in turn; a key answering 429
//!   rests for its `Retry-After`; when all rest, the one resting least is used.

use std::io::Write;
use std::process::{Command, Stdio};

use llm_gateway_e2e::http1::Request;
use llm_gateway_e2e::sigv4::{self, Authorization, AwsCredentials};
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

const SONNET_ID: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// An Envoy of the shared stack's neighbours with this plugin-config overlay and
/// environment, on one worker (key pools are per worker).
fn envoy(stack: &Stack, name: &str, overlay: Value, env: &[(&str, String)]) -> Envoy {
    let dir = stack.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = test_plugin_config();
    merge(&mut config, overlay);
    Envoy::try_start_full(&dir, &config, stack.ports(), 1, &wasm_path(), "", env)
        .unwrap_or_else(|log| panic!("envoy did not start:\n{}", log_tail(&log)))
}

fn post(envoy: &Envoy, path: &str, marker: &str, extra: &[(&str, &str)], body: &Value) -> Response {
    let mut headers = vec![("x-test-marker", marker), ("x-posthog-trace-id", marker)];
    headers.extend_from_slice(extra);
    send(envoy.port, "POST", path, &headers, &body.to_string())
}

/// The request the mock received with `x-test-marker: marker`.
fn upstream(stack: &Stack, marker: &str) -> Request {
    let found: Vec<Request> =
        stack.mock.requests().into_iter().filter(|r| r.header("x-test-marker") == Some(marker)).collect();
    assert_eq!(found.len(), 1, "the mock received {} requests marked {marker}", found.len());
    found.into_iter().next().unwrap()
}

/// The text of an SSE body's Anthropic text deltas, or OpenAI chunks' content.
fn streamed_text(body: &str) -> String {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["delta"]["text"].as_str().or_else(|| v["choices"][0]["delta"]["content"].as_str()).map(str::to_owned)
        })
        .collect()
}

// ------------------------------------------------------------ Bedrock, SigV4

fn sigv4_overlay() -> Value {
    json!({"providers": {"bedrock": {"cluster": "bedrock", "auth": "sigv4", "timeout_ms": 5000}}})
}

/// What botocore, AWS's signer, computes for a request the mock received, over
/// the headers Envoy signed.
fn botocore_signature(req: &Request, credentials: &AwsCredentials) -> String {
    let auth = Authorization::parse(req.header("authorization").unwrap()).unwrap();
    let signed: serde_json::Map<String, Value> = auth
        .signed_headers
        .iter()
        .map(|name| (name.clone(), json!(req.header(name).unwrap_or_else(|| panic!("signed {name} not received")))))
        .collect();
    let input = json!({
        "method": req.method,
        "url": format!("https://{}{}", req.header("host").unwrap(), req.path),
        "headers": signed,
        "body": String::from_utf8(req.body.clone()).unwrap(),
        "access_key": credentials.access_key_id,
        "secret_key": credentials.secret_access_key,
        "token": credentials.session_token,
        "region": auth.region,
        "amz_date": req.header("x-amz-date").unwrap(),
    });
    // botocore's canonical request, string to sign and signature, over exactly the
    // headers Envoy signed (botocore would otherwise choose its own set).
    const SCRIPT: &str = r#"
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials
r = json.load(sys.stdin)
req = AWSRequest(method=r["method"], url=r["url"], data=r["body"].encode(), headers=r["headers"])
req.context["timestamp"] = r["amz_date"]
auth = SigV4Auth(Credentials(r["access_key"], r["secret_key"], r["token"]), "bedrock", r["region"])
def signed_only(request):
    headers = HTTPHeaders()
    for name, value in r["headers"].items():
        headers[name] = value
    return headers
auth.headers_to_sign = signed_only
canonical = auth.canonical_request(req)
print(auth.signature(auth.string_to_sign(req, canonical), req))
"#;
    let python = repo_root().join(".venv/bin/python");
    let mut child = Command::new(&python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (make setup installs botocore)", python.display()));
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "botocore: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// What the signer sent: the gateway's credential gone, Envoy's SigV4 in its place.
fn assert_signed(req: &Request, credentials: &AwsCredentials, what: &str) {
    let authorization = req.header("authorization").unwrap_or_else(|| panic!("{what}: not signed"));
    let auth = Authorization::parse(authorization).unwrap_or_else(|| panic!("{what}: {authorization}"));
    assert_eq!(
        (auth.access_key_id.as_str(), auth.region.as_str(), auth.service.as_str()),
        (credentials.access_key_id.as_str(), "us-east-1", "bedrock"),
        "{what}"
    );
    assert_eq!(
        req.header("host"),
        Some("bedrock-runtime.us-east-1.amazonaws.com"),
        "{what}: signed for Bedrock's host"
    );
    assert_eq!(req.header("x-amz-security-token"), credentials.session_token.as_deref(), "{what}");
    assert_eq!(req.header("x-amz-content-sha256"), Some(sigv4::sha256_hex(&req.body).as_str()), "{what}: body hash");
    for signed in ["host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"] {
        assert!(auth.signed_headers.iter().any(|h| h == signed), "{what}: {signed} unsigned");
    }
    for internal in &auth.signed_headers {
        assert!(!internal.starts_with("x-envoy-") && internal != "x-request-id", "{what}: signed {internal}");
    }
    assert!(!authorization.contains(BEDROCK_KEY), "{what}: the Bedrock API key went out");
    assert_eq!(
        sigv4::verify(credentials, "us-east-1", &req.method, &req.path, &req.headers, &req.body),
        Ok(()),
        "{what}"
    );
    assert_eq!(botocore_signature(req, credentials), auth.signature, "{what}: botocore disagrees");
}

#[test]
fn bedrock_on_iam_credentials_is_signed_by_envoy_for_every_client_format() {
    let stack = Stack::shared();
    let credentials = aws_credentials();
    let envoy = envoy(stack, "sigv4", sigv4_overlay(), &aws_env(&credentials));
    let _g = envoy.guard();
    let messages = json!({"role": "user", "content": "Hello"});

    // Messages, as is (InvokeModel) and streaming (the event stream, decoded to SSE).
    let body = json!({"model": SONNET_ID, "max_tokens": 64, "messages": [messages]});
    let r = post(&envoy, "/v1/messages", "sigv4-messages", &[], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["content"][0]["text"], "Hello from mock-bedrock.");
    let req = upstream(stack, "sigv4-messages");
    assert_eq!(req.path, "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke");
    assert_signed(&req, &credentials, "messages");

    let body = json!({"model": SONNET_ID, "max_tokens": 64, "stream": true, "messages": [messages]});
    let r = post(&envoy, "/v1/messages", "sigv4-stream", &[], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(streamed_text(&r.body), "Hello from mock-bedrock.");
    assert_signed(&upstream(stack, "sigv4-stream"), &credentials, "stream");

    // A Chat client on a Claude model sent to Bedrock: the translated body is what is signed.
    let body = json!({"model": "claude-sonnet-4-5", "messages": [messages]});
    let r = post(&envoy, "/v1/chat/completions", "sigv4-chat", &[("x-posthog-provider", "bedrock")], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from mock-bedrock.");
    let req = upstream(stack, "sigv4-chat");
    assert_eq!(serde_json::from_slice::<Value>(&req.body).unwrap()["anthropic_version"], "bedrock-2023-05-31");
    assert_signed(&req, &credentials, "chat");

    // Bedrock's CountTokens is signed too.
    let body = json!({"model": SONNET_ID, "messages": [messages]});
    let r = post(&envoy, "/v1/messages/count_tokens", "sigv4-count", &[], &body);
    assert_eq!((r.status, r.json()["input_tokens"].as_u64()), (200, Some(15)), "{}", r.body);
    assert_signed(&upstream(stack, "sigv4-count"), &credentials, "count_tokens");

    // The calls are booked as Bedrock's, with the provider's usage.
    for trace in ["sigv4-messages", "sigv4-stream", "sigv4-chat"] {
        let p = stack.sink.properties(trace);
        assert_eq!(
            (p["$ai_provider"].as_str(), p["$ai_http_status"].as_u64()),
            (Some("bedrock"), Some(200)),
            "{trace}"
        );
        assert_eq!((p["$ai_input_tokens"].as_u64(), p["$ai_output_tokens"].as_u64()), (Some(25), Some(15)), "{trace}");
    }
    assert!(!envoy.log_text().contains(AWS_SECRET_KEY));
}

#[test]
fn a_wrong_aws_secret_is_refused_by_bedrock_and_the_client_gets_its_403() {
    let stack = Stack::shared();
    let wrong = AwsCredentials { secret_access_key: "not/the/secret/0000000000".into(), ..aws_credentials() };
    let envoy = envoy(stack, "sigv4-wrong", sigv4_overlay(), &aws_env(&wrong));
    let _g = envoy.guard();
    let body = json!({"model": SONNET_ID, "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]});
    let r = post(&envoy, "/v1/messages", "sigv4-wrong", &[], &body);
    assert_eq!(r.status, 403, "{}", r.body);
    let error = r.json();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "authentication_error", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("signature we calculated does not match"), "{error}");
    // Signed, with the wrong secret: the mock (as AWS) and botocore both say so.
    let req = upstream(stack, "sigv4-wrong");
    let auth = Authorization::parse(req.header("authorization").unwrap()).unwrap();
    assert!(sigv4::verify(&aws_credentials(), "us-east-1", &req.method, &req.path, &req.headers, &req.body).is_err());
    assert_eq!(botocore_signature(&req, &wrong), auth.signature, "signed with the secret Envoy was given");
    assert_ne!(botocore_signature(&req, &aws_credentials()), auth.signature);
    let p = stack.sink.properties("sigv4-wrong");
    assert_eq!((p["$ai_http_status"].as_u64(), p["$ai_is_error"].as_bool()), (Some(403), Some(true)));
}

#[test]
fn bedrock_api_keys_still_go_as_bearer_tokens_beside_the_signer() {
    // The default (`auth: api_key`) on the same cluster: no signer is rendered.
    let stack = Stack::shared();
    let envoy = envoy(stack, "bedrock-key", json!({"providers": {"bedrock": {"cluster": "bedrock"}}}), &[]);
    let _g = envoy.guard();
    let body = json!({"model": SONNET_ID, "max_tokens": 64, "messages": [{"role": "user", "content": "Hello"}]});
    let r = post(&envoy, "/v1/messages", "bedrock-key", &[], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let req = upstream(stack, "bedrock-key");
    assert_eq!(req.header("authorization"), Some(format!("Bearer {BEDROCK_KEY}").as_str()));
    assert!(req.header("x-amz-date").is_none());
}

// ------------------------------------------------------------ Azure OpenAI

fn azure_overlay(api_version: Option<&str>) -> Value {
    let mut azure = json!({"cluster": "azure", "authority": AZURE_AUTHORITY, "timeout_ms": 5000});
    if let Some(v) = api_version {
        azure["api_version"] = json!(v);
    }
    json!({
        "providers": {"azure": azure},
        "models": {"gpt-4o": {"provider": "azure", "deployment": "prod-4o"},
                   "gpt-4o-mini": {"provider": "azure"}},
    })
}

/// Azure got the gateway's key in `api-key` and nothing in `authorization`.
fn assert_azure_request(req: &Request, path: &str, model: &str, what: &str) {
    assert_eq!(req.path, path, "{what}");
    assert_eq!(req.header("host"), Some(AZURE_AUTHORITY), "{what}");
    assert_eq!(req.header("api-key"), Some(AZURE_KEY), "{what}");
    assert!(req.header("authorization").is_none(), "{what}: the client's credential or a Bearer went out");
    assert_eq!(serde_json::from_slice::<Value>(&req.body).unwrap()["model"], model, "{what}");
}

#[test]
fn azure_openai_v1_paths_for_every_client_format() {
    let stack = Stack::shared();
    let envoy = envoy(stack, "azure-v1", azure_overlay(None), &[]);
    let _g = envoy.guard();
    let hello = json!([{"role": "user", "content": "Hello"}]);

    // Chat, native: the deployment in the body's model, priced as gpt-4o.
    let r = post(&envoy, "/v1/chat/completions", "azure-chat", &[], &json!({"model": "gpt-4o", "messages": hello}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from mock-azure.");
    assert_azure_request(&upstream(stack, "azure-chat"), "/openai/v1/chat/completions", "prod-4o", "chat");
    let p = stack.sink.properties("azure-chat");
    assert_eq!(p["$ai_provider"], "azure");
    assert_eq!(p["$ai_base_url"], format!("https://{AZURE_AUTHORITY}/openai/v1"));
    assert_eq!((p["$ai_input_tokens"].as_u64(), p["$ai_output_tokens"].as_u64()), (Some(19), Some(10)));
    // Azure's answer names the deployment here; the price is the model's (gpt-4o: $2.50 in, $10 out).
    assert_eq!(p["$ai_cost_model"], "gpt-4o", "{p}");
    let cost = p["$ai_total_cost_usd"].as_f64().unwrap();
    assert!((cost - (19.0 * 2.5 + 10.0 * 10.0) * 1e-6).abs() < 1e-12, "{cost}");

    // Chat streaming: Azure's prompt-filter chunk first, usage asked for and hidden.
    let body = json!({"model": "gpt-4o", "stream": true, "messages": hello});
    let r = post(&envoy, "/v1/chat/completions", "azure-chat-stream", &[], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(streamed_text(&r.body), "Hello from mock-azure.");
    assert!(!r.body.contains("\"usage\":{"), "the client did not ask for usage: {}", r.body);
    let req = upstream(stack, "azure-chat-stream");
    assert_eq!(serde_json::from_slice::<Value>(&req.body).unwrap()["stream_options"]["include_usage"], true);
    assert_eq!(stack.sink.properties("azure-chat-stream")["$ai_output_tokens"], 10);

    // A Messages client (Claude Code's format), streaming: translated to Chat.
    let body = json!({"model": "gpt-4o", "max_tokens": 100000, "stream": true, "messages": hello});
    let r = post(&envoy, "/v1/messages", "azure-messages", &[], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.starts_with("event: message_start"), "{}", r.body);
    assert_eq!(streamed_text(&r.body), "Hello from mock-azure.");
    assert!(r.body.contains("event: message_stop"), "{}", r.body);
    let req = upstream(stack, "azure-messages");
    assert_azure_request(&req, "/openai/v1/chat/completions", "prod-4o", "messages");
    let sent: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(sent["max_completion_tokens"], 16384, "clamped to gpt-4o's limit, not the deployment name's");
    let p = stack.sink.properties("azure-messages");
    assert_eq!((p["$ai_api_format"].as_str(), p["$ai_provider"].as_str()), (Some("anthropic_messages"), Some("azure")));

    // Responses, native; a model without a deployment goes by its own name.
    let r = post(&envoy, "/v1/responses", "azure-responses", &[], &json!({"model": "gpt-4o-mini", "input": "Hello"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["output"][0]["content"][0]["text"], "Hello from mock-azure.");
    assert_azure_request(&upstream(stack, "azure-responses"), "/openai/v1/responses", "gpt-4o-mini", "responses");
    assert_eq!(stack.sink.properties("azure-responses")["$ai_input_tokens"], 37);

    // Azure's errors come back in the client's format with their status.
    let r = post(
        &envoy,
        "/v1/messages",
        "azure-429",
        &[("x-mock-status", "429")],
        &json!({"model": "gpt-4o",
        "max_tokens": 5, "messages": hello}),
    );
    assert_eq!((r.status, r.json()["error"]["type"].as_str()), (429, Some("rate_limit_error")), "{}", r.body);
}

#[test]
fn azure_openai_deployment_paths_with_an_api_version() {
    let stack = Stack::shared();
    let envoy = envoy(stack, "azure-deployments", azure_overlay(Some("2025-04-01-preview")), &[]);
    let _g = envoy.guard();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]});
    let r = post(&envoy, "/v1/chat/completions", "azure-deployment", &[], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from mock-azure.");
    let path = "/openai/deployments/prod-4o/chat/completions?api-version=2025-04-01-preview";
    assert_azure_request(&upstream(stack, "azure-deployment"), path, "prod-4o", "deployment chat");
    let p = stack.sink.properties("azure-deployment");
    assert_eq!(p["$ai_base_url"], format!("https://{AZURE_AUTHORITY}/openai"));
    assert_eq!(p["$ai_cost_model"], "gpt-4o");

    // Azure's Responses API is not per deployment: the deployment goes in the body.
    let r =
        post(&envoy, "/v1/responses", "azure-deployment-responses", &[], &json!({"model": "gpt-4o", "input": "Hi"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let path = "/openai/responses?api-version=2025-04-01-preview";
    assert_azure_request(&upstream(stack, "azure-deployment-responses"), path, "prod-4o", "deployment responses");
}

// ------------------------------------------------------------ key pools

#[test]
fn provider_keys_are_used_in_turn_and_a_key_answering_429_rests_for_its_retry_after() {
    let stack = Stack::shared();
    let pool = format!("{OPENAI_KEY}, {OPENAI_SECOND_KEY}");
    let envoy = envoy(stack, "key-pool", json!({}), &[("LLM_GATEWAY_OPENAI_API_KEY", pool)]);
    let _g = envoy.guard();
    let mut n = 0;
    // One call; returns the key it went out with (`first`/`second`) and the client's status.
    let mut call = |extra: &[(&str, &str)]| {
        n += 1;
        let marker = format!("pool-{n}");
        let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]});
        let r = post(&envoy, "/v1/chat/completions", &marker, extra, &body);
        let req = upstream(stack, &marker);
        let key = match req.header("authorization") {
            Some(a) if a == format!("Bearer {OPENAI_KEY}") => "first",
            Some(a) if a == format!("Bearer {OPENAI_SECOND_KEY}") => "second",
            other => panic!("{marker}: sent {other:?}"),
        };
        (key, r.status)
    };
    let keys: Vec<(&str, u16)> = (0..3).map(|_| call(&[])).collect();
    assert_eq!(keys, [("first", 200), ("second", 200), ("first", 200)], "used in turn");

    // The second key answers 429 with Retry-After 300: it rests, the first serves alone.
    let limited = call(&[("x-mock-status", "429"), ("x-mock-retry-after", "300")]);
    assert_eq!(limited, ("second", 429), "the client gets the provider's 429");
    let keys: Vec<&str> = (0..3).map(|_| call(&[]).0).collect();
    assert_eq!(keys, ["first", "first", "first"]);

    // The first answers 429 too, for 120 s (an HTTP date would do as well): both rest,
    // and the one whose rest ends first is used, counted.
    assert_eq!(call(&[("x-mock-status", "429"), ("x-mock-retry-after", "120")]), ("first", 429));
    assert_eq!(call(&[]), ("first", 200), "the key resting least");
    let metrics = envoy.metrics();
    assert_eq!(metrics.get("llm_gateway.keys_rested_openai_total"), Some(&2), "{metrics:?}");
    assert_eq!(metrics.get("llm_gateway.keys_all_resting_openai_total"), Some(&1), "{metrics:?}");
    assert_eq!(metrics.get("llm_gateway.keys_rested_anthropic_total"), Some(&0));

    // The log names the key by its place in the pool, never the key.
    let log = envoy.log_text();
    assert!(log.contains("openai key #1 answered 429; resting it 300000 ms"), "{}", log_tail(&log));
    assert!(!log.contains(OPENAI_KEY) && !log.contains(OPENAI_SECOND_KEY));
}
