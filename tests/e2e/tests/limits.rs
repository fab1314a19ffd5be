//! Issue 5: cost-based rate limits and the monthly budget, end to end through
//! Envoy, webdis and Redis.

use std::time::Duration;

use llm_gateway_e2e::calls::principal;
use llm_gateway_e2e::fault_proxy::{Fault, FaultProxy};
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

/// A model with test prices: $1000 per 1M input tokens, $1 per 1M output, so a
/// call's cost is set by the usage the mock reports (and its estimate by the body).
fn overlay(limits: Value) -> Value {
    json!({
        "models": {"priced-model": {"provider": "openai"}},
        "pricing": {"priced-model": {"input": 1000.0, "output": 1.0}},
        "limits": limits,
    })
}

/// A chat call by `user` costing `input_tokens` × $0.001 (plus one output token).
fn costly(envoy: &Envoy, key: &str, user: &str, input_tokens: u64, path: &str) -> Response {
    let usage = json!({"prompt_tokens": input_tokens, "completion_tokens": 1, "total_tokens": input_tokens + 1});
    let body = json!({"model": "priced-model", "user": user, "max_tokens": 1,
        "messages": [{"role": "user", "content": "x"}]});
    let headers = [("x-api-key", key), ("x-mock-usage", &usage.to_string())];
    send(envoy.port, "POST", path, &headers, &body.to_string())
}

fn wait_for_records() {
    // Spend is flushed from the root every record_flush_ms (250 ms).
    std::thread::sleep(Duration::from_millis(700));
}

/// A team's user-window keys in Redis and the micro-USD each holds.
fn user_windows(stack: &Stack, team: u64) -> Vec<(String, f64)> {
    let keys = stack.store.command(&["KEYS", &format!("llmgw:{{t:{team}}}:rl:u:*")]);
    keys["KEYS"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let k = k.as_str().unwrap();
            let spent = stack.store.command(&["GET", k])["GET"].as_str().unwrap().parse::<f64>().unwrap();
            (k.to_string(), spent)
        })
        .collect()
}

#[test]
fn a_user_over_their_window_gets_429_while_another_user_passes() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy =
        stack.extra_envoy("limits-user", overlay(json!({"user": [{"window_seconds": 3600, "limit_usd": 0.3}]})), 1);
    let key = "phx_limits_user_window";
    stack.store.put_key(key, &principal(101, json!({})));
    for i in 0..2 {
        let r = costly(&envoy, key, "alice", 150, "/v1/chat/completions");
        assert_eq!(r.status, 200, "call {i}: {}", r.body);
        assert_eq!(r.header("x-ratelimit-limit-usd"), Some("0.3"));
        assert!(r.header("x-ratelimit-remaining-usd").is_some());
        let reset: u64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset <= 3600);
        wait_for_records();
    }
    let denied = costly(&envoy, key, "alice", 150, "/v1/chat/completions");
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert!(denied.header("retry-after").unwrap().parse::<u64>().unwrap() <= 3600);
    assert_eq!(denied.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(denied.json()["error"]["type"], "rate_limit_error");
    // Anthropic clients get their own error shape.
    let denied = send(
        envoy.port,
        "POST",
        "/v1/messages",
        &[("x-api-key", key)],
        &json!({"model": "priced-model", "max_tokens": 1, "metadata": {"user_id": "alice"},
            "messages": [{"role": "user", "content": "x"}]})
        .to_string(),
    );
    assert_eq!(denied.status, 429, "{}", denied.body);
    assert_eq!(denied.json()["type"], "error");
    assert_eq!(denied.json()["error"]["type"], "rate_limit_error");
    assert_eq!(costly(&envoy, key, "bob", 150, "/v1/chat/completions").status, 200, "another user still passes");
    assert_eq!(envoy.metric("llm_gateway.rate_limited_total"), 2);
    assert!(envoy.metric("llm_gateway.spend_records_total") >= 1);
}

#[test]
fn product_scope_and_team_override_from_the_principal() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let limits = json!({"user": [], "product": [{"window_seconds": 3600, "limit_usd": 0.16}]});
    let envoy = stack.extra_envoy("limits-product", overlay(limits), 1);
    let key = "phx_limits_product";
    stack.store.put_key(key, &principal(102, json!({})));
    assert_eq!(costly(&envoy, key, "u1", 150, "/wizard/v1/chat/completions").status, 200);
    wait_for_records();
    assert_eq!(costly(&envoy, key, "u2", 150, "/wizard/v1/chat/completions").status, 429, "product total is shared");
    assert_eq!(costly(&envoy, key, "u2", 150, "/django/v1/chat/completions").status, 200, "other products unaffected");

    // The principal tightens its team's limit.
    let team_key = "phx_limits_team_override";
    let limits = json!({"team": [{"window_seconds": 3600, "limit_usd": 0.1}]});
    stack.store.put_key(team_key, &principal(103, json!({"limits": limits})));
    assert_eq!(costly(&envoy, team_key, "t1", 90, "/array/v1/chat/completions").status, 200);
    wait_for_records();
    let r = costly(&envoy, team_key, "t2", 90, "/array/v1/chat/completions");
    assert_eq!(r.status, 429);
    assert!(r.body.contains("per-team"), "{}", r.body);
}

#[test]
fn windows_reset_and_their_keys_expire() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy =
        stack.extra_envoy("limits-reset", overlay(json!({"user": [{"window_seconds": 3, "limit_usd": 0.1}]})), 1);
    let key = "phx_limits_reset";
    stack.store.put_key(key, &principal(104, json!({})));
    // The check creates the window key (with its TTL) when it reserves; look right after.
    let keys = (0..3)
        .find_map(|_| {
            assert_eq!(costly(&envoy, key, "carol", 150, "/v1/chat/completions").status, 200);
            let keys: Vec<String> = user_windows(stack, 104).into_iter().map(|(k, _)| k).collect();
            (!keys.is_empty()).then_some(keys)
        })
        .expect("a window key after a checked call");
    for k in &keys {
        let ttl = stack.store.command(&["PTTL", k])["PTTL"].as_i64().unwrap();
        assert!(ttl == -2 || (ttl > 0 && ttl <= 3000), "{k} has TTL {ttl}");
    }
    wait_for_records();
    // Over the limit now (or in a fresh window): once Retry-After has passed, allowed again.
    let r = costly(&envoy, key, "carol", 150, "/v1/chat/completions");
    if r.status == 429 {
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(wait <= 3);
        std::thread::sleep(Duration::from_millis(wait * 1000 + 300));
        assert_eq!(costly(&envoy, key, "carol", 10, "/v1/chat/completions").status, 200, "allowed after the window");
    }
    std::thread::sleep(Duration::from_millis(3200));
    for k in &keys {
        assert_eq!(stack.store.command(&["EXISTS", k])["EXISTS"], 0, "{k} outlived its window");
    }
}

#[test]
fn budget_tiers_headers_and_the_block() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy = stack.extra_envoy("limits-budget", overlay(json!({"user": []})), 1);
    let cases = [(0, "ok"), (860_000, "warn"), (960_000, "engage"), (1_000_000, "exceeded")];
    for (i, (spent_micro, tier)) in cases.into_iter().enumerate() {
        let team = 110 + i as i64;
        let key = format!("phx_limits_budget_{team}");
        stack.store.put_key(&key, &principal(team, json!({"monthly_budget_usd": 1.0})));
        if spent_micro > 0 {
            stack.store.command(&["SET", &budget_key(team), &spent_micro.to_string(), "EX", "600"]);
        }
        let r = costly(&envoy, &key, "dave", 1, "/v1/chat/completions");
        assert_eq!(r.header("x-posthog-budget"), Some(tier), "{spent_micro}: {}", r.body);
        if tier == "exceeded" {
            assert_eq!(r.status, 429);
            assert_eq!(r.json()["error"]["code"], "budget_exceeded");
        } else {
            assert_eq!(r.status, 200);
            let remaining: f64 = r.header("x-posthog-budget-remaining-usd").unwrap().parse().unwrap();
            assert!((remaining - (1.0 - spent_micro as f64 / 1e6)).abs() < 1e-6, "{remaining}");
        }
    }
    // Spend from calls lands in the month key that the budget reads.
    let team = 120;
    let key = "phx_limits_budget_spend";
    stack.store.put_key(key, &principal(team, json!({"monthly_budget_usd": 10.0})));
    assert_eq!(costly(&envoy, key, "erin", 150, "/v1/chat/completions").status, 200);
    wait_for_records();
    let spent: f64 = stack.store.command(&["GET", &budget_key(team)])["GET"].as_str().unwrap().parse().unwrap();
    assert!((spent - 150_001.0).abs() <= 1.0, "recorded {spent} micro-USD");
}

#[test]
fn engage_tier_turns_save_mode_on() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy = stack.extra_envoy("limits-engage", json!({"limits": {"user": []}}), 1);
    let team = 130;
    let key = "phx_limits_engage";
    stack.store.put_key(key, &principal(team, json!({"monthly_budget_usd": 1.0})));
    stack.store.command(&["SET", &budget_key(team), "970000", "EX", "600"]);
    let body = r#"{"model":"claude-sonnet-4-6","max_tokens":5,"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}]}"#;
    let headers = [("x-api-key", key), ("x-test-marker", "limits-engage")];
    let r = send(envoy.port, "POST", "/posthog_code/v1/messages", &headers, body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-posthog-budget"), Some("engage"));
    let seen = stack.mock.requests().into_iter().find(|r| r.header("x-test-marker") == Some("limits-engage")).unwrap();
    assert!(String::from_utf8(seen.body).unwrap().contains(r#""ttl":"1h""#));
}

#[test]
fn store_down_fails_open_and_counts_it() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let dir = stack.dir.join("limits-down");
    std::fs::create_dir_all(&dir).unwrap();
    let dead = DeadPort::new();
    let ports = Ports { webdis: dead.port(), ..stack.ports() };
    let envoy = Envoy::start_with(&dir, &test_plugin_config(), ports, 1);
    for _ in 0..3 {
        let r = send(
            envoy.port,
            "POST",
            "/v1/chat/completions",
            &[],
            &json!({"model": "gpt-4o", "messages": []}).to_string(),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-posthog-budget"), Some("unknown"));
    }
    assert_eq!(envoy.metric("llm_gateway.limits_unavailable_total"), 3);
    let log = envoy.log_text();
    assert_eq!(log.matches("limits store unavailable").count(), 1, "logged once per interval, not per request");

    // Configured to fail closed: 503.
    let dir = stack.dir.join("limits-down-closed");
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = test_plugin_config();
    merge(&mut config, json!({"limits": {"fail_open": false}}));
    let envoy = Envoy::start_with(&dir, &config, ports, 1);
    let r =
        send(envoy.port, "POST", "/v1/chat/completions", &[], &json!({"model": "gpt-4o", "messages": []}).to_string());
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], "limits_unavailable");
}

#[test]
fn concurrent_requests_overspend_only_by_estimation_error() {
    let stack = Stack::shared();
    let _g = stack.guard();
    // Limit $1.00; each call is estimated at ~$0.15 from its body but really costs $0.18
    // (a 20% underestimate): the overspend must stay within allowed calls x that error.
    let envoy =
        stack.extra_envoy("limits-race", overlay(json!({"user": [{"window_seconds": 3600, "limit_usd": 1.0}]})), 2);
    let key = "phx_limits_race";
    stack.store.put_key(key, &principal(140, json!({})));
    let filler = "y".repeat(480);
    let port = envoy.port;
    let threads: Vec<_> = (0..24)
        .map(|_| {
            let filler = filler.clone();
            std::thread::spawn(move || {
                let usage = json!({"prompt_tokens": 180, "completion_tokens": 1, "total_tokens": 181});
                let body = json!({"model": "priced-model", "user": "racer", "max_tokens": 1,
                    "messages": [{"role": "user", "content": filler}]});
                let headers = [("x-api-key", key), ("x-mock-usage", &usage.to_string())];
                send(port, "POST", "/v1/chat/completions", &headers, &body.to_string()).status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 24 - allowed);
    // Leases end after 1 s and give back what they did not use; then the spend is flushed.
    std::thread::sleep(Duration::from_millis(1600));
    // An hour's window, so the key outlives the wait above; two keys if the run straddled
    // a window boundary: judge each window alone.
    let mut counted = 0;
    for (_, spent) in user_windows(stack, 140) {
        let spent = spent / 1e6;
        let calls = (spent / 0.18).round() as usize;
        counted += calls;
        let overspend = spent - 1.0;
        println!("concurrency: 24 calls, {calls} allowed in this window, spend ${spent:.6}, overspend ${overspend:.6}");
        assert!(calls <= 6, "{calls} calls passed a limit with room for 6 estimates");
        assert!(overspend <= calls as f64 * 0.03 + 0.001, "overspend {overspend} beyond the estimation error");
    }
    assert_eq!(counted, allowed, "every allowed call is recorded");
}

#[test]
fn leases_admit_locally_and_the_window_still_stops_at_its_limit() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let store = FaultProxy::start(stack.store.webdis_port);
    let dir = stack.dir.join("limits-lease");
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = test_plugin_config();
    merge(&mut config, overlay(json!({"user": [{"window_seconds": 3600, "limit_usd": 1.0}]})));
    let envoy = Envoy::start_with(&dir, &config, Ports { webdis: store.port(), ..stack.ports() }, 1);
    let key = "phx_limits_lease";
    stack.store.put_key(key, &principal(150, json!({})));
    // Each call is estimated at $0.024001 from its body and really costs that.
    let call = |user: &str| costly(&envoy, key, user, 24, "/v1/chat/completions");
    let local = || envoy.metric("llm_gateway.limits_local_admits_total");
    // The first call asks Redis, which reserves its estimate and a lease: 4 more
    // estimates, a tenth of the $1 window (the rate is not known yet). The next
    // calls are admitted on it, and on its renewals, which the root asks for in
    // the background once half is used.
    let mut remaining = Vec::new();
    for i in 0..10 {
        let r = call("lena");
        assert_eq!(r.status, 200, "{}", r.body);
        remaining.push(r.header("x-ratelimit-remaining-usd").unwrap().parse::<f64>().unwrap());
        if i == 0 {
            assert_eq!(local(), 0, "a cold subject asks Redis");
        }
    }
    assert!(local() >= 4, "calls admitted on the lease: {}", local());
    assert!(remaining[..9].windows(2).all(|w| w[1] < w[0]), "admissions count against the window: {remaining:?}");
    // Leases near the limit do not fit: every call asks Redis, which stops the window at $1.
    let mut allowed = 10;
    while call("lena").status == 200 {
        allowed += 1;
        assert!(allowed < 60, "never limited");
    }
    // Once the leases end (1 s) and what they did not use is given back, the window holds
    // exactly the calls' real cost.
    std::thread::sleep(Duration::from_millis(1500));
    let spent: f64 = user_windows(stack, 150).iter().map(|(_, v)| v).sum();
    assert!((spent - allowed as f64 * 24_001.0).abs() <= allowed as f64, "{allowed} calls, {spent} micro-USD");
    assert!(spent <= 1_000_000.0, "spent {spent} micro-USD of a $1 window");

    // Through a store outage, a live lease keeps admitting; once it ends, limits fail open.
    assert_eq!(call("mira").status, 200);
    store.set(Fault::Down);
    let r = call("mira");
    assert_eq!((r.status, r.header("x-posthog-budget")), (200, None), "admitted on the lease");
    assert_eq!(envoy.metric("llm_gateway.limits_unavailable_total"), 0);
    std::thread::sleep(Duration::from_millis(1100));
    let r = call("mira");
    assert_eq!((r.status, r.header("x-posthog-budget")), (200, Some("unknown")));
    assert_eq!(envoy.metric("llm_gateway.limits_unavailable_total"), 1);
    store.set(Fault::None);
}

/// Every header the gateway sets, counted as the client receives them: once
/// each on every path (allowed, admitted on a lease, denied by a window,
/// denied by the budget, a local reply), and the budget's on every 429.
#[test]
fn every_gateway_header_appears_once_on_every_path() {
    use llm_gateway_e2e::client::{exchange, RawResponse};
    let stack = Stack::shared();
    let _g = stack.guard();
    let envoy =
        stack.extra_envoy("limits-once", overlay(json!({"user": [{"window_seconds": 3600, "limit_usd": 0.3}]})), 1);
    let call = |key: &str, user: &str, input_tokens: u64| -> RawResponse {
        let usage = json!({"prompt_tokens": input_tokens, "completion_tokens": 1, "total_tokens": input_tokens + 1});
        let body = json!({"model": "priced-model", "user": user, "max_tokens": 1,
            "messages": [{"role": "user", "content": "x"}]});
        let headers = [("x-api-key", key), ("x-mock-usage", &usage.to_string())];
        exchange(envoy.port, "POST", "/v1/chat/completions", &headers, body.to_string())
    };
    let gateway = [
        "x-ratelimit-limit-usd",
        "x-ratelimit-remaining-usd",
        "x-ratelimit-reset",
        "x-posthog-budget",
        "x-posthog-budget-remaining-usd",
        "retry-after",
        "content-type",
    ];
    let counts = |r: &RawResponse| gateway.map(|h| r.count(h));
    let key = "phx_limits_once";
    stack.store.put_key(key, &principal(160, json!({"monthly_budget_usd": 10.0})));
    // Allowed by the check, then on its lease: every header once, no retry-after.
    for what in ["allowed", "on the lease"] {
        let r = call(key, "frank", 150);
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert_eq!(counts(&r), [1, 1, 1, 1, 1, 0, 1], "{what}: {:?}", r.headers);
        wait_for_records();
    }
    // Denied by the window (0.3 spent of 0.3): the window's, retry-after and the budget's, once each.
    let r = call(key, "frank", 150);
    assert_eq!((r.status, r.header("x-posthog-budget")), (429, Some("ok")), "{}", r.text());
    assert_eq!(counts(&r), [1, 1, 1, 1, 1, 1, 1], "window denial: {:?}", r.headers);
    assert_eq!(r.header("x-ratelimit-remaining-usd"), Some("0"), "{:?}", r.headers);
    // Denied by the budget: its headers and the rate-limit headers, once each.
    let key = "phx_limits_once_budget";
    stack.store.put_key(key, &principal(161, json!({"monthly_budget_usd": 1.0})));
    stack.store.command(&["SET", &budget_key(161), "1000000", "EX", "600"]);
    let r = call(key, "gina", 1);
    assert_eq!((r.status, r.header("x-posthog-budget")), (429, Some("exceeded")), "{}", r.text());
    assert_eq!(counts(&r), [1, 1, 1, 1, 1, 1, 1], "budget denial: {:?}", r.headers);
    assert_eq!(r.header("x-posthog-budget-remaining-usd"), Some("0"));
    assert_eq!(r.header("x-ratelimit-limit-usd"), Some("0.3"));
    // A local reply: the error's own headers only.
    let r = call("phx_limits_once_unknown_key", "hal", 1);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(counts(&r), [0, 0, 0, 0, 0, 0, 1], "local reply: {:?}", r.headers);
}

/// A warm subject's lease is renewed by the root in the background: after its
/// first call, a steady client waits for Redis on almost no call, and the
/// window still holds exactly what the calls cost once the leases end.
#[test]
fn a_warm_subjects_lease_is_renewed_in_the_background() {
    let stack = Stack::shared();
    let _g = stack.guard();
    let dir = stack.dir.join("limits-renewal");
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = test_plugin_config();
    merge(&mut config, overlay(json!({"user": [{"window_seconds": 3600, "limit_usd": 50.0}]})));
    let envoy = Envoy::start_with(&dir, &config, stack.ports(), 1);
    let key = "phx_limits_renewal";
    stack.store.put_key(key, &principal(151, json!({})));
    let calls = 60;
    for i in 0..calls {
        let r = costly(&envoy, key, "rena", 24, "/v1/chat/completions");
        assert_eq!(r.status, 200, "call {i}: {}", r.body);
        // A steady client: several root ticks (100 ms) pass over the run.
        std::thread::sleep(Duration::from_millis(15));
    }
    let local = envoy.metric("llm_gateway.limits_local_admits_total");
    let renewals = envoy.metric("llm_gateway.limits_lease_renewals_total");
    println!("renewals: {calls} calls, {local} admitted locally, {renewals} renewals");
    assert!(renewals >= 1, "no renewal");
    assert_eq!(envoy.metric("llm_gateway.limits_lease_renewal_failures_total"), 0);
    // Checks made by requests: the first (cold) and at most a few more.
    assert!(calls - local <= 3, "{} of {calls} calls waited for Redis", calls - local);
    // Once the leases end and are given back, the window holds the calls' cost.
    std::thread::sleep(Duration::from_millis(1600));
    let spent: f64 = user_windows(stack, 151).iter().map(|(_, v)| v).sum();
    let cost = 0.024001;
    assert!((spent / 1e6 - calls as f64 * cost).abs() < 1e-6, "window ${} for {calls} calls of ${cost}", spent / 1e6);
}
