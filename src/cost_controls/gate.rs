//! Whether Save Mode applies to a request, and what the event says about it.
//!
//! Save Mode is on when the product is configured for it (idle-prone products)
//! and one of these holds, checked in this order (the first names the reason):
//! 1. the principal's `cost_controls` is `true` (the team opted in);
//! 2. the team is in `teams` (operator allowlist);
//! 3. the budget guard put the team in its `engage` tier;
//! 4. the request carries the Save Mode header with an "on" value and the
//!    principal may use it (see [`HeaderAccess`]).
//!
//! Otherwise it is on only when `debug_force` is set in the plugin config: the
//! local-development override. It is a config field and nothing else; no
//! environment variable can turn it on (the seed PR's security finding was an
//! environment variable that enabled the feature for every tenant).
//!
//! Requests bound for Bedrock are never upgraded, since Bedrock rejects `ttl`
//! in `cache_control`: a decision that would be on becomes off with reason
//! [`Reason::BedrockSkip`].

use serde::Deserialize;
use serde_json::{Map, Value};

use super::ttl::Upgrade;

/// Who may turn Save Mode on with the request header.
///
/// Whatever the mode, a principal whose `cost_controls` is `false` (the team
/// opted out, or the auth service says the feature is not for it) is never
/// switched on by the header. The header can only switch Save Mode on; it
/// cannot switch off a team that is on by rules 1–3.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HeaderAccess {
    /// The header is ignored.
    Off,
    /// Honoured for teams listed in `header_teams` (the default, with an
    /// empty list: nobody, until the operator names teams).
    #[default]
    Allowlist,
    /// Honoured for every principal whose `cost_controls` is not `false`.
    UnlessOptedOut,
}

/// The `cost_controls` block of the plugin config.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields, rename_all = "snake_case")]
pub struct CostControlsConfig {
    /// Products Save Mode may apply to.
    pub products: Vec<String>,
    /// Teams that are always on (for configured products).
    pub teams: Vec<i64>,
    /// Request header turning Save Mode on (lowercase; values `on`, `true`, `1`, `yes`).
    pub header: String,
    /// Who may use the header.
    pub header_access: HeaderAccess,
    /// Teams allowed to use the header when `header_access` is `allowlist`.
    pub header_teams: Vec<i64>,
    /// Local development only: Save Mode on for every request (Bedrock still skipped).
    pub debug_force: bool,
}

pub const DEFAULT_PRODUCTS: [&str; 2] = ["posthog_code", "slack_app"];
pub const DEFAULT_HEADER: &str = "x-posthog-save-mode";

impl Default for CostControlsConfig {
    fn default() -> Self {
        CostControlsConfig {
            products: DEFAULT_PRODUCTS.iter().map(|p| (*p).to_string()).collect(),
            teams: Vec::new(),
            header: DEFAULT_HEADER.to_string(),
            header_access: HeaderAccess::default(),
            header_teams: Vec::new(),
            debug_force: false,
        }
    }
}

impl CostControlsConfig {
    /// Checks what serde cannot; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        for product in &self.products {
            if product.is_empty() || product.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("cost_controls.products: invalid product name {product:?}"));
            }
        }
        if self.header.is_empty() {
            return Err("cost_controls.header: must not be empty (use header_access \"off\" to ignore it)".into());
        }
        // Envoy hands header names to the filter lowercased; an uppercase name would never match.
        if !self.header.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)) {
            return Err(format!(
                "cost_controls.header: {:?} must be a lowercase header name (a-z, 0-9, '-', '_', '.')",
                self.header
            ));
        }
        if self.header_access != HeaderAccess::Allowlist && !self.header_teams.is_empty() {
            return Err("cost_controls.header_teams: only read when header_access is \"allowlist\"".into());
        }
        Ok(())
    }

    /// A line for the plugin log at start when the debug override is set.
    pub fn startup_warning(&self) -> Option<&'static str> {
        self.debug_force
            .then_some("cost_controls.debug_force is set: Save Mode is on for every request (local development only)")
    }
}

/// Why Save Mode is on or off for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Off: the product is not configured for Save Mode.
    Disabled,
    /// Off: the product is configured but nothing opted the request in.
    NotOptedIn,
    /// On: the principal's `cost_controls` is `true`.
    Principal,
    /// On: the team is in the config allowlist.
    TeamAllowlist,
    /// On: the budget guard's `engage` tier.
    BudgetEngage,
    /// On: the client's Save Mode header, from an allowed principal.
    Header,
    /// On: `debug_force` in config.
    Debug,
    /// Off: it would be on, but the request goes to Bedrock.
    BedrockSkip,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Disabled => "disabled",
            Reason::NotOptedIn => "not_opted_in",
            Reason::Principal => "principal",
            Reason::TeamAllowlist => "team_allowlist",
            Reason::BudgetEngage => "budget_engage",
            Reason::Header => "header",
            Reason::Debug => "debug",
            Reason::BedrockSkip => "bedrock_skip",
        }
    }
}

/// The gate's answer for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Run the TTL upgrade on the body.
    pub active: bool,
    pub reason: Reason,
    /// The client sent the Save Mode header with an "on" value (honoured or not).
    pub requested: bool,
}

/// Whether a Save Mode header value means "on" (trimmed, any case).
pub fn header_is_on(value: &str) -> bool {
    let value = value.trim();
    ["on", "true", "1", "yes"].iter().any(|on| value.eq_ignore_ascii_case(on))
}

/// Whether the principal may turn Save Mode on with the header.
fn header_allowed(cfg: &CostControlsConfig, team_id: i64, principal_cost_controls: Option<bool>) -> bool {
    if principal_cost_controls == Some(false) {
        return false;
    }
    match cfg.header_access {
        HeaderAccess::Off => false,
        HeaderAccess::Allowlist => cfg.header_teams.contains(&team_id),
        HeaderAccess::UnlessOptedOut => true,
    }
}

/// Decides Save Mode for a request (see the module docs for the rules).
///
/// `header_value` is the value of `cfg.header`, if sent; `budget_engaged`
/// is the budget guard's `engage` tier; `bedrock` is true when the request
/// is routed to Bedrock (by model id or provider header).
pub fn decide(
    cfg: &CostControlsConfig,
    product: &str,
    team_id: i64,
    principal_cost_controls: Option<bool>,
    header_value: Option<&str>,
    budget_engaged: bool,
    bedrock: bool,
) -> Decision {
    let requested = header_value.is_some_and(header_is_on);
    let configured = cfg.products.iter().any(|p| p == product);
    let reason = if configured && principal_cost_controls == Some(true) {
        Reason::Principal
    } else if configured && cfg.teams.contains(&team_id) {
        Reason::TeamAllowlist
    } else if configured && budget_engaged {
        Reason::BudgetEngage
    } else if configured && requested && header_allowed(cfg, team_id, principal_cost_controls) {
        Reason::Header
    } else if cfg.debug_force {
        Reason::Debug
    } else if configured {
        Reason::NotOptedIn
    } else {
        Reason::Disabled
    };
    let on = !matches!(reason, Reason::Disabled | Reason::NotOptedIn);
    if on && bedrock {
        return Decision { active: false, reason: Reason::BedrockSkip, requested };
    }
    Decision { active: on, reason, requested }
}

/// Event property: Save Mode on for this request.
pub const PROP_SAVE_MODE: &str = "$ai_save_mode";
/// Event property: [`Reason::as_str`].
pub const PROP_REASON: &str = "$ai_save_mode_reason";
/// Event property: the client asked for Save Mode with the header.
pub const PROP_REQUESTED: &str = "$ai_save_mode_requested";
/// Event property: breakpoints upgraded to 1h (when Save Mode was on).
pub const PROP_UPGRADED: &str = "$ai_cache_ttl_upgraded_breakpoints";
/// Event property: why an active Save Mode left the body alone.
pub const PROP_SKIPPED: &str = "$ai_cache_ttl_upgrade_skipped";

/// `$ai_generation` properties for the decision and, when Save Mode was on,
/// the upgrade's outcome. The keys start with `$`, so client-supplied
/// `x-posthog-property-*` headers can never set them.
pub fn telemetry(decision: &Decision, upgrade: Option<&Upgrade>) -> Map<String, Value> {
    let mut props = Map::new();
    props.insert(PROP_SAVE_MODE.into(), Value::Bool(decision.active));
    props.insert(PROP_REASON.into(), Value::String(decision.reason.as_str().into()));
    props.insert(PROP_REQUESTED.into(), Value::Bool(decision.requested));
    if let Some(upgrade) = upgrade {
        props.insert(PROP_UPGRADED.into(), Value::from(upgrade.breakpoints()));
        if let Upgrade::Unchanged { reason } = upgrade {
            props.insert(PROP_SKIPPED.into(), Value::String((*reason).into()));
        }
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PRODUCT: &str = "posthog_code";
    const TEAM: i64 = 7;

    fn cfg() -> CostControlsConfig {
        CostControlsConfig::default()
    }

    fn reason(cfg: &CostControlsConfig, principal: Option<bool>, header: Option<&str>, budget: bool) -> Reason {
        decide(cfg, PRODUCT, TEAM, principal, header, budget, false).reason
    }

    #[test]
    fn default_config_parses_from_an_empty_object() {
        let parsed: CostControlsConfig = serde_json::from_value(json!({})).unwrap();
        assert_eq!(parsed, cfg());
        assert_eq!(parsed.products, ["posthog_code", "slack_app"]);
        assert_eq!(parsed.header, "x-posthog-save-mode");
        assert_eq!(parsed.header_access, HeaderAccess::Allowlist);
        assert!(!parsed.debug_force);
        assert!(parsed.validate().is_ok());
        assert!(parsed.startup_warning().is_none());
    }

    #[test]
    fn config_is_strict_and_validated() {
        assert!(serde_json::from_value::<CostControlsConfig>(json!({"debug": true})).is_err());
        assert!(serde_json::from_value::<CostControlsConfig>(json!({"header_access": "everyone"})).is_err());
        let parsed: CostControlsConfig = serde_json::from_value(json!({
            "products": ["wizard"], "teams": [1, 2], "header": "x-save", "header_access": "unless_opted_out",
            "debug_force": true
        }))
        .unwrap();
        assert!(parsed.validate().is_ok());
        assert!(parsed.startup_warning().is_some());
        let bad = |v: Value| serde_json::from_value::<CostControlsConfig>(v).unwrap().validate().unwrap_err();
        assert!(bad(json!({"products": [""]})).starts_with("cost_controls.products"));
        assert!(bad(json!({"header": ""})).starts_with("cost_controls.header"));
        assert!(bad(json!({"header": "X-PostHog-Save-Mode"})).starts_with("cost_controls.header"));
        assert!(bad(json!({"header_access": "off", "header_teams": [1]})).starts_with("cost_controls.header_teams"));
    }

    #[test]
    fn product_not_configured_is_disabled_whatever_else() {
        let d = decide(&cfg(), "wizard", TEAM, Some(true), Some("on"), true, false);
        assert_eq!(d, Decision { active: false, reason: Reason::Disabled, requested: true });
        let mut c = cfg();
        c.teams = vec![TEAM];
        assert_eq!(decide(&c, "llm_gateway", TEAM, None, None, false, false).reason, Reason::Disabled);
    }

    #[test]
    fn nothing_opted_in_is_off() {
        assert_eq!(reason(&cfg(), None, None, false), Reason::NotOptedIn);
        assert_eq!(reason(&cfg(), Some(false), None, false), Reason::NotOptedIn);
        assert_eq!(reason(&cfg(), None, Some("off"), false), Reason::NotOptedIn);
    }

    #[test]
    fn each_opt_in_path_turns_it_on() {
        let c = cfg();
        assert_eq!(reason(&c, Some(true), None, false), Reason::Principal);
        assert_eq!(reason(&c, None, None, true), Reason::BudgetEngage);
        let mut c = cfg();
        c.teams = vec![TEAM];
        assert_eq!(reason(&c, None, None, false), Reason::TeamAllowlist);
        assert_eq!(reason(&c, Some(false), None, false), Reason::TeamAllowlist);
        let d = decide(&c, "slack_app", TEAM, None, None, false, false);
        assert!(d.active);
        // The first matching rule names the reason.
        assert_eq!(reason(&c, Some(true), Some("on"), true), Reason::Principal);
    }

    #[test]
    fn header_is_honoured_only_for_allowed_principals() {
        let mut c = cfg();
        // Default: allowlist mode with nobody listed.
        assert_eq!(reason(&c, None, Some("on"), false), Reason::NotOptedIn);
        c.header_teams = vec![TEAM];
        assert_eq!(reason(&c, None, Some("on"), false), Reason::Header);
        assert_eq!(reason(&c, None, Some(" TRUE "), false), Reason::Header);
        assert_eq!(reason(&c, None, Some("off"), false), Reason::NotOptedIn);
        assert_eq!(reason(&c, Some(false), Some("on"), false), Reason::NotOptedIn);
        assert_eq!(decide(&c, PRODUCT, TEAM + 1, None, Some("on"), false, false).reason, Reason::NotOptedIn);

        c.header_teams.clear();
        c.header_access = HeaderAccess::UnlessOptedOut;
        assert_eq!(reason(&c, None, Some("1"), false), Reason::Header);
        assert_eq!(reason(&c, Some(false), Some("on"), false), Reason::NotOptedIn);

        c.header_access = HeaderAccess::Off;
        assert_eq!(reason(&c, None, Some("on"), false), Reason::NotOptedIn);
        let d = decide(&c, PRODUCT, TEAM, None, Some("on"), false, false);
        assert!(d.requested && !d.active);
    }

    #[test]
    fn debug_force_is_a_config_override() {
        let mut c = cfg();
        c.debug_force = true;
        assert_eq!(reason(&c, None, None, false), Reason::Debug);
        assert_eq!(decide(&c, "wizard", TEAM, Some(false), None, false, false).reason, Reason::Debug);
        // Real opt-ins still name themselves.
        assert_eq!(reason(&c, Some(true), None, false), Reason::Principal);
    }

    #[test]
    fn bedrock_is_never_upgraded() {
        let mut c = cfg();
        let d = decide(&c, PRODUCT, TEAM, Some(true), None, false, true);
        assert_eq!(d, Decision { active: false, reason: Reason::BedrockSkip, requested: false });
        c.debug_force = true;
        assert_eq!(decide(&c, "wizard", TEAM, None, None, false, true).reason, Reason::BedrockSkip);
        // Off anyway: the real reason is kept.
        assert_eq!(decide(&cfg(), PRODUCT, TEAM, None, None, false, true).reason, Reason::NotOptedIn);
    }

    #[test]
    fn telemetry_properties() {
        let on = Decision { active: true, reason: Reason::Header, requested: true };
        let props = telemetry(&on, Some(&Upgrade::Upgraded { body: Vec::new(), breakpoints: 3 }));
        assert_eq!(
            Value::Object(props),
            json!({"$ai_save_mode": true, "$ai_save_mode_reason": "header", "$ai_save_mode_requested": true,
                   "$ai_cache_ttl_upgraded_breakpoints": 3})
        );
        let props = telemetry(&on, Some(&Upgrade::Unchanged { reason: "why" }));
        assert_eq!(props["$ai_cache_ttl_upgraded_breakpoints"], 0);
        assert_eq!(props["$ai_cache_ttl_upgrade_skipped"], "why");
        let off = Decision { active: false, reason: Reason::BedrockSkip, requested: false };
        assert_eq!(
            Value::Object(telemetry(&off, None)),
            json!({"$ai_save_mode": false, "$ai_save_mode_reason": "bedrock_skip", "$ai_save_mode_requested": false})
        );
        for key in telemetry(&on, Some(&Upgrade::Unchanged { reason: "x" })).keys() {
            assert!(crate::capture::properties::is_reserved(key), "{key}");
        }
    }

    #[test]
    fn reason_names_are_distinct() {
        let all = [
            Reason::Disabled,
            Reason::NotOptedIn,
            Reason::Principal,
            Reason::TeamAllowlist,
            Reason::BudgetEngage,
            Reason::Header,
            Reason::Debug,
            Reason::BedrockSkip,
        ];
        let mut names: Vec<_> = all.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }
}
