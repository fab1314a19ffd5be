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
//!    cap; [`CheckPlan::request`] is ONE webdis call running `check.lua`,
//!    which atomically denies, or reserves the estimate in every window.
//!    [`CheckPlan::parse`] turns the answer into a [`CheckResult`], or a
//!    [`StoreError`] the filter maps to fail-open (default) or fail-closed.
//! 2. After the response: the real cost goes into the root context's
//!    [`SpendBatch`] (`real - reserved` per reserved window key, `real` for
//!    the team's month key), flushed every `record_flush_ms` as ONE
//!    `record.lua` call per at most [`RECORD_MAX_KEYS`] keys. Limits and
//!    budget are fed by the same record, so they cannot disagree.
//!
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
//! `<base>:<k>`, created by `check.lua` with a TTL equal to the time left in
//! the window, in the same script. `reset` is the time to the window's end.
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
//! | `llmgw:rl:u:<team_id>:<sha256(end_user)[..32]>:<w>:<k>` | spend of one end user of a team in window k of length w | rest of the window |
//! | `llmgw:rl:p:<product>:<w>:<k>` | spend of a product (all teams) | rest of the window |
//! | `llmgw:rl:t:<team_id>:<w>:<k>` | spend of a team | rest of the window |
//! | `llmgw:budget:<team_id>:<YYYY-MM>` | the team's spend in a UTC calendar month | 35 days from the month's first record |
//!
//! End-user ids are client-chosen, so they are hashed: keys hold no raw
//! client string, are bounded in length, and are safe in a webdis URL.
//! `record.lua` never recreates an expired window key (its delta is dropped:
//! the window it belonged to is over), and gives any key it finds without a
//! TTL one, so no key lives forever.
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
//! Needs Redis >= 6.0 (`SET … KEEPTTL`), standalone or a single shard: the
//! scripts name window keys from Redis's clock, so they are not Cluster-safe.
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

pub use admission::{Admissions, Admitted};
pub use batch::{RecordOutcome, SpendBatch, PENDING_MAX_KEYS, RECORD_MAX_KEYS};
pub use budget::{
    budget_headers, budget_key, budget_status, effective_cap, month_reset_s, utc_year_month, BudgetStatus, BudgetTier,
    DisabledReason, BUDGET_KEY_TTL_S, WARN_FRACTION,
};
pub use check::{rate_limit_headers, CheckPlan, CheckResult, WindowAnswer, WindowStatus};
pub use config::{applicable_windows, BudgetConfig, LimitOverrides, LimitsConfig, WindowLimit};
pub use estimate::{estimate_usd, micro_to_usd, usd_to_micro, usd_to_micro_ceil, DEFAULT_MAX_OUTPUT_TOKENS};
pub use webdis::{percent_encode, StoreError, WebdisRequest};

use sha2::{Digest, Sha256};

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

/// Key prefix of every rate-limit window.
pub const WINDOW_KEY_PREFIX: &str = "llmgw:rl:";
const HASH_HEX_CHARS: usize = 32;
const MAX_PLAIN_KEY_PART: usize = 64;

/// The window's base key; `check.lua` appends `:<window index>`.
pub fn window_base_key(window: &Window, subject: &Subject) -> String {
    let w = window.window_seconds;
    match window.scope {
        Scope::User => format!("{WINDOW_KEY_PREFIX}u:{}:{}:{w}", subject.team_id, hash_part(subject.end_user)),
        Scope::Product => format!("{WINDOW_KEY_PREFIX}p:{}:{w}", key_part(subject.product)),
        Scope::Team => format!("{WINDOW_KEY_PREFIX}t:{}:{w}", subject.team_id),
    }
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
    let digest = Sha256::digest(s.as_bytes());
    let mut hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(HASH_HEX_CHARS);
    hex
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
        assert!(u.starts_with("llmgw:rl:u:42:"), "{u}");
        assert!(u.ends_with(":3600"));
        assert!(!u.contains("user-7"), "end-user ids are hashed: {u}");
        assert_eq!(u.len(), "llmgw:rl:u:42::3600".len() + 32);
        assert_eq!(window_base_key(&w(Scope::Product, 86400), &s), "llmgw:rl:p:wizard:86400");
        assert_eq!(window_base_key(&w(Scope::Team, 60), &s), "llmgw:rl:t:42:60");
    }

    #[test]
    fn hostile_ids_make_safe_bounded_keys() {
        let long = "x".repeat(10_000);
        for id in ["a/b", "../../FLUSHALL", "a b.json", "ü", "%2F", "", long.as_str(), "a\r\nb"] {
            for scope in [Scope::User, Scope::Product] {
                let k = window_base_key(&w(scope, 60), &subject(id, id));
                assert!(k.len() < 100, "{k}");
                assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'-'), "{k}");
            }
        }
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
