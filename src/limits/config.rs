//! `limits` configuration, the principal's overrides, and which windows apply.

use serde::Deserialize;

use super::{Scope, Window, MAX_LIMIT_USD, MAX_WINDOW_SECONDS};

/// One configured window: at most `limit_usd` per `window_seconds`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct WindowLimit {
    pub window_seconds: u64,
    pub limit_usd: f64,
}

impl WindowLimit {
    pub fn new(window_seconds: u64, limit_usd: f64) -> Self {
        WindowLimit { window_seconds, limit_usd }
    }
}

/// The monthly budget guard.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", default)]
pub struct BudgetConfig {
    /// Fraction of the cap from which the `engage` tier starts (Save Mode).
    pub engage_threshold: f64,
    /// Cap for teams whose principal has none (`monthly_budget_usd` null or
    /// absent). `None` or `<= 0`: no budget.
    pub monthly_budget_usd: Option<f64>,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig { engage_threshold: 0.95, monthly_budget_usd: None }
    }
}

/// The plugin config's `limits` object. Every field is optional.
///
/// Defaults: enabled; webdis on cluster `webdis` (authority `webdis`), 200 ms
/// timeout, fail open; per end user $500 per 3600 s; per product $1000 per
/// 86400 s; no team limit; no monthly budget (engage at 95%); spend flushed
/// every 250 ms; a single Redis (not a Redis Cluster).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", default)]
pub struct LimitsConfig {
    pub enabled: bool,
    /// Envoy cluster of webdis.
    pub cluster: String,
    /// `:authority` of webdis calls.
    pub authority: String,
    /// Check timeout; past it the store counts as down.
    pub timeout_ms: u64,
    /// Store down, slow or erroring: let requests through (true) or answer 503 (false).
    pub fail_open: bool,
    /// Windows per end user (distinct id) within a team.
    pub user: Vec<WindowLimit>,
    /// Windows per product, across all teams.
    pub product: Vec<WindowLimit>,
    /// Windows per team.
    pub team: Vec<WindowLimit>,
    pub budget: BudgetConfig,
    /// How often the root context flushes recorded spend; the accounting delay.
    pub record_flush_ms: u64,
    /// How long a lease lasts (0: no leases, every request asks Redis). See `Admissions`.
    pub local_admission_ms: u64,
    /// The smallest lease, in estimates of the call that asks for it (0: no
    /// leases): what a subject gets before its rate is known.
    pub local_admission_lease: u32,
    /// The largest lease, in estimates: a busy subject's lease is sized to its
    /// recent rate, up to this (and to a tenth of its smallest window, a
    /// hundredth of its budget).
    pub local_admission_lease_max: u32,
    /// Redis is a Redis Cluster (reached through Envoy's `redis_proxy`): one
    /// script call per hash tag, for checks and spend records alike.
    pub redis_cluster: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            enabled: true,
            cluster: "webdis".into(),
            authority: "webdis".into(),
            timeout_ms: 200,
            fail_open: true,
            user: vec![WindowLimit::new(3600, 500.0)],
            product: vec![WindowLimit::new(86_400, 1000.0)],
            team: Vec::new(),
            budget: BudgetConfig::default(),
            record_flush_ms: 250,
            local_admission_ms: 1000,
            local_admission_lease: 8,
            local_admission_lease_max: 1000,
            redis_cluster: false,
        }
    }
}

impl LimitsConfig {
    /// Checks every value; the error is one line naming the field, e.g.
    /// `limits.user[0].limit_usd: must be > 0`.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [("cluster", &self.cluster), ("authority", &self.authority)] {
            if value.trim().is_empty() {
                return Err(format!("limits.{name}: must not be empty"));
            }
        }
        if self.timeout_ms == 0 {
            return Err("limits.timeout_ms: must be > 0".into());
        }
        if self.record_flush_ms == 0 {
            return Err("limits.record_flush_ms: must be > 0".into());
        }
        if self.local_admission_ms > 60_000 {
            return Err("limits.local_admission_ms: must be at most 60000 (0 turns it off)".into());
        }
        if self.local_admission_lease > 1000 {
            return Err("limits.local_admission_lease: must be at most 1000 (0 turns leases off)".into());
        }
        if self.local_admission_lease_max > 100_000 || self.local_admission_lease_max < self.local_admission_lease {
            return Err(
                "limits.local_admission_lease_max: must be between limits.local_admission_lease and 100000".into()
            );
        }
        validate_windows(&self.user, "limits.user")?;
        validate_windows(&self.product, "limits.product")?;
        validate_windows(&self.team, "limits.team")?;
        let t = self.budget.engage_threshold;
        if !(t > 0.0 && t <= 1.0) {
            return Err("limits.budget.engage_threshold: must be a fraction in (0, 1], e.g. 0.95".into());
        }
        if let Some(cap) = self.budget.monthly_budget_usd {
            if !(cap.is_finite() && (0.0..=MAX_LIMIT_USD).contains(&cap)) {
                return Err(format!(
                    "limits.budget.monthly_budget_usd: must be between 0 (no budget) and {MAX_LIMIT_USD}"
                ));
            }
        }
        Ok(())
    }
}

fn validate_windows(windows: &[WindowLimit], field: &str) -> Result<(), String> {
    for (i, w) in windows.iter().enumerate() {
        if w.window_seconds == 0 || w.window_seconds > MAX_WINDOW_SECONDS {
            return Err(format!("{field}[{i}].window_seconds: must be between 1 and {MAX_WINDOW_SECONDS}"));
        }
        if !(w.limit_usd > 0.0 && w.limit_usd <= MAX_LIMIT_USD) {
            return Err(format!("{field}[{i}].limit_usd: must be > 0 and <= {MAX_LIMIT_USD}"));
        }
        if windows.iter().take(i).any(|o| o.window_seconds == w.window_seconds) {
            return Err(format!("{field}[{i}].window_seconds: {} appears twice", w.window_seconds));
        }
    }
    Ok(())
}

/// The principal's `limits` object: replaces the configured windows of its
/// team and of the team's end users. Shape:
/// `{"team": [{"window_seconds": 3600, "limit_usd": 100}], "user": [...]}`.
/// A missing or null field keeps the config's windows; `[]` removes every
/// limit of that scope. Product limits are global and cannot be overridden
/// per team. Unknown fields are ignored (like the rest of the principal).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct LimitOverrides {
    #[serde(default)]
    pub team: Option<Vec<WindowLimit>>,
    #[serde(default)]
    pub user: Option<Vec<WindowLimit>>,
}

impl LimitOverrides {
    /// Parses `principal.limits`; `None` or `null` is no override. An invalid
    /// object is an error naming the field (`principal.limits.user[0].limit_usd: …`);
    /// the filter should then use the config's windows and log it.
    pub fn from_principal(limits: Option<&serde_json::Value>) -> Result<LimitOverrides, String> {
        let overrides = match limits {
            None | Some(serde_json::Value::Null) => return Ok(LimitOverrides::default()),
            Some(v) if !v.is_object() => return Err("principal.limits: must be an object or null".into()),
            Some(v) => LimitOverrides::deserialize(v).map_err(|e| format!("principal.limits: {e}"))?,
        };
        if let Some(team) = &overrides.team {
            validate_windows(team, "principal.limits.team")?;
        }
        if let Some(user) = &overrides.user {
            validate_windows(user, "principal.limits.user")?;
        }
        Ok(overrides)
    }
}

/// Every window a request counts against: user, product, then team; the
/// principal's overrides replace the config's user and team windows.
pub fn applicable_windows(config: &LimitsConfig, overrides: &LimitOverrides) -> Vec<Window> {
    let user = overrides.user.as_deref().unwrap_or(&config.user);
    let team = overrides.team.as_deref().unwrap_or(&config.team);
    let scoped = [(Scope::User, user), (Scope::Product, config.product.as_slice()), (Scope::Team, team)];
    scoped
        .into_iter()
        .flat_map(|(scope, windows)| {
            windows.iter().map(move |w| Window { scope, window_seconds: w.window_seconds, limit_usd: w.limit_usd })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<LimitsConfig, String> {
        let c: LimitsConfig = serde_json::from_value(v).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn defaults() {
        let c = parse(json!({})).unwrap();
        assert_eq!(c, LimitsConfig::default());
        assert!(c.enabled && c.fail_open);
        assert_eq!((c.cluster.as_str(), c.timeout_ms, c.record_flush_ms), ("webdis", 200, 250));
        assert_eq!(c.user, vec![WindowLimit::new(3600, 500.0)]);
        assert_eq!(c.product, vec![WindowLimit::new(86_400, 1000.0)]);
        assert!(c.team.is_empty());
        assert!(!c.redis_cluster, "one Redis, one call per check");
        assert_eq!(c.budget.monthly_budget_usd, None);
        assert_eq!(c.budget.engage_threshold, 0.95);
        assert!(LimitsConfig::default().validate().is_ok());
    }

    #[test]
    fn full_config() {
        let c = parse(json!({
            "enabled": false, "cluster": "redis", "authority": "webdis.local", "timeout_ms": 50,
            "fail_open": false, "record_flush_ms": 1000, "redis_cluster": true,
            "user": [{"window_seconds": 60, "limit_usd": 5}, {"window_seconds": 86400, "limit_usd": 50}],
            "product": [], "team": [{"window_seconds": 3600, "limit_usd": 100.5}],
            "budget": {"engage_threshold": 0.9, "monthly_budget_usd": 1000}
        }))
        .unwrap();
        assert!(!c.enabled && !c.fail_open && c.redis_cluster);
        assert_eq!(c.user.len(), 2);
        assert!(c.product.is_empty());
        assert_eq!(c.team, vec![WindowLimit::new(3600, 100.5)]);
        assert_eq!(c.budget.monthly_budget_usd, Some(1000.0));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (json!({"usr": []}), "unknown field `usr`"),
            (json!({"user": [{"window_seconds": 60, "limit_usd": 1, "x": 1}]}), "unknown field `x`"),
            (json!({"user": [{"window_seconds": 60, "limit_usd": 0}]}), "limits.user[0].limit_usd: must be > 0"),
            (json!({"team": [{"window_seconds": 60, "limit_usd": -1}]}), "limits.team[0].limit_usd"),
            (json!({"product": [{"window_seconds": 0, "limit_usd": 1}]}), "limits.product[0].window_seconds"),
            (
                json!({"user": [{"window_seconds": 60, "limit_usd": 1}, {"window_seconds": 60, "limit_usd": 2}]}),
                "limits.user[1].window_seconds: 60 appears twice",
            ),
            (json!({"user": [{"window_seconds": 60, "limit_usd": 2e9}]}), "limits.user[0].limit_usd"),
            (json!({"cluster": " "}), "limits.cluster"),
            (json!({"timeout_ms": 0}), "limits.timeout_ms"),
            (json!({"record_flush_ms": 0}), "limits.record_flush_ms"),
            (json!({"budget": {"engage_threshold": 0}}), "limits.budget.engage_threshold"),
            (json!({"budget": {"engage_threshold": 1.5}}), "limits.budget.engage_threshold"),
            (json!({"budget": {"monthly_budget_usd": -5}}), "limits.budget.monthly_budget_usd"),
        ];
        for (v, needle) in cases {
            let err = parse(v.clone()).unwrap_err();
            assert!(err.contains(needle), "{v}: {err} should mention {needle}");
        }
    }

    #[test]
    fn default_windows_apply_in_scope_order() {
        let ws = applicable_windows(&LimitsConfig::default(), &LimitOverrides::default());
        assert_eq!(
            ws,
            vec![
                Window { scope: Scope::User, window_seconds: 3600, limit_usd: 500.0 },
                Window { scope: Scope::Product, window_seconds: 86_400, limit_usd: 1000.0 },
            ]
        );
    }

    #[test]
    fn principal_overrides_replace_team_and_user_windows() {
        let o = LimitOverrides::from_principal(Some(&json!({
            "team": [{"window_seconds": 3600, "limit_usd": 100}, {"window_seconds": 60, "limit_usd": 5}],
            "user": [],
            "something_new": true
        })))
        .unwrap();
        let ws = applicable_windows(&LimitsConfig::default(), &o);
        let got: Vec<_> = ws.iter().map(|w| (w.scope, w.window_seconds, w.limit_usd)).collect();
        assert_eq!(got, vec![(Scope::Product, 86_400, 1000.0), (Scope::Team, 3600, 100.0), (Scope::Team, 60, 5.0)]);

        // Only the named scope is replaced.
        let o =
            LimitOverrides::from_principal(Some(&json!({"user": [{"window_seconds": 10, "limit_usd": 1}]}))).unwrap();
        let ws = applicable_windows(&LimitsConfig::default(), &o);
        assert_eq!(ws[0], Window { scope: Scope::User, window_seconds: 10, limit_usd: 1.0 });
        assert_eq!(ws.len(), 2);
    }

    #[test]
    fn absent_or_null_overrides_are_none() {
        for v in [None, Some(json!(null)), Some(json!({})), Some(json!({"team": null, "user": null}))] {
            assert_eq!(LimitOverrides::from_principal(v.as_ref()).unwrap(), LimitOverrides::default());
        }
    }

    #[test]
    fn bad_overrides_are_errors_naming_the_field() {
        let cases = [
            (json!([]), "principal.limits"),
            (json!({"team": 5}), "principal.limits"),
            (json!({"team": [{"window_seconds": 60}]}), "principal.limits"),
            (json!({"user": [{"window_seconds": 60, "limit_usd": 0}]}), "principal.limits.user[0].limit_usd"),
            (json!({"team": [{"window_seconds": 0, "limit_usd": 1}]}), "principal.limits.team[0].window_seconds"),
        ];
        for (v, needle) in cases {
            let err = LimitOverrides::from_principal(Some(&v)).unwrap_err();
            assert!(err.contains(needle), "{v}: {err}");
        }
    }
}
