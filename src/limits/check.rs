//! The pre-forward check: one `check.lua` call, and what its answer means.

use serde_json::Value;

use super::budget::month_reset_s;
use super::estimate::{micro_to_usd, usd_to_micro, usd_to_micro_ceil};
use super::webdis::{eval_array, StoreError, WebdisRequest};
use super::{format_usd, window_base_key, Subject, Window, CHECK_SCRIPT};
use crate::errors::{ApiError, ErrorKind};

/// Where the client stands in one window, for the `x-ratelimit-*` headers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowStatus {
    pub limit_usd: f64,
    /// What is left after this call's reservation, at least 0.
    pub remaining_usd: f64,
    /// Seconds until the window ends (at least 1).
    pub reset_s: u64,
}

/// One window of an allowed check, as Redis saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowAnswer {
    /// The full window key (`<base>:<index>`).
    pub key: String,
    /// Spent in the window, this call's reservation included, micro-USD.
    pub spent_micro: i64,
    /// Milliseconds until the window ends.
    pub reset_ms: u64,
}

/// What the check decided.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckResult {
    /// Forward the call. The estimate is reserved in every window: hand
    /// `reservations` (full window key, micro-USD) to [`super::SpendBatch::settle`]
    /// when the call ends, whatever its outcome.
    Allowed {
        /// The window with the least left (ties: the one resetting last); `None` without windows.
        tightest: Option<WindowStatus>,
        /// The team's spend this month; `None` when the plan has no budget.
        month_spend_usd: Option<f64>,
        reservations: Vec<(String, i64)>,
        /// Every window, in the plan's order (for [`super::Admissions`]).
        windows: Vec<WindowAnswer>,
        /// Room reserved beyond the estimate in every window, for local admission.
        lease_micro: i64,
    },
    /// 429: this window cannot take the estimate; nothing was reserved.
    Denied {
        window: Window,
        status: WindowStatus,
        retry_after_s: u64,
        /// The team's spend this month; `None` when the plan has no budget.
        month_spend_usd: Option<f64>,
    },
    /// 429: the team's monthly spend reached its cap; nothing was reserved.
    BudgetExceeded {
        cap_usd: f64,
        month_spend_usd: f64,
        retry_after_s: u64,
        /// The window with the least left, as it stands; `None` without windows.
        tightest: Option<WindowStatus>,
    },
}

impl CheckResult {
    /// Rate-limit headers for the response (`x-ratelimit-*` of the tightest
    /// or denying window, and `retry-after` on a denial).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            CheckResult::Allowed { tightest, .. } => tightest.as_ref().map(rate_limit_headers).unwrap_or_default(),
            CheckResult::Denied { status, retry_after_s, .. } => {
                let mut h = rate_limit_headers(status);
                h.push(("retry-after", retry_after_s.to_string()));
                h
            }
            CheckResult::BudgetExceeded { retry_after_s, tightest, .. } => {
                let mut h = tightest.as_ref().map(rate_limit_headers).unwrap_or_default();
                h.push(("retry-after", retry_after_s.to_string()));
                h
            }
        }
    }

    /// The 429 for a denial with every header the client gets, each once:
    /// [`CheckResult::headers`] and the budget's (`x-posthog-budget`,
    /// `x-posthog-budget-remaining-usd`) for `cap_usd`. `None` when allowed.
    pub fn denial(&self, estimate_usd: f64, cap_usd: Option<f64>, engage_threshold: f64) -> Option<ApiError> {
        let spend = match self {
            CheckResult::Allowed { .. } => return None,
            CheckResult::Denied { month_spend_usd, .. } => *month_spend_usd,
            CheckResult::BudgetExceeded { month_spend_usd, .. } => Some(*month_spend_usd),
        };
        let cap = match self {
            CheckResult::BudgetExceeded { cap_usd, .. } => Some(*cap_usd),
            _ => cap_usd,
        };
        let budget = super::budget_headers(&super::budget_status(cap, spend, engage_threshold));
        let error = self.error(estimate_usd)?;
        Some(budget.into_iter().fold(error, |e, (k, v)| e.header(k, v)))
    }

    /// The 429 for a denial (with [`CheckResult::headers`]), `None` when allowed.
    /// Code `rate_limit_exceeded` for a window, `budget_exceeded` for the budget.
    pub fn error(&self, estimate_usd: f64) -> Option<ApiError> {
        let (message, code) = match self {
            CheckResult::Allowed { .. } => return None,
            CheckResult::Denied { window, status, retry_after_s, .. } => (
                format!(
                    "Rate limit exceeded: the per-{} limit of ${} per {} s does not cover this request \
                     (estimated ${}, ${} left); retry after {} s",
                    window.scope.name(),
                    format_usd(window.limit_usd),
                    window.window_seconds,
                    format_usd(estimate_usd),
                    format_usd(status.remaining_usd),
                    retry_after_s
                ),
                "rate_limit_exceeded",
            ),
            CheckResult::BudgetExceeded { cap_usd, month_spend_usd, retry_after_s, .. } => (
                format!(
                    "Monthly budget exceeded: ${} spent of ${} this month (UTC); it resets in {} s",
                    format_usd(*month_spend_usd),
                    format_usd(*cap_usd),
                    retry_after_s
                ),
                "budget_exceeded",
            ),
        };
        let err = ApiError::new(ErrorKind::RateLimited, message).code(code);
        Some(self.headers().into_iter().fold(err, |e, (k, v)| e.header(k, v)))
    }
}

/// `x-ratelimit-limit-usd`, `x-ratelimit-remaining-usd` (USD) and
/// `x-ratelimit-reset` (seconds until the window ends).
pub fn rate_limit_headers(s: &WindowStatus) -> Vec<(&'static str, String)> {
    vec![
        ("x-ratelimit-limit-usd", format_usd(s.limit_usd)),
        ("x-ratelimit-remaining-usd", format_usd(s.remaining_usd)),
        ("x-ratelimit-reset", s.reset_s.to_string()),
    ]
}

#[derive(Clone, Debug, PartialEq)]
struct PlannedWindow {
    window: Window,
    base_key: String,
    limit_micro: i64,
}

/// One request's check: its windows with their keys, the estimate and the
/// budget. Build it, send [`CheckPlan::request`], and [`CheckPlan::parse`] the answer.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckPlan {
    windows: Vec<PlannedWindow>,
    estimate_micro: i64,
    /// The month key and the cap in micro-USD, when the budget is enabled.
    budget: Option<(String, i64)>,
    now_ms: u64,
    /// Room to reserve beyond the estimate when every window has it.
    lease_micro: i64,
    /// See [`CheckPlan::signature`].
    signature: String,
}

impl CheckPlan {
    /// `windows` from [`super::applicable_windows`]; `budget_cap_usd` from
    /// [`super::effective_cap`] (disabled when `None` or <= 0); `now_ms` the
    /// filter's clock (for the budget's month only: windows use Redis's clock).
    pub fn new(
        windows: Vec<Window>,
        subject: &Subject,
        estimate_usd: f64,
        budget_cap_usd: Option<f64>,
        now_ms: u64,
    ) -> CheckPlan {
        let mut planned: Vec<PlannedWindow> = Vec::with_capacity(windows.len());
        for window in windows {
            let base_key = window_base_key(&window, subject);
            let limit_micro = usd_to_micro(window.limit_usd);
            match planned.iter_mut().find(|p| p.base_key == base_key) {
                // The same key twice: keep the stricter limit.
                Some(p) if limit_micro < p.limit_micro => *p = PlannedWindow { window, base_key, limit_micro },
                Some(_) => {}
                None => planned.push(PlannedWindow { window, base_key, limit_micro }),
            }
        }
        let budget = budget_cap_usd
            .filter(|c| c.is_finite() && *c > 0.0)
            .map(|c| (super::budget_key(subject.team_id, now_ms), usd_to_micro_ceil(c)));
        let mut signature = String::new();
        for p in &planned {
            signature.push_str(&p.base_key);
            signature.push('|');
        }
        if let Some((key, _)) = &budget {
            signature.push_str(key);
        }
        let estimate_micro = usd_to_micro_ceil(estimate_usd);
        CheckPlan { windows: planned, estimate_micro, budget, now_ms, lease_micro: 0, signature }
    }

    /// Asks for a lease of `lease_micro` on top of the estimate (see [`super::Admissions`]).
    pub fn with_lease(mut self, lease_micro: i64) -> CheckPlan {
        self.lease_micro = lease_micro.max(0);
        self
    }

    /// Nothing to check: no window and no budget. Skip the call.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.budget.is_none()
    }

    pub fn windows(&self) -> impl Iterator<Item = &Window> {
        self.windows.iter().map(|p| &p.window)
    }

    pub fn estimate_micro(&self) -> i64 {
        self.estimate_micro
    }

    /// Each window's limit in micro-USD, in order.
    pub fn limits_micro(&self) -> impl ExactSizeIterator<Item = i64> + '_ {
        self.windows.iter().map(|p| p.limit_micro)
    }

    pub fn budget_cap_micro(&self) -> Option<i64> {
        self.budget.as_ref().map(|(_, cap)| *cap)
    }

    /// Names the windows and the budget: plans with the same signature check the same keys.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// The `check.lua` call.
    pub fn request(&self) -> WebdisRequest {
        let mut keys: Vec<&str> = self.windows.iter().map(|p| p.base_key.as_str()).collect();
        let cap = match &self.budget {
            Some((key, cap)) => {
                keys.push(key);
                *cap
            }
            None => 0,
        };
        let mut args = vec![self.estimate_micro.to_string(), self.windows.len().to_string(), cap.to_string()];
        for p in &self.windows {
            args.push(p.window.window_seconds.to_string());
            args.push(p.limit_micro.to_string());
        }
        if self.lease_micro > 0 {
            args.push(self.lease_micro.to_string());
        }
        WebdisRequest::eval(CHECK_SCRIPT, &keys, &args)
    }

    /// Interprets webdis's answer (`status` 0: no response or timeout).
    pub fn parse(&self, status: u32, body: &[u8]) -> Result<CheckResult, StoreError> {
        let items = eval_array(status, body)?;
        let bad = |what: &str| StoreError::Malformed(what.to_string());
        match items.as_slice() {
            [tag, spend, rest @ ..] if tag.as_i64() == Some(1) => {
                // The windows, then the lease granted (absent from older scripts: none).
                let n = 3 * self.windows.len();
                let (triples, lease) = match (rest.get(..n), rest.get(n..)) {
                    (Some(triples), Some([])) => (triples, 0),
                    (Some(triples), Some([lease])) => {
                        (triples, lease.as_i64().filter(|l| *l >= 0).ok_or_else(|| bad("lease"))?)
                    }
                    _ => return Err(bad("wrong number of windows")),
                };
                let lease_micro = lease;
                let spend = spend.as_i64().ok_or_else(|| bad("month spend"))?;
                let month_spend_usd = match self.budget {
                    Some(_) if spend >= 0 => Some(micro_to_usd(spend)),
                    Some(_) => return Err(bad("month spend")),
                    None => None,
                };
                let mut reservations = Vec::with_capacity(self.windows.len());
                let mut windows = Vec::with_capacity(self.windows.len());
                let mut tightest: Option<WindowStatus> = None;
                for (p, triple) in self.windows.iter().zip(triples.chunks_exact(3)) {
                    let [key, spent, reset_ms] = triple else { return Err(bad("window")) };
                    let key = key.as_str().filter(|k| is_window_key(k, &p.base_key)).ok_or_else(|| bad("key"))?;
                    let spent = spent.as_i64().ok_or_else(|| bad("spent"))?;
                    // What is left for the client: the lease is theirs too.
                    let status =
                        window_status(p, spent.saturating_sub(lease_micro), reset_ms).ok_or_else(|| bad("reset"))?;
                    let reset_ms = reset_ms.as_u64().unwrap_or_default();
                    windows.push(WindowAnswer { key: key.to_string(), spent_micro: spent, reset_ms });
                    let tighter = match &tightest {
                        None => true,
                        Some(t) => (status.remaining_usd, t.reset_s) < (t.remaining_usd, status.reset_s),
                    };
                    if tighter {
                        tightest = Some(status);
                    }
                    reservations.push((key.to_string(), self.estimate_micro));
                }
                Ok(CheckResult::Allowed { tightest, month_spend_usd, reservations, windows, lease_micro })
            }
            [tag, index, reset_ms, spent, month @ ..] if tag.as_i64() == Some(0) && month.len() <= 1 => {
                let p = index
                    .as_u64()
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| i.checked_sub(1))
                    .and_then(|i| self.windows.get(i))
                    .ok_or_else(|| bad("denied window"))?;
                let spent = spent.as_i64().ok_or_else(|| bad("spent"))?;
                let status = window_status(p, spent, reset_ms).ok_or_else(|| bad("reset"))?;
                // The month's spend (absent from older scripts: unknown).
                let month_spend_usd = match (month.first().and_then(Value::as_i64), &self.budget) {
                    (Some(spend), Some(_)) if spend >= 0 => Some(micro_to_usd(spend)),
                    _ => None,
                };
                Ok(CheckResult::Denied {
                    window: p.window.clone(),
                    retry_after_s: status.reset_s,
                    status,
                    month_spend_usd,
                })
            }
            [tag, spend, windows @ ..] if tag.as_i64() == Some(2) => {
                let (_, cap) = self.budget.as_ref().ok_or_else(|| bad("budget denial without a budget"))?;
                let spend = spend.as_i64().ok_or_else(|| bad("month spend"))?;
                // Each window's spend and reset as it stands (absent from older scripts).
                let mut tightest: Option<WindowStatus> = None;
                if windows.len() == 2 * self.windows.len() {
                    for (p, pair) in self.windows.iter().zip(windows.chunks_exact(2)) {
                        let [spent, reset_ms] = pair else { return Err(bad("window")) };
                        let spent = spent.as_i64().ok_or_else(|| bad("spent"))?;
                        let status = window_status(p, spent, reset_ms).ok_or_else(|| bad("reset"))?;
                        if tightest
                            .is_none_or(|t| (status.remaining_usd, t.reset_s) < (t.remaining_usd, status.reset_s))
                        {
                            tightest = Some(status);
                        }
                    }
                } else if !windows.is_empty() {
                    return Err(bad("wrong number of windows"));
                }
                Ok(CheckResult::BudgetExceeded {
                    cap_usd: micro_to_usd(*cap),
                    month_spend_usd: micro_to_usd(spend),
                    retry_after_s: month_reset_s(self.now_ms),
                    tightest,
                })
            }
            _ => Err(bad("unknown answer")),
        }
    }
}

fn window_status(p: &PlannedWindow, spent: i64, reset_ms: &Value) -> Option<WindowStatus> {
    let reset_ms = reset_ms.as_u64()?;
    Some(WindowStatus {
        limit_usd: p.window.limit_usd,
        remaining_usd: micro_to_usd(p.limit_micro.saturating_sub(spent).max(0)),
        reset_s: reset_ms.div_ceil(1000).max(1),
    })
}

/// `<base>:<index>`, as `check.lua` names a window's key.
fn is_window_key(key: &str, base: &str) -> bool {
    key.strip_prefix(base)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::super::{Scope, RECORD_SCRIPT};
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_709_251_200_000; // 2024-03-01T00:00:00Z

    fn subject() -> Subject<'static> {
        Subject { team_id: 42, product: "wizard", end_user: "user-7" }
    }

    fn windows() -> Vec<Window> {
        vec![
            Window { scope: Scope::User, window_seconds: 60, limit_usd: 1.0 },
            Window { scope: Scope::User, window_seconds: 3600, limit_usd: 10.0 },
            Window { scope: Scope::Product, window_seconds: 86_400, limit_usd: 1000.0 },
        ]
    }

    fn plan(cap: Option<f64>) -> CheckPlan {
        CheckPlan::new(windows(), &subject(), 0.25, cap, NOW)
    }

    fn keys(p: &CheckPlan) -> Vec<String> {
        p.windows.iter().map(|w| w.base_key.clone()).collect()
    }

    fn answer(v: serde_json::Value) -> Vec<u8> {
        json!({ "EVAL": v }).to_string().into_bytes()
    }

    /// Decodes the EVAL body back into segments, as webdis does.
    fn segments(body: &str) -> Vec<String> {
        body.split('/')
            .map(|seg| {
                let bytes = seg.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'%' {
                        out.push(u8::from_str_radix(&seg[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).unwrap()
            })
            .collect()
    }

    #[test]
    fn request_carries_keys_and_windows() {
        let p = plan(Some(100.0));
        let r = p.request();
        assert_eq!((r.method, r.path), ("POST", "/"));
        let s = segments(&r.body);
        assert_eq!(s[0], "EVAL");
        assert_eq!(s[1], CHECK_SCRIPT);
        assert_eq!(s[2], "4");
        let k = keys(&p);
        assert_eq!(&s[3..6], &k[..]);
        assert_eq!(s[6], "llmgw:budget:42:2024-03");
        assert_eq!(&s[7..], &["250000", "3", "100000000", "60", "1000000", "3600", "10000000", "86400", "1000000000"]);
        assert_ne!(CHECK_SCRIPT, RECORD_SCRIPT);
    }

    #[test]
    fn no_budget_means_no_budget_key_and_zero_cap() {
        for cap in [None, Some(0.0), Some(-1.0)] {
            let s = segments(&plan(cap).request().body);
            assert_eq!(s[2], "3");
            assert_eq!(s[6..9], ["250000", "3", "0"]);
        }
        let empty = CheckPlan::new(vec![], &subject(), 0.1, None, NOW);
        assert!(empty.is_empty());
        assert!(!CheckPlan::new(vec![], &subject(), 0.1, Some(5.0), NOW).is_empty());
    }

    #[test]
    fn duplicate_windows_keep_the_stricter_limit() {
        let mut ws = windows();
        ws.push(Window { scope: Scope::User, window_seconds: 60, limit_usd: 0.5 });
        let p = CheckPlan::new(ws, &subject(), 0.1, None, NOW);
        assert_eq!(p.windows().count(), 3);
        assert_eq!(p.windows().next().unwrap().limit_usd, 0.5);
    }

    #[test]
    fn allowed_answer() {
        let p = plan(Some(100.0));
        let k = keys(&p);
        let body = answer(json!([
            1,
            12_500_000,
            format!("{}:29", k[0]),
            750_000,
            30_500,
            format!("{}:4", k[1]),
            9_800_000,
            1_000_000,
            format!("{}:1", k[2]),
            2_000_000,
            5_000
        ]));
        let CheckResult::Allowed { tightest, month_spend_usd, reservations, .. } = p.parse(200, &body).unwrap() else {
            panic!()
        };
        // 60 s: 0.25 left; 3600 s: 0.2 left (tightest); product: 998 left.
        assert_eq!(tightest, Some(WindowStatus { limit_usd: 10.0, remaining_usd: 0.2, reset_s: 1000 }));
        assert_eq!(month_spend_usd, Some(12.5));
        assert_eq!(reservations.len(), 3);
        assert_eq!(reservations[0], (format!("{}:29", k[0]), 250_000));
        let headers = p.parse(200, &body).unwrap().headers();
        assert_eq!(
            headers,
            vec![
                ("x-ratelimit-limit-usd", "10".to_string()),
                ("x-ratelimit-remaining-usd", "0.2".to_string()),
                ("x-ratelimit-reset", "1000".to_string())
            ]
        );
        assert!(p.parse(200, &body).unwrap().error(0.25).is_none());
    }

    #[test]
    fn tightest_ties_go_to_the_later_reset_and_overspend_shows_zero() {
        let p = plan(None);
        let k = keys(&p);
        let body = answer(json!([
            1,
            -1,
            format!("{}:1", k[0]),
            1_200_000,
            10,
            format!("{}:1", k[1]),
            10_000_000,
            2_000,
            format!("{}:1", k[2]),
            0,
            3_000
        ]));
        let CheckResult::Allowed { tightest, month_spend_usd, .. } = p.parse(200, &body).unwrap() else { panic!() };
        assert_eq!(tightest, Some(WindowStatus { limit_usd: 10.0, remaining_usd: 0.0, reset_s: 2 }));
        assert_eq!(month_spend_usd, None);
    }

    #[test]
    fn denied_answer() {
        let p = plan(None);
        let r = p.parse(200, &answer(json!([0, 2, 1_234_001, 9_900_000]))).unwrap();
        let CheckResult::Denied { window, status, retry_after_s, .. } = &r else { panic!() };
        assert_eq!(window, &windows()[1]);
        assert_eq!(*retry_after_s, 1235);
        assert_eq!(status.remaining_usd, 0.1);
        let e = r.error(0.25).unwrap();
        assert_eq!(e.status(), 429);
        assert_eq!(e.code, Some("rate_limit_exceeded"));
        assert!(e.message.contains("per-user limit of $10 per 3600 s"), "{}", e.message);
        assert!(e.headers.contains(&("retry-after", "1235".into())));
        assert!(e.headers.contains(&("x-ratelimit-remaining-usd", "0.1".into())));
    }

    #[test]
    fn budget_answer() {
        let p = plan(Some(100.0));
        let r = p.parse(200, &answer(json!([2, 100_000_001]))).unwrap();
        assert_eq!(
            r,
            CheckResult::BudgetExceeded {
                cap_usd: 100.0,
                month_spend_usd: 100.000001,
                retry_after_s: 31 * 86400,
                tightest: None
            }
        );
        let e = r.error(0.1).unwrap();
        assert_eq!((e.status(), e.code), (429, Some("budget_exceeded")));
        assert!(e.headers.contains(&("retry-after", (31 * 86400).to_string())));
        // A budget denial when the plan had no budget is garbage.
        assert!(matches!(plan(None).parse(200, &answer(json!([2, 5]))), Err(StoreError::Malformed(_))));
    }

    /// Every header a denial sets, each exactly once, with the budget's.
    #[test]
    fn denials_carry_every_header_once() {
        let names = |e: &ApiError| {
            let mut n: Vec<&str> = e.headers.iter().map(|(k, _)| *k).collect();
            n.sort_unstable();
            n
        };
        let all = [
            "retry-after",
            "x-posthog-budget",
            "x-posthog-budget-remaining-usd",
            "x-ratelimit-limit-usd",
            "x-ratelimit-remaining-usd",
            "x-ratelimit-reset",
        ];
        // A window denies; the month stands at $40 of $100.
        let p = plan(Some(100.0));
        let r = p.parse(200, &answer(json!([0, 2, 1_234_001, 9_900_000, 40_000_000]))).unwrap();
        let e = r.denial(0.25, Some(100.0), 0.95).unwrap();
        assert_eq!(names(&e), all);
        assert!(e.headers.contains(&("x-posthog-budget", "ok".into())));
        assert!(e.headers.contains(&("x-posthog-budget-remaining-usd", "60".into())));
        assert!(e.headers.contains(&("x-ratelimit-remaining-usd", "0.1".into())));
        // The budget denies: the windows as they stand (the tightest: $0.5 of $1 left).
        let r = p.parse(200, &answer(json!([2, 100_000_001, 500_000, 30_000, 0, 3_000_000, 0, 80_000_000]))).unwrap();
        let e = r.denial(0.25, Some(100.0), 0.95).unwrap();
        assert_eq!(names(&e), all);
        assert!(e.headers.contains(&("x-posthog-budget", "exceeded".into())));
        assert!(e.headers.contains(&("x-posthog-budget-remaining-usd", "0".into())));
        assert!(e.headers.contains(&("x-ratelimit-remaining-usd", "0.5".into())));
        assert!(e.headers.contains(&("x-ratelimit-reset", "30".into())));
        // Without a budget, a window denial has no budget headers; an allowed check no denial.
        let r = plan(None).parse(200, &answer(json!([0, 1, 1_000, 900_000, -1]))).unwrap();
        let e = r.denial(0.25, None, 0.95).unwrap();
        assert_eq!(
            names(&e),
            ["retry-after", "x-ratelimit-limit-usd", "x-ratelimit-remaining-usd", "x-ratelimit-reset"]
        );
        assert!(p.parse(200, &answer(json!([2, 1, 5]))).is_err(), "half a window");
    }

    #[test]
    fn errors_and_garbage() {
        let p = plan(Some(1.0));
        let k = keys(&p);
        assert_eq!(p.parse(0, b""), Err(StoreError::NoResponse));
        assert_eq!(p.parse(503, b""), Err(StoreError::Status(503)));
        assert!(matches!(p.parse(200, &answer(json!([false, "ERR x"]))), Err(StoreError::Redis(_))));
        let ok_tail = json!([format!("{}:1", k[1]), 1, 1, format!("{}:1", k[2]), 1, 1]);
        let with_first = |first: serde_json::Value| {
            let mut v = vec![json!(1), json!(0), first, json!(1), json!(1)];
            v.extend(ok_tail.as_array().unwrap().iter().cloned());
            answer(serde_json::Value::Array(v))
        };
        let garbage = [
            answer(json!([])),
            answer(json!([7])),
            answer(json!([1, 0])),
            answer(json!([1, -1, "k", 1, 1])),
            answer(json!([0, 0, 1, 1])),
            answer(json!([0, 4, 1, 1])),
            answer(json!([0, 1, -5, 1])),
            answer(json!(["1", 0])),
            with_first(json!("llmgw:other:1")),
            with_first(json!(format!("{}:", k[0]))),
            with_first(json!(format!("{}:1x", k[0]))),
            with_first(json!(null)),
            b"not json".to_vec(),
        ];
        for g in garbage {
            assert!(matches!(p.parse(200, &g), Err(StoreError::Malformed(_))), "{}", String::from_utf8_lossy(&g));
        }
        // Sanity: the well-formed variant parses.
        assert!(p.parse(200, &with_first(json!(format!("{}:1", k[0])))).is_ok());
        // A missing month spend with a budget is garbage, not "0 spent".
        let mut v = vec![json!(1), json!(-1), json!(format!("{}:1", k[0])), json!(1), json!(1)];
        v.extend(ok_tail.as_array().unwrap().iter().cloned());
        assert!(p.parse(200, &answer(serde_json::Value::Array(v))).is_err());
    }
}
