//! Issue 5: `check.lua` and `record.lua` against a real Redis behind a real
//! webdis, sent exactly as the filter sends them (the filter's own request
//! builder, `src/limits/webdis.rs`, is compiled into this test).

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

#[allow(dead_code)]
#[path = "../../../src/limits/webdis.rs"]
mod webdis;

const CHECK: &str = include_str!("../../../src/limits/check.lua");
const RECORD: &str = include_str!("../../../src/limits/record.lua");
const BUDGET_TTL_S: i64 = 35 * 86_400;

struct Redis {
    store: Store,
    agent: ureq::Agent,
    _dir: PathBuf,
}

impl Redis {
    fn start() -> Redis {
        let dir = std::env::temp_dir().join(format!("llmgw-lua-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::start(&dir);
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
        Redis { store, agent, _dir: dir }
    }

    /// `EVAL` through webdis as the filter does: `POST /`, command path in the body.
    fn eval(&self, script: &str, keys: &[&str], args: &[String]) -> Value {
        let req = webdis::WebdisRequest::eval(script, keys, args);
        let url = format!("http://127.0.0.1:{}{}", self.store.webdis_port, req.path);
        let res = self.agent.post(&url).set("content-type", "text/plain").send_string(&req.body).unwrap();
        let mut v: Value = res.into_json().unwrap();
        v["EVAL"].take()
    }

    /// check.lua with windows `(base key, seconds, limit)` and an optional `(budget key, cap)`.
    fn check(&self, est: i64, windows: &[(&str, u64, i64)], budget: Option<(&str, i64)>) -> Value {
        let mut keys: Vec<&str> = windows.iter().map(|w| w.0).collect();
        let mut args = vec![est.to_string(), windows.len().to_string(), budget.map_or(0, |b| b.1).to_string()];
        if let Some((k, _)) = budget {
            keys.push(k);
        }
        for (_, s, limit) in windows {
            args.push(s.to_string());
            args.push(limit.to_string());
        }
        self.eval(CHECK, &keys, &args)
    }

    /// record.lua with window deltas and budget amounts.
    fn record(&self, windows: &[(&str, i64)], budgets: &[(&str, i64)]) -> Value {
        let keys: Vec<&str> = windows.iter().chain(budgets).map(|(k, _)| *k).collect();
        let mut args = vec![windows.len().to_string(), BUDGET_TTL_S.to_string()];
        args.extend(windows.iter().chain(budgets).map(|(_, v)| v.to_string()));
        self.eval(RECORD, &keys, &args)
    }

    fn get(&self, key: &str) -> Option<i64> {
        match &self.store.command(&["GET", key])["GET"] {
            Value::Null => None,
            Value::String(s) => Some(s.parse().unwrap()),
            other => panic!("GET {key}: {other}"),
        }
    }

    fn pttl(&self, key: &str) -> i64 {
        self.store.command(&["PTTL", key])["PTTL"].as_i64().unwrap()
    }

    fn all_keys(&self) -> Vec<String> {
        let v = self.store.command(&["KEYS", "*"]);
        v["KEYS"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect()
    }
}

fn tag(v: &Value) -> i64 {
    v[0].as_i64().unwrap_or_else(|| panic!("not a script answer: {v}"))
}

/// The full key check.lua reserved in, for the i-th window (0-based) of an allowed answer.
fn reserved_key(v: &Value, i: usize) -> String {
    v[2 + 3 * i].as_str().unwrap().to_string()
}

#[test]
fn allows_until_the_window_is_exhausted_then_denies_with_its_reset() {
    let r = Redis::start();
    let w = [("llmgw:rl:u:1:abc:3600", 3600, 1_000_000)];
    for spent in [300_000, 600_000, 900_000] {
        let v = r.check(300_000, &w, None);
        assert_eq!(tag(&v), 1, "{v}");
        assert_eq!(v[1], -1, "no budget key: month spend -1");
        assert_eq!(v[3], spent);
        let reset = v[4].as_i64().unwrap();
        assert!(reset > 0 && reset <= 3_600_000, "{v}");
    }
    // 900k + 300k > 1M: denied, nothing reserved.
    let v = r.check(300_000, &w, None);
    assert_eq!((tag(&v), v[1].as_i64().unwrap(), v[3].as_i64().unwrap()), (0, 1, 900_000), "{v}");
    let reset = v[2].as_i64().unwrap();
    assert!(reset > 0 && reset <= 3_600_000);
    let v = r.check(100_000, &w, None);
    assert_eq!(tag(&v), 1, "exactly reaching the limit is allowed: {v}");
    assert_eq!(v[3], 1_000_000);
    assert_eq!(tag(&r.check(1, &w, None)), 0);
    // The window's key is <base>:<floor(now / 3600 s)>.
    let key = reserved_key(&r.check(0, &w, None), 0);
    let index: u64 = key.rsplit(':').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(index.abs_diff(now / 3600) <= 1, "{key}");
    assert_eq!(r.get(&key), Some(1_000_000));
}

#[test]
fn a_request_larger_than_the_whole_limit_is_denied() {
    let r = Redis::start();
    let v = r.check(2_000_000, &[("k:big", 3600, 1_000_000)], None);
    assert_eq!(tag(&v), 0, "{v}");
    assert!(r.all_keys().is_empty(), "a denial writes nothing: {:?}", r.all_keys());
}

#[test]
fn every_window_is_checked_and_reserved_and_the_latest_reset_is_reported() {
    let r = Redis::start();
    let windows =
        [("t:user:burst", 60, 500_000), ("t:user:sustained", 86_400, 700_000), ("t:product", 3600, 100_000_000)];
    let v = r.check(400_000, &windows, None);
    assert_eq!(tag(&v), 1, "{v}");
    for (i, w) in windows.iter().enumerate() {
        assert!(reserved_key(&v, i).starts_with(w.0));
        assert_eq!(r.get(&reserved_key(&v, i)), Some(400_000));
    }
    // Both user windows are now too full for 400k: the denial names the one
    // that resets last (the request cannot pass before), and reserves nothing.
    let d = r.check(400_000, &windows, None);
    assert_eq!(tag(&d), 0, "{d}");
    // (Windows are aligned on multiples of their length, so the day window
    // never resets before the minute window; on a tie the later one is named.)
    assert_eq!(d[1], 2, "{d}");
    assert!(d[2].as_i64().unwrap() <= 86_400_000, "{d}");
    assert_eq!(d[3], 400_000);
    assert_eq!(r.get(&reserved_key(&v, 2)), Some(400_000), "no partial reservation");
    // Only the burst window full → it is the one reported.
    let v = r.check(100_000, &windows, None);
    assert_eq!(tag(&v), 1, "{v}");
    let d = r.check(100_000, &windows, None);
    assert_eq!((tag(&d), d[1].as_i64().unwrap()), (0, 1), "{d}");
    assert!(d[2].as_i64().unwrap() <= 60_000);
}

#[test]
fn record_replaces_reservations_with_real_costs() {
    let r = Redis::start();
    let windows = [("rec:a", 3600, 10_000_000), ("rec:b", 86_400, 10_000_000)];
    let v = r.check(500_000, &windows, Some(("llmgw:budget:9:2030-01", 0)));
    assert_eq!(tag(&v), 1, "{v}");
    assert_eq!(v[1], 0, "budget key present but empty: spend 0");
    let (a, b) = (reserved_key(&v, 0), reserved_key(&v, 1));
    // The call cost 200k, not the 500k reserved: delta -300k, budget +200k.
    let out = r.record(&[(&a, -300_000), (&b, -300_000)], &[("llmgw:budget:9:2030-01", 200_000)]);
    assert_eq!(out, json!([2, 0, 1]));
    assert_eq!((r.get(&a), r.get(&b)), (Some(200_000), Some(200_000)));
    assert_eq!(r.get("llmgw:budget:9:2030-01"), Some(200_000));
    // A call that cost more than reserved: positive delta.
    r.record(&[(&a, 50_000)], &[]);
    assert_eq!(r.get(&a), Some(250_000));
    // Totals never go below zero, and keep their TTL.
    let ttl_before = r.pttl(&a);
    r.record(&[(&a, -9_999_999)], &[]);
    assert_eq!(r.get(&a), Some(0));
    let ttl_after = r.pttl(&a);
    assert!(ttl_after > 0 && ttl_after <= ttl_before, "{ttl_before} {ttl_after}");
    // The next check sees the reconciled totals, and the budget spend.
    let v = r.check(100_000, &windows, Some(("llmgw:budget:9:2030-01", 0)));
    assert_eq!((v[1].as_i64(), v[3].as_i64(), v[6].as_i64()), (Some(200_000), Some(100_000), Some(300_000)));
}

#[test]
fn keys_get_ttls_when_created_and_expire() {
    let r = Redis::start();
    let v = r.check(100_000, &[("ttl:short", 1, 1_000_000), ("ttl:long", 7200, 1_000_000)], None);
    assert_eq!(tag(&v), 1, "{v}");
    let (short, long) = (reserved_key(&v, 0), reserved_key(&v, 1));
    let t = r.pttl(&short);
    assert!(t > 0 && t <= 1000, "TTL = time left in the 1 s window: {t}");
    let t = r.pttl(&long);
    assert!(t > 0 && t <= 7_200_000, "{t}");
    r.record(&[], &[("llmgw:budget:1:2030-01", 5)]);
    let t = r.pttl("llmgw:budget:1:2030-01");
    assert!(t > (BUDGET_TTL_S - 60) * 1000 && t <= BUDGET_TTL_S * 1000, "{t}");
    // A budget key keeps its first TTL: adding does not extend it.
    std::thread::sleep(Duration::from_millis(20));
    r.record(&[], &[("llmgw:budget:1:2030-01", 5)]);
    assert!(r.pttl("llmgw:budget:1:2030-01") < t);
    for k in r.all_keys() {
        assert!(r.pttl(&k) > 0, "{k} has no TTL");
    }

    // The 1 s window ends: its key goes, and a late record does not bring it back.
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.get(&short).is_some() {
        assert!(Instant::now() < deadline, "{short} never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = r.record(&[(&short, 40_000), (&long, 40_000)], &[]);
    assert_eq!(out, json!([1, 1, 0]), "one window updated, one skipped");
    assert_eq!(r.get(&short), None, "an expired window key is not resurrected");
    assert_eq!(r.get(&long), Some(140_000));
    // A new check after the window reset starts from zero in a new key.
    let v = r.check(100_000, &[("ttl:short", 1, 1_000_000)], None);
    assert_ne!(reserved_key(&v, 0), short);
    assert_eq!(v[3], 100_000);
}

#[test]
fn a_key_found_without_a_ttl_gets_one() {
    let r = Redis::start();
    r.store.command(&["SET", "orphan:1", "5"]);
    r.store.command(&["SET", "llmgw:budget:3:2030-01", "5"]);
    assert_eq!(r.pttl("orphan:1"), -1);
    r.record(&[("orphan:1", 1)], &[("llmgw:budget:3:2030-01", 1)]);
    assert!(r.pttl("orphan:1") > 0);
    assert!(r.pttl("llmgw:budget:3:2030-01") > 0);
    // Same in check.lua: an existing window key without TTL gets the window's rest.
    let v = r.check(0, &[("nottl", 3600, 10)], None);
    let key = reserved_key(&v, 0);
    r.store.command(&["PERSIST", &key]);
    r.check(0, &[("nottl", 3600, 10)], None);
    let t = r.pttl(&key);
    assert!(t > 0 && t <= 3_600_000, "{t}");
}

#[test]
fn the_monthly_budget_accumulates_and_denies_at_the_cap() {
    let r = Redis::start();
    let budget = "llmgw:budget:5:2030-01";
    let w = [("bud:w", 3600, 1_000_000_000)];
    for _ in 0..3 {
        r.record(&[], &[(budget, 30_000_000)]);
    }
    assert_eq!(r.get(budget), Some(90_000_000));
    // Under the cap: allowed, month spend returned for the tiers.
    let v = r.check(1_000, &w, Some((budget, 100_000_000)));
    assert_eq!((tag(&v), v[1].as_i64()), (1, Some(90_000_000)), "{v}");
    r.record(&[], &[(budget, 10_000_000)]);
    // At the cap: denied, nothing reserved.
    let before = r.get(&reserved_key(&v, 0));
    let v = r.check(1_000, &w, Some((budget, 100_000_000)));
    // With each window's spend and reset as it stands, for the rate-limit headers.
    assert_eq!((tag(&v), v[1].as_i64(), v.as_array().unwrap().len()), (2, Some(100_000_000), 4), "{v}");
    assert!(v[3].as_i64().unwrap() <= 3_600_000, "{v}");
    assert_eq!(r.get(&reserved_key(&r.check(0, &w, None), 0)), before);
    // Cap 0: the budget never denies, but its spend is still returned.
    let v = r.check(1_000, &w, Some((budget, 0)));
    assert_eq!((tag(&v), v[1].as_i64()), (1, Some(100_000_000)));
    // Budget only, no window.
    assert_eq!(r.check(0, &[], Some((budget, 200_000_000))), json!([1, 100_000_000, 0]));
    // Zero amounts are not written (no key created).
    r.record(&[], &[("llmgw:budget:6:2030-01", 0)]);
    assert_eq!(r.get("llmgw:budget:6:2030-01"), None);
}

#[test]
fn bad_arguments_are_errors_and_write_nothing() {
    let r = Redis::start();
    let err = |v: &Value| v[0] == false && v[1].as_str().is_some_and(|s| s.contains("llmgw"));
    // check.lua: missing window arguments, negative estimate, zero-length window.
    let v = r.eval(CHECK, &["a"], &["1".into(), "1".into(), "0".into(), "60".into()]);
    assert!(err(&v), "{v}");
    let v = r.eval(CHECK, &["a"], &["-1".into(), "1".into(), "0".into(), "60".into(), "5".into()]);
    assert!(err(&v), "{v}");
    let v = r.eval(CHECK, &["a"], &["1".into(), "1".into(), "0".into(), "0".into(), "5".into()]);
    assert!(err(&v), "{v}");
    let v = r.eval(CHECK, &["a"], &["1e3".into(), "1".into(), "0".into(), "60".into(), "5000".into()]);
    assert!(err(&v), "{v}");
    // record.lua: a bad amount anywhere rejects the whole batch before any write.
    r.store.command(&["SET", "rec:x", "10", "EX", "100"]);
    let v = r.eval(RECORD, &["rec:x", "b"], &["1".into(), "100".into(), "5".into(), "1.5".into()]);
    assert!(err(&v), "{v}");
    let v = r.eval(RECORD, &["rec:x", "b"], &["1".into(), "100".into(), "5".into(), "-3".into()]);
    assert!(err(&v), "negative budget amount: {v}");
    let v = r.eval(RECORD, &["rec:x"], &["1".into(), "0".into(), "5".into()]);
    assert!(err(&v), "zero TTL: {v}");
    assert_eq!(r.get("rec:x"), Some(10));
    assert_eq!(r.get("b"), None);
}

#[test]
fn keys_and_arguments_survive_the_webdis_url() {
    let r = Redis::start();
    let key = "odd/key.json+ %2F:ü";
    let v = r.check(7, &[(key, 3600, 100)], None);
    assert_eq!(tag(&v), 1, "{v}");
    let full = reserved_key(&v, 0);
    assert!(full.starts_with(&format!("{key}:")), "{full}");
    assert_eq!(r.get(&full), Some(7));
    assert_eq!(r.record(&[(&full, 3)], &[]), json!([1, 0, 0]));
    assert_eq!(r.get(&full), Some(10));
}

/// Many concurrent checks against a window with room for a few: Redis runs
/// one script at a time, so exactly floor(limit / estimate) pass, whatever the
/// concurrency. The only overspend left is estimation error, applied by record.
#[test]
fn concurrent_checks_never_pass_more_than_the_limit_allows() {
    let r = Arc::new(Redis::start());
    let (est, limit, threads) = (1_000_000_i64, 5_500_000_i64, 48);
    let window = ("conc:user", 3600_u64, limit);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (r, barrier) = (r.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                r.check(est, &[window], None)
            })
        })
        .collect();
    let answers: Vec<Value> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let allowed: Vec<&Value> = answers.iter().filter(|v| tag(v) == 1).collect();
    let denied = answers.iter().filter(|v| tag(v) == 0).count();
    assert_eq!(allowed.len() as i64, limit / est, "allowed {} of {threads}", allowed.len());
    assert_eq!(allowed.len() + denied, threads);
    let key = reserved_key(allowed[0], 0);
    let reserved = r.get(&key).unwrap();
    assert_eq!(reserved, 5_000_000);
    assert!(reserved <= limit);
    let mut seen: Vec<i64> = allowed.iter().map(|v| v[3].as_i64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, vec![1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000], "each saw its own reservation");

    // Each call turns out to cost 20% more than estimated: the window ends
    // 1M over its reservations, 0.5M (9%) over the limit. Overspend is bounded by
    // allowed × (real − estimate), never by the number of concurrent callers.
    let deltas: Vec<(&str, i64)> = allowed.iter().map(|_| (key.as_str(), 200_000)).collect();
    r.record(&deltas, &[]);
    let spent = r.get(&key).unwrap();
    let overspend = spent - limit;
    eprintln!(
        "concurrency: {threads} parallel checks, limit {limit} µUSD, estimate {est} µUSD: {} allowed, \
         reserved {reserved}; real cost +20%: spent {spent}, overspend {overspend} µUSD ({:.1}% of the limit)",
        allowed.len(),
        overspend as f64 * 100.0 / limit as f64
    );
    assert!(overspend <= allowed.len() as i64 * 200_000);
    assert_eq!(overspend, 500_000);
}

#[test]
fn a_lease_is_reserved_with_the_estimate_only_when_every_window_has_room() {
    let r = Redis::start();
    let lease = |est: i64, lease: i64, windows: &[(&str, u64, i64)]| {
        let keys: Vec<&str> = windows.iter().map(|w| w.0).collect();
        let mut args = vec![est.to_string(), windows.len().to_string(), "0".to_string()];
        for (_, s, limit) in windows {
            args.push(s.to_string());
            args.push(limit.to_string());
        }
        args.push(lease.to_string());
        r.eval(CHECK, &keys, &args)
    };
    let w = [("llmgw:rl:u:1:lease:3600", 3600, 1_000_000), ("llmgw:rl:p:lease:86400", 86_400, 500_000)];
    // 100k + a 300k lease fit both windows: 400k reserved in each, lease granted.
    let v = lease(100_000, 300_000, &w);
    assert_eq!(
        (tag(&v), v[3].as_i64(), v[6].as_i64(), v[8].as_i64()),
        (1, Some(400_000), Some(400_000), Some(300_000))
    );
    // The second window has 100k left: the estimate fits, the lease does not.
    let v = lease(100_000, 300_000, &w);
    assert_eq!((tag(&v), v[3].as_i64(), v[6].as_i64(), v[8].as_i64()), (1, Some(500_000), Some(500_000), Some(0)));
    // Without the argument the answer is as before plus a lease of 0; a negative lease is refused.
    let v = r.check(0, &w, None);
    assert_eq!((tag(&v), v[8].as_i64()), (1, Some(0)));
    let bad = lease(0, -1, &w);
    assert!(bad[1].as_str().unwrap().contains("bad arguments"), "{bad}");
}
