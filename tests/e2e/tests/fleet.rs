//! Issue 19: a fleet of gateways shares limits, budgets and keys on a Redis
//! Cluster, and survives a failover. A real cluster on loopback (3 masters, 3
//! replicas), one bridge per gateway (webdis in front of an Envoy `redis_proxy`
//! listener, `envoy/redis-bridge.yaml.tmpl`), and 3 gateway Envoys with 2 workers
//! each, `limits.redis_cluster` on. The tests share the fleet and take turns.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use llm_gateway::limits::{
    CheckPlan, CheckResult, PartAnswer, Scope, SpendBatch, StoreError, Subject, Window, RECORD_MAX_KEYS,
};
use llm_gateway_e2e::calls::principal;
use llm_gateway_e2e::cluster::{redis, Bridge, RedisCluster, Reply};
use llm_gateway_e2e::mock::{MockProvider, ProviderKeys};
use llm_gateway_e2e::sink::CaptureSink;
use llm_gateway_e2e::stack::*;
use serde_json::{json, Value};

const GATEWAYS: usize = 3;
const WORKERS: u32 = 2;
/// The product every call here is made for (the first product: unprefixed paths).
const PRODUCT: &str = "llm_gateway";

struct Fleet {
    cluster: Mutex<RedisCluster>,
    bridges: Vec<Bridge>,
    envoys: Vec<Envoy>,
    /// Where each gateway's clusters point (its own bridge).
    ports: Vec<Ports>,
    dir: std::path::PathBuf,
    _mock: MockProvider,
    sink: CaptureSink,
    _sink2: CaptureSink,
}

/// The plugin config of every gateway: the cluster layout, a product window on every
/// call (so each check is two calls, one per slot), a model whose cost the mock's
/// usage sets. Timeouts are raised above the shipped 200 ms / 150 ms: this 2-core
/// machine runs 15 processes here, and a timed-out record is dropped, not retried.
fn gateway_config() -> Value {
    let mut config = test_plugin_config();
    merge(
        &mut config,
        json!({
            "models": {"priced-model": {"provider": "openai"}},
            "pricing": {"priced-model": {"input": 1000.0, "output": 1.0}},
            "limits": {
                "redis_cluster": true,
                "timeout_ms": 1000,
                "user": [],
                "product": [{"window_seconds": 86400, "limit_usd": 100000}],
            },
        }),
    );
    config
}

impl Fleet {
    fn start() -> Fleet {
        let dir = llm_gateway_e2e::record::artifacts_dir().join(format!("fleet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = RedisCluster::start(&dir, 3);
        let seeds = cluster.masters();
        let bridges: Vec<Bridge> =
            (0..GATEWAYS).map(|i| Bridge::start(&dir, &format!("bridge-{i}"), &seeds, "0.5s")).collect();
        let mock = MockProvider::start(ProviderKeys {
            openai: OPENAI_KEY.into(),
            anthropic: ANTHROPIC_KEY.into(),
            gemini: GEMINI_KEY.into(),
            bedrock: BEDROCK_KEY.into(),
            azure: AZURE_KEY.into(),
            aws: None,
        });
        let (sink, sink2) = (CaptureSink::start(), CaptureSink::start());
        let ports: Vec<Ports> = bridges
            .iter()
            .map(|b| Ports {
                mock: mock.port(),
                sink: sink.port(),
                sink2: sink2.port(),
                webdis: b.webdis_port,
                auth: b.webdis_port,
            })
            .collect();
        let envoys = ports
            .iter()
            .enumerate()
            .map(|(i, p)| gateway(&dir, &format!("gateway-{i}"), &gateway_config(), *p))
            .collect();
        Fleet { cluster: Mutex::new(cluster), bridges, envoys, ports, dir, _mock: mock, sink, _sink2: sink2 }
    }

    /// One fleet per test binary, owned by a thread that never exits (children die
    /// with the thread that started them); the tests take turns on it.
    fn shared() -> (&'static Fleet, MutexGuard<'static, ()>) {
        static FLEET: OnceLock<&'static Fleet> = OnceLock::new();
        static TURN: Mutex<()> = Mutex::new(());
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let fleet = FLEET.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let fleet: &'static Fleet = Box::leak(Box::new(Fleet::start()));
                tx.send(fleet).unwrap();
                loop {
                    std::thread::park();
                }
            });
            rx.recv().expect("fleet failed to start")
        });
        (fleet, turn)
    }

    fn cluster(&self) -> MutexGuard<'_, RedisCluster> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A principal for `key`, written through a bridge into the cluster.
    fn put_key(&self, key: &str, principal: &Value) {
        let v = self.bridges[0].command(&["SET", &format!("llmgw:key:{}", sha256_hex(key)), &principal.to_string()]);
        assert_eq!(v["SET"], json!([true, "OK"]), "{v}");
    }

    /// A key's integer value read through a bridge (0 when absent).
    fn get(&self, key: &str) -> i64 {
        match &self.bridges[0].command(&["GET", key])["GET"] {
            Value::String(s) => s.parse().unwrap(),
            Value::Null => 0,
            other => panic!("GET {key}: {other}"),
        }
    }

    /// The sum of a filter metric over every gateway.
    fn metric(&self, name: &str) -> u64 {
        self.envoys.iter().map(|e| e.metric(&format!("llm_gateway.{name}"))).sum()
    }

    /// Every window key of `team`'s users and their values, read on the slot's master.
    fn user_windows(&self, team: i64) -> HashMap<String, i64> {
        let cluster = self.cluster();
        let master = cluster.master_of(cluster.slot(&format!("{{t:{team}}}")));
        let Ok(Reply::Array(keys)) = redis(master, &["KEYS", &format!("llmgw:{{t:{team}}}:rl:u:*")]) else {
            panic!("KEYS on {master}")
        };
        keys.iter()
            .map(|k| {
                let k = k.text().to_string();
                let v = redis(master, &["GET", &k]).unwrap().text().parse().unwrap();
                (k, v)
            })
            .collect()
    }

    /// Waits for the leases to end (1 s) and their rest and every cost to be recorded
    /// (250 ms flushes), then until the team's month key stops changing.
    fn settled_budget(&self, team: i64) -> i64 {
        std::thread::sleep(Duration::from_millis(1500));
        let mut last = self.get(&budget_key(team));
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = self.get(&budget_key(team));
            if now == last {
                return now;
            }
            last = now;
        }
    }

    /// What PostHog got for `team`: its events' costs in micro-USD, once `calls` arrived.
    fn event_costs(&self, team: i64, calls: usize) -> Vec<i64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let costs: Vec<i64> = self
                .sink
                .events()
                .iter()
                .filter(|e| e["properties"]["team_id"] == team)
                .map(|e| (e["properties"]["$ai_total_cost_usd"].as_f64().unwrap_or(0.0) * 1e6).round() as i64)
                .collect();
            if costs.len() >= calls || Instant::now() > deadline {
                assert_eq!(costs.len(), calls, "one event per call of team {team}");
                return costs;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn guards(&self) -> Vec<LogOnFailure<'_>> {
        self.envoys.iter().map(|e| e.guard()).collect()
    }
}

fn gateway(dir: &std::path::Path, name: &str, config: &Value, ports: Ports) -> Envoy {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    Envoy::start_with(&dir, config, ports, WORKERS)
}

/// A chat call by `user` costing `input_tokens` × $0.001 plus one output token. With a
/// 4-letter user its estimate (from the body's size) is $0.024001 as well.
fn call(envoy: &Envoy, key: &str, user: &str, input_tokens: u64) -> Response {
    call_port(envoy.port, key, user, input_tokens)
}

fn call_port(port: u16, key: &str, user: &str, input_tokens: u64) -> Response {
    let usage = json!({"prompt_tokens": input_tokens, "completion_tokens": 1, "total_tokens": input_tokens + 1});
    let body = json!({"model": "priced-model", "user": user, "max_tokens": 1,
        "messages": [{"role": "user", "content": "x"}]});
    let headers = [("x-api-key", key), ("x-mock-usage", &usage.to_string())];
    send(port, "POST", "/v1/chat/completions", &headers, &body.to_string())
}

/// `POST /` to a bridge's webdis, as the filter sends its calls.
fn post(bridge: &Bridge, body: &str) -> (u32, Vec<u8>) {
    let url = format!("http://127.0.0.1:{}/", bridge.webdis_port);
    let res = ureq::post(&url).set("content-type", "text/plain").send_string(body).unwrap();
    let status = u32::from(res.status());
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut res.into_reader(), &mut out).unwrap();
    (status, out)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The filter's own requests (`src/limits`), sent through webdis and the bridge:
/// the check split per slot, the records per slot, the auth lookup; and what a call
/// spanning two slots would get. webdis sends nothing but these: no SELECT, AUTH or PING.
#[test]
fn every_command_the_filter_sends_works_through_the_bridge() {
    let (fleet, _turn) = Fleet::shared();
    let bridge = &fleet.bridges[0];
    let subject = Subject { team_id: 19_001, product: "wizard", end_user: "user-1" };
    let windows = vec![
        Window { scope: Scope::User, window_seconds: 60, limit_usd: 1.0 },
        Window { scope: Scope::Team, window_seconds: 3600, limit_usd: 10.0 },
        Window { scope: Scope::Product, window_seconds: 86_400, limit_usd: 100.0 },
    ];
    let send_check = |plan: &mut CheckPlan| {
        let mut answers = Vec::new();
        for part in 0..plan.parts() {
            let mut answer = Err(StoreError::NoResponse);
            for _ in 0..3 {
                let (status, body) = post(bridge, &plan.request(part).body);
                answer = plan.parse_part(part, status, &body);
                match answer {
                    // The filter's retry: Redis's clock names the window.
                    Ok(PartAnswer::WrongWindow { redis_now_ms }) => plan.set_window_clock(redis_now_ms),
                    _ => break,
                }
            }
            answers.push(answer);
        }
        plan.combine(answers)
    };
    let mut plan =
        CheckPlan::new(windows.clone(), &subject, 0.25, Some(50.0), now_ms()).split_by_slot().with_lease(500_000);
    assert_eq!(plan.parts(), 2, "the team's slot and the product's");
    let checked = send_check(&mut plan);
    let Ok(CheckResult::Allowed { reservations, month_spend_usd, lease_micro, .. }) = checked.result else {
        panic!("{checked:?}")
    };
    assert_eq!(month_spend_usd, Some(0.0));
    assert_eq!(lease_micro, 500_000, "every window had room for the lease");
    assert_eq!(reservations.len(), 3);
    // Records: the real cost replaces the estimate, one call per slot.
    let mut batch = SpendBatch::new();
    batch.settle(&reservations, 0.2, Some(subject.team_id), now_ms());
    batch.release(&reservations.iter().map(|(k, _)| (k.clone(), lease_micro)).collect::<Vec<_>>());
    let mut calls = 0;
    while let Some(part) = batch.drain_slot(RECORD_MAX_KEYS) {
        let (status, body) = post(bridge, &part.request().body);
        let outcome = SpendBatch::parse(status, &body).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(outcome.windows_expired, 0);
        calls += 1;
    }
    assert_eq!(calls, 2);
    assert_eq!(fleet.get(&llm_gateway::limits::budget_key(subject.team_id, now_ms())), 200_000);
    for (key, _) in &reservations {
        assert_eq!(fleet.get(key), 200_000, "{key}: the reservation and lease replaced by the cost");
    }
    // The same check in one call spans two slots: Redis Cluster refuses it, nothing runs.
    let one_call = CheckPlan::new(windows, &subject, 0.25, Some(50.0), now_ms());
    let (status, body) = post(bridge, &one_call.request(0).body);
    match one_call.parse(status, &body) {
        Err(e @ StoreError::Redis(_)) => assert!(e.to_string().contains("CROSSSLOT"), "{e}"),
        other => panic!("{other:?}"),
    }
    // The auth lookup: GET of the key's hash, as text.
    fleet.put_key("phx_fleet_bridge", &principal(19_001, json!({})));
    let url = format!("http://127.0.0.1:{}/GET/llmgw:key:{}.txt", bridge.webdis_port, sha256_hex("phx_fleet_bridge"));
    let text = ureq::get(&url).call().unwrap().into_string().unwrap();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["team_id"], 19_001);
    // What reached the bridge: EVAL and GET (and the tests' SET), nothing on connect.
    let seen: BTreeSet<String> = bridge
        .stats("redis.llmgw.command.")
        .into_iter()
        .filter(|(k, v)| k.ends_with(".total") && *v > 0)
        .map(|(k, _)| k.trim_start_matches("redis.llmgw.command.").trim_end_matches(".total").to_string())
        .collect();
    assert!(seen.is_subset(&BTreeSet::from(["eval".into(), "get".into(), "set".into()])), "{seen:?}");
    assert!(seen.contains("eval") && seen.contains("get"), "{seen:?}");
}

/// Calls spread over the fleet (3 gateways × 2 workers, leases on) hit one window and
/// one budget: together they pass what one gateway alone would, no more.
#[test]
fn limits_and_the_budget_are_shared_by_the_fleet() {
    let (fleet, _turn) = Fleet::shared();
    let _g = fleet.guards();
    // A $1 hour window per user; each call costs (and is estimated at) $0.024001: 41 fit.
    let team = 19_101;
    let key = "phx_fleet_window";
    fleet.put_key(key, &principal(team, json!({"limits": {"user": [{"window_seconds": 3600, "limit_usd": 1.0}]}})));
    let mut allowed = 0;
    let mut denied_by = vec![0; GATEWAYS];
    for i in 0..90 {
        let gw = i % GATEWAYS;
        let r = call(&fleet.envoys[gw], key, "lena", 24);
        match r.status {
            200 => allowed += 1,
            429 => {
                assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded", "{}", r.body);
                denied_by[gw] += 1;
            }
            s => panic!("call {i}: {s} {}", r.body),
        }
    }
    println!("fleet window: 90 calls over {GATEWAYS} gateways, {allowed} allowed, denied per gateway {denied_by:?}");
    assert!(allowed <= 41, "{allowed} calls passed a window with room for 41");
    assert!(denied_by.iter().all(|d| *d > 0), "every gateway sees the fleet's spend: {denied_by:?}");
    // Once the leases end and give back what they did not use, the window holds the
    // calls' real cost exactly, and the month what PostHog was told.
    let month = fleet.settled_budget(team);
    let windows = fleet.user_windows(team);
    let spent: i64 = windows.values().sum();
    assert!(spent.abs_diff(allowed * 24_001) <= allowed as u64, "{allowed} calls, windows {windows:?}");
    assert!(spent <= 1_000_000);
    let events: i64 = fleet.event_costs(team, allowed as usize).iter().sum();
    assert_eq!(month, events, "the month's spend is what the events cost");

    // The budget: $0.5 a month, no window. Calls over the fleet until one is refused;
    // once the leases are over, every gateway refuses.
    let team = 19_102;
    let key = "phx_fleet_budget";
    fleet.put_key(key, &principal(team, json!({"monthly_budget_usd": 0.5})));
    let mut allowed = 0;
    let first_block = (0..200)
        .find(|i| {
            let r = call(&fleet.envoys[i % GATEWAYS], key, "mona", 24);
            if r.status == 200 {
                allowed += 1;
                return false;
            }
            assert_eq!((r.status, r.header("x-posthog-budget")), (429, Some("exceeded")), "{}", r.body);
            true
        })
        .expect("the budget never blocked");
    std::thread::sleep(Duration::from_millis(1200));
    for (gw, envoy) in fleet.envoys.iter().enumerate() {
        let r = call(envoy, key, "mona", 24);
        assert_eq!(r.status, 429, "gateway {gw} still lets the team spend: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "budget_exceeded");
    }
    let month = fleet.settled_budget(team);
    let events: i64 = fleet.event_costs(team, allowed).iter().sum();
    assert_eq!(month, events, "the month's spend is what the events cost");
    println!(
        "fleet budget: cap $0.5, blocked at call {first_block}; {allowed} allowed, month ${:.6} (over the cap by {} calls)",
        month as f64 / 1e6,
        (month - 500_000).max(0) / 24_001
    );
    assert!(month >= 500_000);
}

/// 36 concurrent calls over the fleet against one $1 window, each estimated at $0.15
/// and costing $0.18: every check reserves atomically in its slot, so the window
/// ends over its limit by at most the underestimates of the calls it allowed, as on
/// one Redis. The product window is checked by a second call in another slot.
#[test]
fn concurrent_calls_across_the_fleet_overspend_only_by_estimation_error() {
    let (fleet, _turn) = Fleet::shared();
    let _g = fleet.guards();
    let team = 19_201;
    let key = "phx_fleet_race";
    fleet.put_key(key, &principal(team, json!({"limits": {"user": [{"window_seconds": 3600, "limit_usd": 1.0}]}})));
    let ports: Vec<u16> = fleet.envoys.iter().map(|e| e.port).collect();
    let threads: Vec<_> = (0..36)
        .map(|i| {
            let port = ports[i % ports.len()];
            std::thread::spawn(move || {
                let usage = json!({"prompt_tokens": 180, "completion_tokens": 1, "total_tokens": 181});
                let body = json!({"model": "priced-model", "user": "racer", "max_tokens": 1,
                    "messages": [{"role": "user", "content": "y".repeat(480)}]});
                let headers = [("x-api-key", key), ("x-mock-usage", &usage.to_string())];
                send(port, "POST", "/v1/chat/completions", &headers, &body.to_string()).status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let allowed = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 36 - allowed, "{statuses:?}");
    let month = fleet.settled_budget(team);
    let mut counted = 0;
    for (k, spent) in fleet.user_windows(team) {
        let spent = spent as f64 / 1e6;
        let calls = (spent / 0.18).round() as usize;
        counted += calls;
        let overspend = spent - 1.0;
        println!("fleet concurrency: 36 calls over {GATEWAYS} gateways, {calls} allowed in {k}, spend ${spent:.6}, overspend ${overspend:.6}");
        assert!(calls <= 6, "{calls} calls passed a limit with room for 6 estimates");
        assert!(overspend <= calls as f64 * 0.03 + 0.001, "overspend {overspend} beyond the estimation error");
    }
    assert_eq!(counted, allowed, "every allowed call is recorded");
    assert_eq!(month, fleet.event_costs(team, allowed).iter().sum::<i64>());
}

/// What one client call saw.
struct Seen {
    team: i64,
    status: u16,
    budget: Option<String>,
    at: Instant,
}

/// Traffic over the whole fleet for teams on every shard; the master of one team's
/// slot is SIGKILLed mid-run. Its replica is promoted; calls keep flowing (that
/// team's limits fail open meanwhile, counted; the other teams are unaffected);
/// afterwards its checks work again, and the books balance: the month keys hold
/// what PostHog was told, less exactly what `spend_dropped_micro_usd_total` counts.
#[test]
fn a_master_killed_mid_run_fails_over_and_the_books_still_balance() {
    let (fleet, _turn) = Fleet::shared();
    let _g = fleet.guards();
    // One team per master, none of them on the product's master but the first.
    let (teams, victim_port) = {
        let cluster = fleet.cluster();
        let masters = cluster.masters();
        assert_eq!(masters.len(), 3, "{:#?}", cluster.topology());
        let product_master = cluster.master_of(cluster.slot(&format!("{{p:{PRODUCT}}}")));
        let mut teams = Vec::new();
        for m in &masters {
            let team = (19_300..19_999).find(|t| cluster.master_of(cluster.slot(&format!("{{t:{t}}}"))) == *m).unwrap();
            teams.push(team);
        }
        // The victim: a master that does not hold the product's windows.
        let victim = masters.iter().position(|m| *m != product_master).unwrap();
        teams.swap(0, victim);
        (teams, masters[victim])
    };
    let victim_team = teams[0];
    let keys: Vec<String> = teams.iter().map(|t| format!("phx_fleet_failover_{t}")).collect();
    for (team, key) in teams.iter().zip(&keys) {
        let limits = json!({"user": [{"window_seconds": 3600, "limit_usd": 1000.0}]});
        fleet.put_key(key, &principal(*team, json!({"monthly_budget_usd": 1000.0, "limits": limits})));
    }
    // Every gateway knows every key before the failover (principals are cached for 60 s;
    // a lookup of a key on the failing shard would fail closed meanwhile).
    for envoy in &fleet.envoys {
        for _ in 0..2 * WORKERS {
            for key in &keys {
                assert_eq!(call(envoy, key, "warm", 24).status, 200);
            }
        }
    }
    let before = |name: &str| fleet.metric(name);
    let (unavailable0, dropped0, micro0) =
        (before("limits_unavailable_total"), before("spend_dropped_total"), before("spend_dropped_micro_usd_total"));
    let warm_calls = GATEWAYS * 2 * WORKERS as usize;
    let budgets0: Vec<i64> = teams.iter().map(|t| fleet.settled_budget(*t)).collect();
    for t in &teams {
        fleet.event_costs(*t, warm_calls);
    }

    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            let port = fleet.envoys[c % GATEWAYS].port;
            let (teams, keys) = (teams.clone(), keys.clone());
            std::thread::spawn(move || {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let t = i % teams.len();
                    let r = call_port(port, &keys[t], "fail", 24);
                    let budget = r.header("x-posthog-budget").map(String::from);
                    seen.lock().unwrap().push(Seen { team: teams[t], status: r.status, budget, at: Instant::now() });
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = Instant::now();
    fleet.cluster().kill(victim_port);
    // The replica takes over (node timeout 1 s + election), and the bridges find it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let promoted_at = loop {
        {
            let cluster = fleet.cluster();
            let masters = cluster.masters();
            if masters.len() == 3 && !masters.contains(&victim_port) {
                break Instant::now();
            }
        }
        assert!(Instant::now() < deadline, "no replica was promoted: {:#?}", fleet.cluster().topology());
        std::thread::sleep(Duration::from_millis(50));
    };
    // Until the victim's team is checked again (not failing open), then a little more.
    let recovered_at = loop {
        let recovered = seen
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.team == victim_team && s.at > promoted_at && s.budget.as_deref() == Some("ok"))
            .map(|s| s.at);
        if let Some(at) = recovered {
            break at;
        }
        assert!(Instant::now() < deadline, "the victim's team is never checked again");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let failed_open: Vec<&Seen> = seen.iter().filter(|s| s.budget.as_deref() == Some("unknown")).collect();
    println!(
        "failover: {} calls; master killed, replica promoted after {:?}, the team checked again after {:?}; {} calls failed open",
        seen.len(),
        promoted_at - killed_at,
        recovered_at - killed_at,
        failed_open.len()
    );
    assert!(seen.iter().all(|s| s.status == 200), "every call went through");
    assert!(!failed_open.is_empty(), "some checks hit the dead master");
    assert!(failed_open.iter().all(|s| s.team == victim_team), "only the failed shard's team fails open");
    assert!(seen.iter().all(|s| s.budget.is_some()), "every response says where the budget stands");
    let unavailable = fleet.metric("limits_unavailable_total") - unavailable0;
    assert_eq!(unavailable, failed_open.len() as u64, "each call let through unchecked is counted");

    // The books: per team, the month key grew by what the events cost, except what
    // was dropped (records to the dead master that may have run), which is counted.
    let mut shortfall = 0;
    for (i, team) in teams.iter().enumerate() {
        let calls = seen.iter().filter(|s| s.team == *team).count();
        let costs = fleet.event_costs(*team, warm_calls + calls);
        let events: i64 = costs.iter().sum::<i64>() - costs[..warm_calls].iter().sum::<i64>();
        let recorded = fleet.settled_budget(*team) - budgets0[i];
        println!(
            "failover books: team {team}: {calls} calls, events ${:.6}, recorded ${:.6}",
            events as f64 / 1e6,
            recorded as f64 / 1e6
        );
        assert!(recorded <= events, "team {team}: spend counted twice ({recorded} > {events})");
        if *team != victim_team {
            assert_eq!(recorded, events, "team {team} was not on the failed shard");
        }
        shortfall += events - recorded;
    }
    let dropped = fleet.metric("spend_dropped_total") - dropped0;
    let dropped_micro = fleet.metric("spend_dropped_micro_usd_total") - micro0;
    println!(
        "failover books: shortfall {shortfall} micro-USD; dropped {dropped} keys, {dropped_micro} micro-USD of budget"
    );
    assert_eq!(shortfall as u64, dropped_micro, "every micro-dollar missing is counted as dropped");
}

/// Counters of one sizing run.
#[derive(Default)]
struct Snapshot {
    /// Per master: command → calls (EVAL and the commands scripts ran).
    redis: Vec<HashMap<String, u64>>,
    requests: u64,
    local_admits: u64,
    records: u64,
    unavailable: u64,
}

fn snapshot(fleet: &Fleet, gateways: &[Envoy]) -> Snapshot {
    let cluster = fleet.cluster();
    let metric = |n: &str| gateways.iter().map(|e| e.metric(&format!("llm_gateway.{n}"))).sum();
    Snapshot {
        redis: cluster.masters().iter().map(|m| cluster.command_calls(*m)).collect(),
        requests: metric("requests_total"),
        local_admits: metric("limits_local_admits_total"),
        records: metric("spend_records_total"),
        unavailable: metric("limits_unavailable_total"),
    }
}

/// Requests at `rate` per second for `seconds`, spread over `gateways`, from
/// `subjects` (team, user) pairs taken in turn; returns the achieved rate.
fn drive(gateways: &[Envoy], keys: &[(String, String)], rate: u64, seconds: u64) -> f64 {
    let ports: Vec<u16> = gateways.iter().map(|e| e.port).collect();
    let threads = 16;
    let start = Instant::now();
    let total = rate * seconds;
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let (ports, keys) = (ports.clone(), keys.to_vec());
            std::thread::spawn(move || {
                let mut sent = 0;
                let mut i = k;
                while i < total {
                    let due = start + Duration::from_micros(i * 1_000_000 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let (key, user) = &keys[(i as usize) % keys.len()];
                    // Estimated at $0.024001, costing $0.030001: windows get corrected too.
                    let r = call_port(ports[(i as usize) % ports.len()], key, user, 30);
                    assert_eq!(r.status, 200, "{}", r.body);
                    sent += 1;
                    i += threads;
                }
                sent
            })
        })
        .collect();
    let sent: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    sent as f64 / start.elapsed().as_secs_f64()
}

/// `make bench-fleet` (BENCHMARKS.md, "Fleet: Redis commands per request"): the
/// commands Redis runs per request on the cluster, by lease size and by how many
/// subjects share the traffic; then what one shard sustains of each script.
/// FLEET_RATE (req/s, default 100) and FLEET_SECONDS (default 10) set the load.
#[test]
#[ignore = "a measurement: make bench-fleet"]
fn fleet_sizing() {
    let (fleet, _turn) = Fleet::shared();
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (rate, seconds) = (env("FLEET_RATE", 100), env("FLEET_SECONDS", 10));
    println!("| lease | subjects | req/s | checked in Redis | EVAL / req (check + record) | record EVAL/s | Redis commands / req | EVAL share per master |");
    println!("|---|---|---|---|---|---|---|---|");
    for (run, (lease, teams, users)) in [(0, 10, 5), (8, 10, 5), (0, 1, 1), (8, 1, 1)].into_iter().enumerate() {
        let mut config = gateway_config();
        merge(
            &mut config,
            json!({"limits": {"local_admission_lease": lease, "user": [{"window_seconds": 3600, "limit_usd": 500}]}}),
        );
        let gateways: Vec<Envoy> = fleet
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| gateway(&fleet.dir, &format!("sizing-{run}-{i}"), &config, *p))
            .collect();
        let mut keys = Vec::new();
        for t in 0..teams {
            let team = 19_700 + 10 * run as i64 + t as i64;
            let key = format!("phx_fleet_sizing_{team}");
            fleet.put_key(&key, &principal(team, json!({"monthly_budget_usd": 100000.0})));
            for u in 0..users {
                keys.push((key.clone(), format!("u{u:03}")));
            }
        }
        // Warm the principal caches, then measure.
        for g in &gateways {
            for (key, user) in &keys {
                assert_eq!(call(g, key, user, 24).status, 200);
            }
        }
        std::thread::sleep(Duration::from_millis(1500));
        let before = snapshot(fleet, &gateways);
        let achieved = drive(&gateways, &keys, rate, seconds);
        std::thread::sleep(Duration::from_millis(1500));
        let after = snapshot(fleet, &gateways);
        let requests = (after.requests - before.requests) as f64;
        let delta = |m: usize, cmd: Option<&str>| -> f64 {
            let (a, b) = (&after.redis[m], &before.redis[m]);
            let calls = |h: &HashMap<String, u64>| match cmd {
                Some(c) => h.get(c).copied().unwrap_or(0),
                None => h.iter().filter(|(k, _)| !k.starts_with("cluster") && *k != "info").map(|(_, v)| v).sum(),
            };
            calls(a).saturating_sub(calls(b)) as f64
        };
        let masters = after.redis.len();
        let evals: Vec<f64> = (0..masters).map(|m| delta(m, Some("eval"))).collect();
        let all_evals: f64 = evals.iter().sum();
        let commands: f64 = (0..masters).map(|m| delta(m, None)).sum();
        let records = (after.records - before.records) as f64;
        let checked = 1.0 - (after.local_admits - before.local_admits) as f64 / requests;
        let share: Vec<String> = evals.iter().map(|e| format!("{:.0}%", 100.0 * e / all_evals.max(1.0))).collect();
        assert_eq!(after.unavailable, before.unavailable, "no check failed during the run");
        println!(
            "| {lease} | {} | {achieved:.0} | {:.0}% | {:.2} ({:.2} + {:.2}) | {:.1} | {:.1} | {} |",
            keys.len(),
            100.0 * checked,
            all_evals / requests,
            (all_evals - records) / requests,
            records / requests,
            records / seconds as f64,
            commands / requests,
            share.join(" / ")
        );
    }
    // What one shard sustains: redis-benchmark against a master, 50 connections, the
    // filter's scripts with their real keys (a team's call: 2 windows + budget; a record of 10 keys).
    let cluster = fleet.cluster();
    let master = cluster.masters()[0];
    let team = (1..10_000).find(|t| cluster.master_of(cluster.slot(&format!("{{t:{t}}}"))) == master).unwrap();
    let now = now_ms();
    let day = now / 86_400_000;
    let subject = Subject { team_id: team, product: "bench", end_user: "bench-user" };
    let windows = vec![
        Window { scope: Scope::User, window_seconds: 86_400, limit_usd: 1e9 },
        Window { scope: Scope::Team, window_seconds: 86_400, limit_usd: 1e9 },
    ];
    let plan = CheckPlan::new(windows, &subject, 0.000001, Some(1e9), now).split_by_slot();
    let check = decode(&plan.request(0).body);
    let mut batch = SpendBatch::new();
    let reservations: Vec<(String, i64)> =
        (0..9).map(|i| (format!("llmgw:{{t:{team}}}:rl:u:bench{i}:86400:{day}"), 1)).collect();
    batch.settle(&reservations, 0.000002, Some(team), now);
    let record = decode(&batch.request().body);
    for (name, args) in [("check.lua (2 windows + budget)", check), ("record.lua (10 keys)", record)] {
        let out = std::process::Command::new("redis-benchmark")
            .args(["-p", &master.to_string(), "-c", "50", "-n", "50000", "-q"])
            .args(&args)
            .output()
            .expect("redis-benchmark");
        let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
        let line = text.lines().rev().find(|l| l.contains("requests per second")).unwrap_or_default();
        let (before, after) = line.split_once(" requests per second").unwrap_or_default();
        let rps = before.rsplit(' ').next().unwrap_or("?");
        println!("one shard, {name}: {rps} EVAL/s{after}");
    }
}

/// A webdis command body back into its arguments (`EVAL`, the script, numkeys, ...).
fn decode(body: &str) -> Vec<String> {
    body.split('/')
        .map(|seg| {
            let mut out = Vec::new();
            let b = seg.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    out.push(u8::from_str_radix(&seg[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        })
        .collect()
}
