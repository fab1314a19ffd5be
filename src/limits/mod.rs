//! Cost-based rate limits (per end user, per product, per team) and the
//! monthly budget guard, shared by every Envoy through Redis reached over
//! HTTP (webdis). Pure logic: no proxy-wasm import; the filter dispatches the
//! requests built here and hands the answers back.
//!
//! # Flow
//!
//! 1. Before forwarding: [`CheckPlan::new`] gathers the applicable windows
//!    ([`applicable_windows`]: config defaults + the principal's overrides),
//!    the request's estimated cost ([`estimate_usd`]) and the team's budget
//!    cap. [`CheckPlan::request`] builds the `check.lua` call(s): ONE call
//!    with every key against a single Redis; against a Redis Cluster
//!    ([`CheckPlan::split_by_slot`]) one call per hash tag, at most two (the
//!    team's keys, the product's), sent together. Each call atomically
//!    denies, or reserves the estimate in its windows. [`CheckPlan::parse_part`]
//!    reads each answer and [`CheckPlan::combine`] makes them one
//!    [`CheckResult`], or a [`StoreError`] the filter maps to fail-open
//!    (default) or fail-closed.
//! 2. After the response: the real cost goes into the root context's
//!    [`SpendBatch`] (`real - reserved` per reserved window key, `real` for
//!    the team's month key), flushed every `record_flush_ms` as `record.lua`
//!    calls of at most [`RECORD_MAX_KEYS`] keys each (against a cluster: one
//!    hash tag per call). Limits and budget are fed by the same record, so
//!    they cannot disagree.

//! # Units
//!
//! Amounts in Redis are integer micro-USD (`INCRBY`), never floats, so sums
//! are exact. Limits are at most [`MAX_LIMIT_USD`] so every amount stays an
//! exact integer in Lua's doubles (< 2^53).
//!
//! # Windows: fixed, aligned on Redis time
//!
//! A window of `w` seconds is the interval `[k·w, (k+1)·w)` of Redis's clock
//! (`TIME`, so every Envoy agrees whatever its own clock says); its key is
//! `<base>:<k>`. The filter names the full key from its own clock (corrected
//! by the offset it learnt from Redis) so that every key a script touches is
//! one of its declared `KEYS` (Redis Cluster routes and migrates keys by
//! them); `check.lua` verifies `k` against `TIME` and, when it differs (a
//! skewed clock, or a call that straddled a boundary), touches nothing and
//! answers Redis's index and time: the filter re-sends with those
//! ([`PartAnswer::WrongWindow`]). A window key is created by `check.lua` with a
//! TTL equal to the time left in the window, in the same script. `reset` is
//! the time to the window's end.
//! Error at the edges: a fixed window forgets everything at its boundary, so
//! a client can spend up to **2× the limit within any `w` seconds that
//! straddle a boundary** (the whole limit just before it, again just after).
//! Stack a shorter burst window with a longer sustained one to bound that.
//!
//! # Overspend is bounded by estimation error, not by concurrency
//!
//! `check.lua` denies when `spent + reserved + estimate > limit`, else adds the
//! estimate to every window, atomically (Redis runs one script at a time). N
//! concurrent requests therefore pass only while their estimates fit. After
//! the response the reservation is replaced by the real cost; the window ends
//! above its limit only by the sum of `real - estimate` over the calls that
//! underestimated (see [`estimate_usd`] for when that happens).
//!
//! # Redis keys (all with a TTL set in the script that creates them)
//!
//! | key | holds | TTL |
//! |---|---|---|
//! | `llmgw:{t:<team_id>}:rl:u:<sha256(end_user)[..32]>:<w>:<k>` | spend of one end user of a team in window k of length w | rest of the window |
//! | `llmgw:{t:<team_id>}:rl:t:<w>:<k>` | spend of a team | rest of the window |
//! | `llmgw:{t:<team_id>}:budget:<YYYY-MM>` | the team's spend in a UTC calendar month | 35 days from the month's first record |
//! | `llmgw:{p:<product>}:rl:p:<w>:<k>` | spend of a product (all teams) | rest of the window |
//!
//! End-user ids are client-chosen, so they are hashed: keys hold no raw
//! client string, are bounded in length, and are safe in a webdis URL.
//! `record.lua` never recreates an expired window key (its delta is dropped:
//! the window it belonged to is over), and gives any key it finds without a
//! TTL one, so no key lives forever.
//!
//! # Hash tags: one slot per script call
//!
//! The part in braces is the key's Redis Cluster hash tag: only it decides
//! the slot. Everything of one team (its users' and its own windows, its
//! budget) shares `{t:<team_id>}`, so one call checks all of it atomically,
//! and teams spread over the slots. A product's windows are shared by every
//! team, so they carry `{p:<product>}` and, against a cluster, are checked by
//! a second call. The cost of that split: the two calls are not atomic
//! together. When one denies and the other reserved, the reservation is
//! given back through the next record flush (so for up to `record_flush_ms`
//! the other scope counts a call that did not happen: stricter, never looser);
//! the overspend bound below holds per window, as each window is still checked
//! and reserved atomically by the one call that holds it. Keys carry the tags
//! against a single Redis too (one call with every key), so one data model
//! serves both. `product` is `[A-Za-z0-9_-]` or a hash ([`key_part`]) and
//! team ids are integers: no `{` or `}` can appear inside a tag.
//!
//! # Webdis request format
//!
//! `POST /` with the command path in the body: `EVAL/<script>/<numkeys>/<key>…/<arg>…`,
//! every segment percent-encoded except `A-Z a-z 0-9 - _` (webdis splits on
//! `/`, takes a `.` in the last segment as an output extension and decodes `+`
//! as a space, so all three are encoded; a multi-line script travels intact).
//! POST rather than GET because webdis rejects request lines over ~80 KB
//! (400), which a large record batch would reach, while a body can be up to
//! `http_max_request_size` (128 MB). Plain `EVAL` every time, not `EVALSHA`:
//! the scripts are a few KB, Redis caches the compiled script by its SHA1,
//! and there is no `NOSCRIPT` after a Redis restart or failover to handle.
//! Scripts return flat arrays because webdis renders nested arrays as `null`.
//! Do not send `Connection: close` with a body (webdis 0.1.9 then never
//! answers when the body arrives in a second packet); Envoy does not.
//! webdis answers 200 even for Redis errors (`{"EVAL": [false, "ERR …"]}`)
//! and 503 when it cannot reach Redis; both are [`StoreError`]s.
//!
//! Needs Redis >= 6.0 (`SET … KEEPTTL`), standalone, or a Redis Cluster
//! reached through Envoy's `redis_proxy` (README, "Fleet: Redis Cluster"):
//! every key a script touches is declared in `KEYS` and shares one hash tag.
//!
//! # Left to the filter
//!
//! Fail-open/closed on a [`StoreError`] (limits: `fail_open`; the budget
//! always fails open, tier `Unknown`), the metric and the once-per-interval
//! log line, the 429/503 replies ([`CheckResult::error`]), headers on every
//! response, flushing [`SpendBatch`] from `on_tick`. Spend of a call that was
//! let through without a check (store down) reaches the budget but not the
//! windows: its window keys are unknown.

mod admission;
mod batch;
mod budget;
mod check;
mod config;
mod estimate;
mod webdis;

pub use admission::{Admissions, Admitted, LeaseSizing, RenewalCall};
pub use batch::{RecordOutcome, SpendBatch, PENDING_MAX_KEYS, RECORD_MAX_KEYS};
pub use budget::{
    budget_headers, budget_key, budget_status, effective_cap, month_reset_s, utc_year_month, BudgetStatus, BudgetTier,
    DisabledReason, BUDGET_KEY_TTL_S, WARN_FRACTION,
};
pub use check::{rate_limit_headers, CheckPlan, CheckResult, Combined, PartAnswer, WindowAnswer, WindowStatus};
pub use config::{applicable_windows, BudgetConfig, LimitOverrides, LimitsConfig, WindowLimit};
pub use estimate::{estimate_usd, micro_to_usd, usd_to_micro, usd_to_micro_ceil, DEFAULT_MAX_OUTPUT_TOKENS};
pub use webdis::{percent_encode, StoreError, WebdisRequest};

/// `check.lua`, sent with every check.
pub const CHECK_SCRIPT: &str = include_str!("check.lua");
/// `record.lua`, sent with every spend flush.
pub const RECORD_SCRIPT: &str = include_str!("record.lua");

/// Largest accepted limit or budget, so micro-USD amounts stay exact in Lua (< 2^53).
pub const MAX_LIMIT_USD: f64 = 1e9;
/// Longest accepted window (366 days).
pub const MAX_WINDOW_SECONDS: u64 = 366 * 86_400;

/// Who a window counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// One end user (distinct id) of one team.
    User,
    /// One product, across all teams.
    Product,
    /// One team, all its users and products.
    Team,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Product => "product",
            Scope::Team => "team",
        }
    }
}

/// One limit: at most `limit_usd` per fixed window of `window_seconds`.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub scope: Scope,
    pub window_seconds: u64,
    pub limit_usd: f64,
}

/// What a request is counted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject<'a> {
    pub team_id: i64,
    pub product: &'a str,
    /// The end user the call is attributed to (client-chosen: hashed in keys).
    pub end_user: &'a str,
}

const HASH_HEX_CHARS: usize = 32;
const MAX_PLAIN_KEY_PART: usize = 64;

/// The hash tag of everything a team owns: `{t:<team_id>}`.
pub fn team_tag(team_id: i64) -> String {
    format!("{{t:{team_id}}}")
}

/// The hash tag of a product's windows: `{p:<product>}`.
pub fn product_tag(product: &str) -> String {
    format!("{{p:{}}}", key_part(product))
}

/// The window's base key; the full key is `<base>:<window index>`.
pub fn window_base_key(window: &Window, subject: &Subject) -> String {
    let w = window.window_seconds;
    match window.scope {
        Scope::User => format!("llmgw:{{t:{}}}:rl:u:{}:{w}", subject.team_id, hash_part(subject.end_user)),
        Scope::Product => format!("llmgw:{{p:{}}}:rl:p:{w}", key_part(subject.product)),
        Scope::Team => format!("llmgw:{{t:{}}}:rl:t:{w}", subject.team_id),
    }
}

/// What decides a key's Redis Cluster slot: the text between the first `{`
/// and the next `}` when it is not empty, else the whole key (Redis's rule).
pub fn hash_tag(key: &str) -> &str {
    slot_group(key).1
}

/// `(prefix, tag)`: the key up to and including its tag's `}` (every key with
/// this prefix is in the tag's slot), and the tag; the whole key twice when untagged.
pub(crate) fn slot_group(key: &str) -> (&str, &str) {
    if let Some(open) = key.find('{') {
        if let Some(len) = key[open + 1..].find('}').filter(|len| *len > 0) {
            let close = open + 1 + len;
            return (&key[..=close], &key[open + 1..close]);
        }
    }
    (key, key)
}

/// A USD amount for a header or a message: up to 6 decimals, no trailing
/// zeros (`"9.5"`, `"0.000125"`, `"500"`); negative and non-finite are `"0"`.
pub(crate) fn format_usd(usd: f64) -> String {
    if !(usd.is_finite() && usd > 0.0) {
        return "0".into();
    }
    let s = format!("{usd:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".into()
    } else {
        s.to_string()
    }
}

/// First 128 bits of SHA-256, as hex.
fn hash_part(s: &str) -> String {
    crate::auth::sha256_hex(s, HASH_HEX_CHARS)
}

/// `s` itself when it is a short `[A-Za-z0-9_-]+` (configured product names
/// are), else a hash, so a key part never needs escaping nor grows unbounded.
fn key_part(s: &str) -> String {
    let plain = !s.is_empty()
        && s.len() <= MAX_PLAIN_KEY_PART
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        s.to_string()
    } else {
        format!("h{}", hash_part(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(user: &'a str, product: &'a str) -> Subject<'a> {
        Subject { team_id: 42, product, end_user: user }
    }

    fn w(scope: Scope, s: u64) -> Window {
        Window { scope, window_seconds: s, limit_usd: 1.0 }
    }

    #[test]
    fn keys_per_scope() {
        let s = subject("user-7", "wizard");
        let u = window_base_key(&w(Scope::User, 3600), &s);
        assert!(u.starts_with("llmgw:{t:42}:rl:u:"), "{u}");
        assert!(u.ends_with(":3600"));
        assert!(!u.contains("user-7"), "end-user ids are hashed: {u}");
        // The first 32 hex digits of SHA-256("user-7"): keys written by earlier releases stay the same.
        assert_eq!(u, "llmgw:{t:42}:rl:u:092081140b677b45dbe983b2f0d4ae02:3600");
        assert_eq!(window_base_key(&w(Scope::Product, 86400), &s), "llmgw:{p:wizard}:rl:p:86400");
        assert_eq!(window_base_key(&w(Scope::Team, 60), &s), "llmgw:{t:42}:rl:t:60");
    }

    #[test]
    fn hostile_ids_make_safe_bounded_keys() {
        let long = "x".repeat(10_000);
        for id in ["a/b", "../../FLUSHALL", "a b.json", "ü", "%2F", "", long.as_str(), "a\r\nb"] {
            for scope in [Scope::User, Scope::Product] {
                let k = window_base_key(&w(scope, 60), &subject(id, id));
                assert!(k.len() < 100, "{k}");
                let safe = |b: u8| b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'-';
                assert!(k.bytes().all(|b| safe(b) || b == b'{' || b == b'}'), "{k}");
                // One tag, its braces the only ones: the client's id cannot move the key's slot.
                assert_eq!(k.matches('{').count() + k.matches('}').count(), 2, "{k}");
                let tag = hash_tag(&k);
                assert!(tag.starts_with("t:42") || tag.starts_with("p:"), "{k}");
            }
        }
    }

    #[test]
    fn a_teams_keys_share_one_slot_and_products_have_their_own() {
        let s = subject("user-7", "wizard");
        let team = [
            window_base_key(&w(Scope::User, 60), &s),
            window_base_key(&w(Scope::Team, 3600), &s),
            budget_key(42, 1_709_251_200_000),
        ];
        for k in &team {
            assert_eq!(hash_tag(k), "t:42", "{k}");
            assert_eq!(slot_group(k).0, "llmgw:{t:42}", "{k}");
        }
        assert_eq!(hash_tag(&window_base_key(&w(Scope::Product, 60), &s)), "p:wizard");
        assert_ne!(hash_tag(&budget_key(4, 0)), hash_tag(&budget_key(42, 0)));
        // Redis's rule for keys without a usable tag: the whole key.
        assert_eq!(hash_tag("plain"), "plain");
        assert_eq!(hash_tag("a{}b{c}"), "a{}b{c}");
        assert_eq!(hash_tag("a{b"), "a{b");
        assert_eq!(slot_group("x{y}z{w}"), ("x{y}", "y"));
    }

    #[test]
    fn users_differ_by_team_and_id() {
        let a = window_base_key(&w(Scope::User, 60), &subject("a", "p"));
        let b = window_base_key(&w(Scope::User, 60), &subject("b", "p"));
        let other_team = window_base_key(&w(Scope::User, 60), &Subject { team_id: 43, product: "p", end_user: "a" });
        assert_ne!(a, b);
        assert_ne!(a, other_team);
        assert_eq!(a, window_base_key(&w(Scope::User, 60), &subject("a", "q")));
    }

    #[test]
    fn usd_formatting() {
        let cases = [(9.5, "9.5"), (500.0, "500"), (0.000125, "0.000125"), (0.0000001, "0"), (0.0, "0")];
        for (v, s) in cases {
            assert_eq!(format_usd(v), s);
        }
        assert_eq!(format_usd(-1.0), "0");
        assert_eq!(format_usd(f64::NAN), "0");
        assert_eq!(format_usd(1234.5678901), "1234.56789");
    }

    #[test]
    fn products_that_need_escaping_are_hashed() {
        assert_eq!(key_part("posthog_code"), "posthog_code");
        assert!(key_part("a:b").starts_with('h'));
        assert_ne!(key_part("a:b"), key_part("a;b"));
    }
}
