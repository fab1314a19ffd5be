//! Save Mode cost controls: the gate that decides whether a request gets them,
//! the 1-hour prompt-cache TTL upgrade of Anthropic Messages bodies, and the
//! `$ai_generation` properties saying what happened.
//!
//! Pure logic, no proxy-wasm: the filter reads the header, principal, budget
//! tier and route, calls [`decide`], and when the decision is active and the
//! body is an Anthropic Messages body bound for Anthropic's API, calls
//! [`upgrade_cache_ttl`]. On [`Upgrade::Unchanged`] it forwards the original
//! bytes; on [`Upgrade::Upgraded`] it replaces the body and fixes
//! `content-length`.

mod gate;
mod ttl;
mod walk;

#[cfg(test)]
mod props;

pub use gate::{
    decide, header_is_on, telemetry, CostControlsConfig, Decision, HeaderAccess, Reason, DEFAULT_HEADER,
    DEFAULT_PRODUCTS, PROP_REASON, PROP_REQUESTED, PROP_SAVE_MODE, PROP_SKIPPED, PROP_UPGRADED,
};
pub use ttl::{
    count_breakpoints, upgrade_cache_ttl, BreakpointCounts, Upgrade, NOTHING_TO_UPGRADE, NOT_A_JSON_OBJECT,
    NO_BREAKPOINTS, ORDER_ALREADY_BROKEN, SHORT_AUTOMATIC, SHORT_PRECEDES_UPGRADABLE, SPAN_NOT_FOUND,
};
