//! Save Mode's 1-hour TTL upgrade (`cost_controls::upgrade_cache_ttl`) on
//! arbitrary bytes. When it upgrades `n` breakpoints:
//!
//! - the output is valid JSON, and the input with exactly `n` insertions of
//!   `,"ttl":"1h"` (every input byte kept, in order);
//! - upgrading the output again changes nothing (`NOTHING_TO_UPGRADE`);
//! - the breakpoint counts move from "default TTL" to "1h" and nothing else.
//!
//! When it does not, a body that never spells `cache_control` says so.

use crate::is_subsequence;
use llm_gateway::cost_controls::{count_breakpoints, upgrade_cache_ttl, Upgrade, NOTHING_TO_UPGRADE, NO_BREAKPOINTS};

const TTL_FIELD: &[u8] = br#","ttl":"1h""#;

pub fn run(data: &[u8]) {
    let upgrade = upgrade_cache_ttl(data);
    let before = count_breakpoints(data);
    match upgrade {
        Upgrade::Unchanged { reason } => {
            if !data.windows(13).any(|w| w == b"cache_control") {
                assert_eq!(reason, NO_BREAKPOINTS);
            }
        }
        Upgrade::Upgraded { body, breakpoints } => {
            assert!(breakpoints > 0);
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                panic!("upgraded body is not JSON: {e}: {}", String::from_utf8_lossy(&body));
            }
            // Numbers past f64's range are valid JSON that `Value` refuses: judge by the input.
            if serde_json::from_slice::<serde_json::Value>(data).is_ok() {
                if let Err(e) = serde_json::from_slice::<serde_json::Value>(&body) {
                    panic!("upgraded body no longer parses: {e}: {}", String::from_utf8_lossy(&body));
                }
            }
            assert_eq!(body.len(), data.len() + breakpoints * TTL_FIELD.len(), "not n insertions");
            assert!(is_subsequence(data, &body), "an input byte was lost or moved");
            let inserted = body.windows(TTL_FIELD.len()).filter(|w| *w == TTL_FIELD).count()
                - data.windows(TTL_FIELD.len()).filter(|w| *w == TTL_FIELD).count();
            assert!(inserted >= breakpoints, "inserted something other than the ttl member");
            match upgrade_cache_ttl(&body) {
                Upgrade::Unchanged { reason } => assert_eq!(reason, NOTHING_TO_UPGRADE),
                Upgrade::Upgraded { breakpoints, .. } => panic!("upgrading again upgraded {breakpoints} more"),
            }
            let Some(before) = before else { panic!("upgraded a body count_breakpoints cannot read") };
            let Some(after) = count_breakpoints(&body) else { panic!("cannot count the upgraded body") };
            assert_eq!(before.default_ttl, breakpoints);
            assert_eq!(after.default_ttl, 0);
            assert_eq!(after.one_hour, before.one_hour + breakpoints);
            assert_eq!((after.short, after.not_ephemeral), (before.short, before.not_ephemeral));
        }
    }
}
