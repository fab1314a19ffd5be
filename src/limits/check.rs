//! The pre-forward check: one `check.lua` call per hash tag (one in all
//! against a single Redis), and what the answers mean together.

use super::budget::month_reset_s;
use super::estimate::{micro_to_usd, usd_to_micro, usd_to_micro_ceil};
use super::webdis::{eval_array, StoreError, WebdisRequest};
use super::{format_usd, hash_tag, window_base_key, Subject, Window, CHECK_SCRIPT};
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

/// One `check.lua` call of a plan: some of its windows (indices into the
/// plan's windows, in order) and maybe the budget, all of one hash tag when
/// the plan is split by slot.
#[derive(Clone, Debug, PartialEq)]
struct Part {
    windows: Vec<usize>,
    budget: bool,
}

/// What one `check.lua` call answered.
#[derive(Clone, Debug, PartialEq)]
pub enum PartAnswer {
    /// The estimate (and `lease_micro`, when granted) is reserved in this
    /// call's windows, in the order the call listed them.
    Allowed {
        /// The month's spend in micro-USD, when this call read the budget.
        month_spend_micro: Option<i64>,
        windows: Vec<WindowAnswer>,
        lease_micro: i64,
    },
    /// A window or the budget denies (a [`CheckResult::Denied`] or
    /// [`CheckResult::BudgetExceeded`]); this call reserved nothing.
    Denied(CheckResult),
    /// A key named another window than Redis's current one: nothing was
    /// written. Re-send the call ([`CheckPlan::set_window_clock`] with this
    /// time first); keep the offset to the local clock for later plans.
    WrongWindow { redis_now_ms: u64 },
}

/// The answers of a plan's calls made into one.
#[derive(Debug, PartialEq)]
pub struct Combined {
    pub result: Result<CheckResult, StoreError>,
    /// On an error: the estimates that the calls which did answer reserved
    /// (full window key, micro-USD). Failing open, they are the call's
    /// reservations, settled with its real cost; failing closed, give them back.
    pub reserved: Vec<(String, i64)>,
    /// Room reserved by calls that allowed but is not used (a denial by
    /// another call, or a lease the other call did not grant): give it back
    /// ([`super::SpendBatch::release`]).
    pub give_back: Vec<(String, i64)>,
}

/// One request's check: its windows with their keys, the estimate and the
/// budget. Build it, send [`CheckPlan::request`] for each of its
/// [`CheckPlan::parts`], [`CheckPlan::parse_part`] each answer and
/// [`CheckPlan::combine`] them.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckPlan {
    windows: Vec<PlannedWindow>,
    estimate_micro: i64,
    /// The month key and the cap in micro-USD, when the budget is enabled.
    budget: Option<(String, i64)>,
    now_ms: u64,
    /// The time that names the windows' keys (Redis's, as best known).
    window_clock_ms: u64,
    /// Room to reserve beyond the estimate when every window has it.
    lease_micro: i64,
    /// See [`CheckPlan::signature`].
    signature: String,
    parts: Vec<Part>,
}

impl CheckPlan {
    /// `windows` from [`super::applicable_windows`]; `budget_cap_usd` from
    /// [`super::effective_cap`] (disabled when `None` or <= 0); `now_ms` the
    /// time to name the budget's month and the windows' keys by: the filter's
    /// clock corrected by what Redis said of it (windows follow Redis's clock).
    /// One call checks everything: split it with [`CheckPlan::split_by_slot`]
    /// for a Redis Cluster.
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
        let parts = vec![Part { windows: (0..planned.len()).collect(), budget: budget.is_some() }];
        CheckPlan {
            windows: planned,
            estimate_micro,
            budget,
            now_ms,
            window_clock_ms: now_ms,
            lease_micro: 0,
            signature,
            parts,
        }
    }

    /// One call per hash tag (a team's keys, a product's), for a Redis
    /// Cluster, where a script may only touch keys of one slot.
    pub fn split_by_slot(mut self) -> CheckPlan {
        /// The part of `tag`, made when it is the first key with it.
        fn part_of<'a>(parts: &'a mut Vec<(String, Part)>, tag: &str) -> Option<&'a mut Part> {
            if !parts.iter().any(|(t, _)| t == tag) {
                parts.push((tag.to_string(), Part { windows: Vec::new(), budget: false }));
            }
            parts.iter_mut().find(|(t, _)| t == tag).map(|(_, p)| p)
        }
        let mut parts = Vec::new();
        for (i, p) in self.windows.iter().enumerate() {
            if let Some(part) = part_of(&mut parts, hash_tag(&p.base_key)) {
                part.windows.push(i);
            }
        }
        if let Some((key, _)) = &self.budget {
            if let Some(part) = part_of(&mut parts, hash_tag(key)) {
                part.budget = true;
            }
        }
        let parts = parts.into_iter().map(|(_, p)| p).collect();
        self.parts = parts;
        self
    }

    /// Asks for a lease of `lease_micro` on top of the estimate (see [`super::Admissions`]).
    pub fn with_lease(mut self, lease_micro: i64) -> CheckPlan {
        self.lease_micro = lease_micro.max(0);
        self
    }

    /// A lease's renewal: the same keys, no estimate (nothing to admit now,
    /// nothing a window that still has room can deny), `lease_micro` to
    /// reserve, the windows named by `now_ms` (Redis's clock, as best known).
    pub fn renewal(&self, now_ms: u64, lease_micro: i64) -> CheckPlan {
        CheckPlan { estimate_micro: 0, window_clock_ms: now_ms, ..self.clone() }.with_lease(lease_micro)
    }

    /// The smallest window limit, micro-USD; `None` without windows.
    pub fn smallest_limit_micro(&self) -> Option<i64> {
        self.windows.iter().map(|p| p.limit_micro).min()
    }

    /// Names the windows' keys by this time from now on (Redis's, from a [`PartAnswer::WrongWindow`]).
    pub fn set_window_clock(&mut self, now_ms: u64) {
        self.window_clock_ms = now_ms;
    }

    /// Nothing to check: no window and no budget. Skip the call.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.budget.is_none()
    }

    /// How many `check.lua` calls the plan takes.
    pub fn parts(&self) -> usize {
        self.parts.len()
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

    /// The full key of window `p` at the window clock: `<base>:<floor(now / length)>`.
    fn window_key(&self, p: &PlannedWindow) -> String {
        let length_ms = p.window.window_seconds.saturating_mul(1000).max(1);
        format!("{}:{}", p.base_key, self.window_clock_ms / length_ms)
    }

    /// The `check.lua` call of part `part` (an empty call for a part that does not exist).
    pub fn request(&self, part: usize) -> WebdisRequest {
        let empty = Part { windows: Vec::new(), budget: false };
        let part = self.parts.get(part).unwrap_or(&empty);
        let windows: Vec<&PlannedWindow> = part.windows.iter().filter_map(|i| self.windows.get(*i)).collect();
        let mut keys: Vec<String> = windows.iter().map(|p| self.window_key(p)).collect();
        let cap = match &self.budget {
            Some((key, cap)) if part.budget => {
                keys.push(key.clone());
                *cap
            }
            _ => 0,
        };
        let mut args = vec![self.estimate_micro.to_string(), windows.len().to_string(), cap.to_string()];
        for p in &windows {
            args.push(p.window.window_seconds.to_string());
            args.push(p.limit_micro.to_string());
        }
        if self.lease_micro > 0 {
            args.push(self.lease_micro.to_string());
        }
        WebdisRequest::eval(CHECK_SCRIPT, &keys, &args)
    }

    /// Interprets webdis's answer to [`CheckPlan::request`] of `part` (`status` 0: no response or timeout).
    pub fn parse_part(&self, part: usize, status: u32, body: &[u8]) -> Result<PartAnswer, StoreError> {
        let items = eval_array(status, body)?;
        let bad = |what: &str| StoreError::Malformed(what.to_string());
        let part = self.parts.get(part).ok_or_else(|| bad("no such part"))?;
        let windows: Vec<&PlannedWindow> = part.windows.iter().filter_map(|i| self.windows.get(*i)).collect();
        let budget = self.budget.as_ref().filter(|_| part.budget);
        match items.as_slice() {
            [tag, spend, rest @ ..] if tag.as_i64() == Some(1) => {
                // The windows, then the lease granted (absent from older scripts: none).
                let n = 3 * windows.len();
                let (triples, lease_micro) = match (rest.get(..n), rest.get(n..)) {
                    (Some(triples), Some([])) => (triples, 0),
                    (Some(triples), Some([lease])) => {
                        (triples, lease.as_i64().filter(|l| *l >= 0).ok_or_else(|| bad("lease"))?)
                    }
                    _ => return Err(bad("wrong number of windows")),
                };
                let spend = spend.as_i64().ok_or_else(|| bad("month spend"))?;
                let month_spend_micro = match budget {
                    Some(_) if spend >= 0 => Some(spend),
                    Some(_) => return Err(bad("month spend")),
                    None => None,
                };
                let mut answers = Vec::with_capacity(windows.len());
                for (p, triple) in windows.iter().zip(triples.chunks_exact(3)) {
                    let [key, spent, reset_ms] = triple else { return Err(bad("window")) };
                    let key = key.as_str().filter(|k| is_window_key(k, &p.base_key)).ok_or_else(|| bad("key"))?;
                    let spent = spent.as_i64().ok_or_else(|| bad("spent"))?;
                    let reset_ms = reset_ms.as_u64().ok_or_else(|| bad("reset"))?;
                    answers.push(WindowAnswer { key: key.to_string(), spent_micro: spent, reset_ms });
                }
                Ok(PartAnswer::Allowed { month_spend_micro, windows: answers, lease_micro })
            }
            [tag, index, reset_ms, spent, month @ ..] if tag.as_i64() == Some(0) && month.len() <= 1 => {
                let p = index
                    .as_u64()
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| i.checked_sub(1))
                    .and_then(|i| windows.get(i))
                    .ok_or_else(|| bad("denied window"))?;
                let spent = spent.as_i64().ok_or_else(|| bad("spent"))?;
                let reset_ms = reset_ms.as_u64().ok_or_else(|| bad("reset"))?;
                let status = window_status(p, spent, reset_ms);
                // The month's spend, when this call read the budget.
                let month_spend_usd = match (month.first().and_then(serde_json::Value::as_i64), budget) {
                    (Some(spend), Some(_)) if spend >= 0 => Some(micro_to_usd(spend)),
                    _ => None,
                };
                Ok(PartAnswer::Denied(CheckResult::Denied {
                    window: p.window.clone(),
                    retry_after_s: status.reset_s,
                    status,
                    month_spend_usd,
                }))
            }
            [tag, spend, stand @ ..] if tag.as_i64() == Some(2) => {
                let (_, cap) = budget.ok_or_else(|| bad("budget denial without a budget"))?;
                let spend = spend.as_i64().ok_or_else(|| bad("month spend"))?;
                // This call's windows as they stand, for the rate-limit headers.
                let mut tightest: Option<WindowStatus> = None;
                if stand.len() == 2 * windows.len() {
                    for (p, pair) in windows.iter().zip(stand.chunks_exact(2)) {
                        let [spent, reset_ms] = pair else { return Err(bad("window")) };
                        let spent = spent.as_i64().ok_or_else(|| bad("spent"))?;
                        let reset_ms = reset_ms.as_u64().ok_or_else(|| bad("reset"))?;
                        let status = window_status(p, spent, reset_ms);
                        if tightest
                            .is_none_or(|t| (status.remaining_usd, t.reset_s) < (t.remaining_usd, status.reset_s))
                        {
                            tightest = Some(status);
                        }
                    }
                } else if !stand.is_empty() {
                    return Err(bad("wrong number of windows"));
                }
                Ok(PartAnswer::Denied(CheckResult::BudgetExceeded {
                    cap_usd: micro_to_usd(*cap),
                    month_spend_usd: micro_to_usd(spend),
                    retry_after_s: month_reset_s(self.now_ms),
                    tightest,
                }))
            }
            [tag, index, _, now_ms] if tag.as_i64() == Some(3) => {
                let known = index
                    .as_u64()
                    .and_then(|i| usize::try_from(i).ok())
                    .is_some_and(|i| (1..=windows.len()).contains(&i));
                match now_ms.as_u64().filter(|_| known) {
                    Some(redis_now_ms) => Ok(PartAnswer::WrongWindow { redis_now_ms }),
                    None => Err(bad("window index")),
                }
            }
            _ => Err(bad("unknown answer")),
        }
    }

    /// Makes the answers of every part (in part order) one result: a denial
    /// if any part denies (the budget's first, else the window that resets
    /// last), else an error if any part failed, else allowed in every window.
    pub fn combine(&self, answers: Vec<Result<PartAnswer, StoreError>>) -> Combined {
        let mut denial: Option<CheckResult> = None;
        let mut error: Option<StoreError> = None;
        // Per part that allowed: its windows (plan indices with answers), month spend, lease.
        let mut allowed: Vec<AllowedPart> = Vec::new();
        let mut answers = answers.into_iter();
        for part in &self.parts {
            match answers.next() {
                Some(Ok(PartAnswer::Allowed { month_spend_micro, windows, lease_micro })) => {
                    allowed.push((part.windows.iter().copied().zip(windows).collect(), month_spend_micro, lease_micro))
                }
                Some(Ok(PartAnswer::Denied(d))) => {
                    if replaces(denial.as_ref(), &d) {
                        denial = Some(d);
                    }
                }
                Some(Ok(PartAnswer::WrongWindow { .. })) => {
                    error.get_or_insert(StoreError::Malformed("window index still off after retries".into()));
                }
                Some(Err(e)) => {
                    error.get_or_insert(e);
                }
                None => {
                    error.get_or_insert(StoreError::Malformed("an answer is missing".into()));
                }
            }
        }
        // A window denied in one call, the budget read in another (split by slot): one answer.
        if let Some(CheckResult::Denied { month_spend_usd: spend @ None, .. }) = denial.as_mut() {
            *spend = allowed.iter().find_map(|a| a.1).map(micro_to_usd);
        }
        let estimate = self.estimate_micro;
        let failed = match (denial, error) {
            (Some(d), _) => Some(Ok(d)),
            (None, Some(e)) => Some(Err(e)),
            (None, None) => None,
        };
        if let Some(result) = failed {
            // Not allowed as a whole. The calls that reserved give back their
            // lease, and their estimate too on a denial; on an error the
            // estimate stays theirs (failing open, the call is settled against it).
            let mut reserved = Vec::new();
            let mut give_back = Vec::new();
            for (windows, _, lease) in &allowed {
                for (_, w) in windows {
                    let back = if result.is_ok() { estimate.saturating_add(*lease) } else { *lease };
                    if back > 0 {
                        give_back.push((w.key.clone(), back));
                    }
                    if result.is_err() {
                        reserved.push((w.key.clone(), estimate));
                    }
                }
            }
            return Combined { result, reserved, give_back };
        }
        // Every part allowed. The lease holds only where every part with windows granted it.
        let windowed: Vec<i64> = allowed.iter().filter(|a| !a.0.is_empty()).map(|a| a.2).collect();
        let lease_micro =
            if windowed.is_empty() { allowed.iter().map(|a| a.2).min() } else { windowed.into_iter().min() };
        let lease_micro = lease_micro.unwrap_or(0);
        let mut give_back = Vec::new();
        let mut ordered: Vec<Option<(WindowAnswer, i64)>> = vec![None; self.windows.len()];
        let mut month_spend = None;
        for (windows, spend, lease) in allowed {
            month_spend = month_spend.or(spend);
            for (i, w) in windows {
                if lease > lease_micro {
                    give_back.push((w.key.clone(), lease - lease_micro));
                }
                if let Some(slot) = ordered.get_mut(i) {
                    *slot = Some((w, lease));
                }
            }
        }
        let mut tightest: Option<WindowStatus> = None;
        let mut reservations = Vec::with_capacity(self.windows.len());
        let mut windows = Vec::with_capacity(self.windows.len());
        for (p, answer) in self.windows.iter().zip(ordered) {
            let Some((w, part_lease)) = answer else {
                let result = Err(StoreError::Malformed("a window is missing".into()));
                return Combined { result, reserved: Vec::new(), give_back: Vec::new() };
            };
            // What is left for the client: the lease is theirs too (or given back).
            let status = window_status(p, w.spent_micro.saturating_sub(part_lease), w.reset_ms);
            if tightest.as_ref().is_none_or(|t| (status.remaining_usd, t.reset_s) < (t.remaining_usd, status.reset_s)) {
                tightest = Some(status);
            }
            reservations.push((w.key.clone(), estimate));
            windows.push(w);
        }
        let month_spend_usd = match (&self.budget, month_spend) {
            (Some(_), Some(spend)) => Some(micro_to_usd(spend)),
            (Some(_), None) => {
                let result = Err(StoreError::Malformed("month spend".into()));
                return Combined { result, reserved: reservations, give_back };
            }
            (None, _) => None,
        };
        let result = Ok(CheckResult::Allowed { tightest, month_spend_usd, reservations, windows, lease_micro });
        Combined { result, reserved: Vec::new(), give_back }
    }

    /// The answer of a plan of one call ([`CheckPlan::new`] unsplit): parses and combines it.
    pub fn parse(&self, status: u32, body: &[u8]) -> Result<CheckResult, StoreError> {
        self.combine(vec![self.parse_part(0, status, body)]).result
    }
}

/// A part that allowed: its windows (plan index, answer), the month's spend, the lease granted.
type AllowedPart = (Vec<(usize, WindowAnswer)>, Option<i64>, i64);

/// Whether denial `new` is the one to report rather than `current`: the
/// budget's first (it lasts the month), else the window that resets last.
fn replaces(current: Option<&CheckResult>, new: &CheckResult) -> bool {
    match (current, new) {
        (None, _) => true,
        (Some(CheckResult::BudgetExceeded { .. }), _) => false,
        (_, CheckResult::BudgetExceeded { .. }) => true,
        (Some(CheckResult::Denied { retry_after_s: a, .. }), CheckResult::Denied { retry_after_s: b, .. }) => b >= a,
        _ => false,
    }
}

fn window_status(p: &PlannedWindow, spent: i64, reset_ms: u64) -> WindowStatus {
    WindowStatus {
        limit_usd: p.window.limit_usd,
        remaining_usd: micro_to_usd(p.limit_micro.saturating_sub(spent).max(0)),
        reset_s: reset_ms.div_ceil(1000).max(1),
    }
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
        assert_eq!(p.parts(), 1, "one call against a single Redis");
        let r = p.request(0);
        assert_eq!((r.method, r.path), ("POST", "/"));
        let s = segments(&r.body);
        assert_eq!(s[0], "EVAL");
        assert_eq!(s[1], CHECK_SCRIPT);
        assert_eq!(s[2], "4");
        // Full window keys, the index from the plan's clock: every key the script touches is declared.
        let k = keys(&p);
        let index = |w: u64| NOW / (w * 1000);
        assert_eq!(s[3], format!("{}:{}", k[0], index(60)));
        assert_eq!(s[4], format!("{}:{}", k[1], index(3600)));
        assert_eq!(s[5], format!("{}:{}", k[2], index(86_400)));
        assert_eq!(s[6], "llmgw:{t:42}:budget:2024-03");
        assert_eq!(&s[7..], &["250000", "3", "100000000", "60", "1000000", "3600", "10000000", "86400", "1000000000"]);
        assert_ne!(CHECK_SCRIPT, RECORD_SCRIPT);
    }

    #[test]
    fn no_budget_means_no_budget_key_and_zero_cap() {
        for cap in [None, Some(0.0), Some(-1.0)] {
            let s = segments(&plan(cap).request(0).body);
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

    /// The windows of `plan()`, split: the user's two (team tag) with the
    /// budget, then the product's.
    fn split(cap: Option<f64>) -> CheckPlan {
        plan(cap).split_by_slot().with_lease(1_000_000)
    }

    fn allowed_part(p: &CheckPlan, part: usize, spent: &[i64], month: i64, lease: i64) -> PartAnswer {
        let s = segments(&p.request(part).body);
        let n: usize = s[2].parse().unwrap();
        let windows = n - usize::from(s[3..3 + n].iter().any(|k| k.contains(":budget:")));
        let mut v = vec![json!(1), json!(month)];
        for (i, spent) in spent.iter().enumerate().take(windows) {
            v.extend([json!(s[3 + i]), json!(spent), json!(60_000)]);
        }
        v.push(json!(lease));
        p.parse_part(part, 200, &answer(serde_json::Value::Array(v))).unwrap()
    }

    #[test]
    fn split_by_slot_makes_one_call_per_hash_tag() {
        let p = split(Some(100.0));
        assert_eq!(p.parts(), 2);
        let team = segments(&p.request(0).body);
        assert_eq!(team[2], "3", "the user's two windows and the budget");
        assert!(team[3..6].iter().all(|k| hash_tag(k) == "t:42"), "{:?}", &team[3..6]);
        assert_eq!(team[5], "llmgw:{t:42}:budget:2024-03");
        assert_eq!(&team[6..9], ["250000", "2", "100000000"]);
        assert_eq!(team.last().unwrap(), "1000000", "the lease is asked of every call");
        let product = segments(&p.request(1).body);
        assert_eq!(product[2], "1");
        assert_eq!(hash_tag(&product[3]), "p:wizard");
        assert_eq!(&product[4..7], ["250000", "1", "0"], "no budget in the product's call");
        // Against a single Redis it stays one call; a budget alone is a call of its own.
        assert_eq!(plan(Some(1.0)).parts(), 1);
        let budget_only = CheckPlan::new(vec![], &subject(), 0.1, Some(5.0), NOW).split_by_slot();
        assert_eq!(budget_only.parts(), 1);
        assert_eq!(segments(&budget_only.request(0).body)[2], "1");
    }

    #[test]
    fn split_answers_combine_into_one_allowed_check() {
        let p = split(Some(100.0));
        // The user windows granted the lease, the product window did not: no lease, and
        // the user windows' lease goes back.
        let team = allowed_part(&p, 0, &[1_250_000, 1_250_000], 40_000_000, 1_000_000);
        let product = allowed_part(&p, 1, &[5_000_000], -1, 0);
        let c = p.combine(vec![Ok(team.clone()), Ok(product)]);
        let Ok(CheckResult::Allowed { tightest, month_spend_usd, reservations, windows, lease_micro }) = c.result
        else {
            panic!("{c:?}")
        };
        assert_eq!(lease_micro, 0);
        assert_eq!(month_spend_usd, Some(40.0));
        assert_eq!(reservations.len(), 3);
        assert!(reservations.iter().all(|(_, est)| *est == 250_000));
        let k = keys(&p);
        for (w, base) in windows.iter().zip(&k) {
            assert!(is_window_key(&w.key, base), "plan order: {windows:?}");
        }
        assert!(windows[2].key.starts_with("llmgw:{p:wizard}"));
        // The 60 s user window: $1 limit, $0.25 left after this call (the lease does not count).
        assert_eq!(tightest, Some(WindowStatus { limit_usd: 1.0, remaining_usd: 0.75, reset_s: 60 }));
        assert_eq!(c.give_back.len(), 2);
        assert!(c.give_back.iter().all(|(k, v)| hash_tag(k) == "t:42" && *v == 1_000_000));
        // Both granted: the lease holds, nothing goes back.
        let product = allowed_part(&p, 1, &[5_000_000], -1, 1_000_000);
        let c = p.combine(vec![Ok(team), Ok(product)]);
        assert!(matches!(c.result, Ok(CheckResult::Allowed { lease_micro: 1_000_000, .. })));
        assert!(c.give_back.is_empty() && c.reserved.is_empty());
    }

    #[test]
    fn one_call_denying_gives_back_what_the_other_reserved() {
        let p = split(Some(100.0));
        let team = allowed_part(&p, 0, &[1_250_000, 1_250_000], 0, 1_000_000);
        let denied = p.parse_part(1, 200, &answer(json!([0, 1, 5_000, 999_900_000]))).unwrap();
        let c = p.combine(vec![Ok(team.clone()), Ok(denied)]);
        let Ok(CheckResult::Denied { window, retry_after_s, month_spend_usd, .. }) = &c.result else { panic!("{c:?}") };
        assert_eq!((window.scope, *retry_after_s), (Scope::Product, 5));
        // The month's spend the team's call read: the 429 carries the budget's headers too.
        assert_eq!(*month_spend_usd, Some(0.0));
        assert!(c.reserved.is_empty());
        assert_eq!(c.give_back.len(), 2, "estimate and lease, in each user window");
        assert!(c.give_back.iter().all(|(_, v)| *v == 1_250_000));
        // The budget's denial wins over a window's, whatever the order.
        let budget = p.parse_part(0, 200, &answer(json!([2, 100_000_000]))).unwrap();
        let window = p.parse_part(1, 200, &answer(json!([0, 1, 5_000_000, 999_900_000]))).unwrap();
        let c = p.combine(vec![Ok(budget), Ok(window)]);
        assert!(matches!(c.result, Ok(CheckResult::BudgetExceeded { .. })), "{c:?}");
        assert!(c.give_back.is_empty());
        // A failed call: the others' estimates stay reserved (failing open, they are
        // settled as usual), their lease goes back; the result is the error.
        let c = p.combine(vec![Ok(team), Err(StoreError::Redis("upstream failure".into()))]);
        assert_eq!(c.result, Err(StoreError::Redis("upstream failure".into())));
        assert_eq!(c.reserved.len(), 2);
        assert!(c.reserved.iter().all(|(_, v)| *v == 250_000));
        assert!(c.give_back.iter().all(|(_, v)| *v == 1_000_000));
        // A missing answer is an error too.
        assert!(p.combine(vec![]).result.is_err());
    }

    #[test]
    fn a_wrong_window_index_asks_for_a_retry_with_redis_time() {
        let mut p = split(None);
        let redis_now = NOW + 61_000;
        let wrong = p.parse_part(0, 200, &answer(json!([3, 1, redis_now / 60_000, redis_now]))).unwrap();
        assert_eq!(wrong, PartAnswer::WrongWindow { redis_now_ms: redis_now });
        p.set_window_clock(redis_now);
        let s = segments(&p.request(0).body);
        assert!(s[3].ends_with(&format!(":{}", redis_now / 60_000)), "{}", s[3]);
        assert!(s[4].ends_with(&format!(":{}", redis_now / 3_600_000)), "{}", s[4]);
        // An index past the call's windows, or no time, is garbage.
        for g in [json!([3, 3, 1, redis_now]), json!([3, 0, 1, redis_now]), json!([3, 1, 1, -1])] {
            assert!(matches!(p.parse_part(0, 200, &answer(g)), Err(StoreError::Malformed(_))));
        }
        // Still wrong after the retries: an error, not a guess.
        let c = p.combine(vec![Ok(wrong), Ok(allowed_part(&p, 1, &[0], -1, 0))]);
        assert!(matches!(c.result, Err(StoreError::Malformed(_))), "{c:?}");
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
}
