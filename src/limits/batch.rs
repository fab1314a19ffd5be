//! Spend recorded after responses, aggregated per key in the root context and
//! flushed as one `record.lua` call per batch (per hash tag against a Redis Cluster).

use std::collections::BTreeMap;

use super::budget::{budget_key, BUDGET_KEY_TTL_S};
use super::estimate::usd_to_micro;
use super::webdis::{eval_array, StoreError, WebdisRequest};
use super::{slot_group, RECORD_SCRIPT};

/// Most keys in one `record.lua` call (keeps each call short in Redis).
pub const RECORD_MAX_KEYS: usize = 500;
/// Most keys a pending batch holds while the store is unreachable; amounts
/// for other keys are dropped (and counted) rather than growing memory.
pub const PENDING_MAX_KEYS: usize = 20_000;

/// Pending spend: window key → delta, budget key → amount, in micro-USD.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpendBatch {
    windows: BTreeMap<String, i64>,
    budgets: BTreeMap<String, i64>,
    /// Amounts dropped because the batch was full.
    dropped: u64,
    /// The budget spend among them, micro-USD.
    dropped_budget_micro: i64,
}

/// What one `record.lua` call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordOutcome {
    pub windows_updated: u64,
    /// Window keys that had expired (their window is over): deltas dropped.
    pub windows_expired: u64,
    pub budgets_updated: u64,
}

impl SpendBatch {
    pub fn new() -> Self {
        SpendBatch::default()
    }

    /// A call ended: its real cost replaces what the check reserved in each
    /// window (`real - reserved`, possibly negative), and, when `budget_team`
    /// is set, is added to that team's budget for the UTC month of `now_ms`.
    /// Call it for every allowed call, also when it failed or was cut off
    /// (cost 0 releases the reservation). Without reservations (limits off,
    /// or the check failed open), only the budget is charged.
    pub fn settle(
        &mut self,
        reservations: &[(String, i64)],
        real_cost_usd: f64,
        budget_team: Option<i64>,
        now_ms: u64,
    ) {
        let real = usd_to_micro(real_cost_usd);
        for (key, reserved) in reservations {
            let delta = real.saturating_sub(*reserved);
            self.add_window(key, delta);
        }
        if let Some(team) = budget_team {
            if real > 0 {
                self.add_budget(&budget_key(team, now_ms), real);
            }
        }
    }

    fn add_window(&mut self, key: &str, amount: i64) {
        if !add(&mut self.windows, key, amount, self.budgets.len()) {
            self.dropped += 1;
        }
    }

    fn add_budget(&mut self, key: &str, amount: i64) {
        if !add(&mut self.budgets, key, amount, self.windows.len()) {
            self.dropped += 1;
            self.dropped_budget_micro = self.dropped_budget_micro.saturating_add(amount);
        }
    }

    /// Gives back reservations of a call that was never forwarded.
    pub fn release(&mut self, reservations: &[(String, i64)]) {
        self.settle(reservations, 0.0, None, 0);
    }

    /// Keys pending.
    pub fn len(&self) -> usize {
        self.windows.len() + self.budgets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Amounts dropped because the batch was full since the last call, and
    /// the budget spend (micro-USD) among them; resets both.
    pub fn take_dropped(&mut self) -> (u64, i64) {
        (std::mem::take(&mut self.dropped), std::mem::take(&mut self.dropped_budget_micro))
    }

    /// The budget spend this batch carries, micro-USD (what the month keys
    /// miss if it is dropped).
    pub fn budget_micro(&self) -> i64 {
        self.budgets.values().fold(0, |sum, v| sum.saturating_add(*v))
    }

    /// Takes up to `max_keys` keys (at least 1) out of the batch, as a
    /// smaller batch to send with [`SpendBatch::request`]. `None` when empty.
    pub fn drain(&mut self, max_keys: usize) -> Option<SpendBatch> {
        if self.is_empty() {
            return None;
        }
        let mut out = SpendBatch::new();
        let mut room = max_keys.max(1);
        while room > 0 {
            let Some((k, v)) = self.windows.pop_first() else { break };
            out.windows.insert(k, v);
            room -= 1;
        }
        while room > 0 {
            let Some((k, v)) = self.budgets.pop_first() else { break };
            out.budgets.insert(k, v);
            room -= 1;
        }
        Some(out)
    }

    /// Takes up to `max_keys` keys (at least 1) of one Redis Cluster slot out
    /// of the batch: the first pending key's, and every other key sharing its
    /// hash-tag prefix (`llmgw:{t:42}`), windows first. `None` when empty.
    pub fn drain_slot(&mut self, max_keys: usize) -> Option<SpendBatch> {
        let first = self.windows.keys().next().or_else(|| self.budgets.keys().next())?;
        let prefix = slot_group(first).0.to_string();
        let mut out = SpendBatch::new();
        let mut room = max_keys.max(1);
        for (from, to) in [(&mut self.windows, &mut out.windows), (&mut self.budgets, &mut out.budgets)] {
            let keys: Vec<String> = from
                .range(prefix.clone()..)
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(&prefix))
                .take(room)
                .cloned()
                .collect();
            room -= keys.len();
            for k in keys {
                if let Some(v) = from.remove(&k) {
                    to.insert(k, v);
                }
            }
        }
        Some(out)
    }

    /// Puts a batch back (a flush to retry): amounts add up per key.
    pub fn merge(&mut self, other: SpendBatch) {
        for (k, v) in other.windows {
            self.add_window(&k, v);
        }
        for (k, v) in other.budgets {
            self.add_budget(&k, v);
        }
        self.dropped += other.dropped;
        self.dropped_budget_micro = self.dropped_budget_micro.saturating_add(other.dropped_budget_micro);
    }

    /// The `record.lua` call applying this whole batch (drain it first to
    /// bound its size).
    pub fn request(&self) -> WebdisRequest {
        let keys: Vec<&str> = self.windows.keys().chain(self.budgets.keys()).map(String::as_str).collect();
        let mut args = vec![self.windows.len().to_string(), BUDGET_KEY_TTL_S.to_string()];
        args.extend(self.windows.values().chain(self.budgets.values()).map(i64::to_string));
        WebdisRequest::eval(RECORD_SCRIPT, &keys, &args)
    }

    /// Interprets webdis's answer to [`SpendBatch::request`].
    ///
    /// On an error, whether Redis applied the batch is unknown when the call
    /// timed out; merging it back risks counting it twice, dropping it
    /// undercounts. Spend is an estimate's correction or a budget total, so
    /// prefer dropping after a timeout and retrying only on `Status(503)`
    /// (webdis could not reach Redis: nothing was applied).
    pub fn parse(status: u32, body: &[u8]) -> Result<RecordOutcome, StoreError> {
        let items = eval_array(status, body)?;
        match items.as_slice() {
            [a, b, c] => match (a.as_u64(), b.as_u64(), c.as_u64()) {
                (Some(windows_updated), Some(windows_expired), Some(budgets_updated)) => {
                    Ok(RecordOutcome { windows_updated, windows_expired, budgets_updated })
                }
                _ => Err(StoreError::Malformed("record counts".into())),
            },
            _ => Err(StoreError::Malformed("record answer".into())),
        }
    }
}

/// Adds `amount` to `key`; false when it had to be dropped (the batch is full).
fn add(map: &mut BTreeMap<String, i64>, key: &str, amount: i64, other_len: usize) -> bool {
    if let Some(v) = map.get_mut(key) {
        *v = v.saturating_add(amount);
    } else if amount == 0 {
        // Nothing to apply.
    } else if map.len() + other_len >= PENDING_MAX_KEYS {
        return false;
    } else {
        map.insert(key.to_string(), amount);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_709_251_200_000; // 2024-03

    fn res(keys: &[&str], micro: i64) -> Vec<(String, i64)> {
        keys.iter().map(|k| (k.to_string(), micro)).collect()
    }

    #[test]
    fn settles_deltas_and_budget_per_key() {
        let mut b = SpendBatch::new();
        b.settle(&res(&["w:a:1", "w:p:1"], 500_000), 0.2, Some(42), NOW); // -0.3 each
        b.settle(&res(&["w:b:1", "w:p:1"], 100_000), 0.15, Some(42), NOW); // +0.05 each
        b.settle(&[], 1.0, Some(7), NOW); // failed-open call: budget only
        b.release(&res(&["w:a:1"], 200_000));
        assert_eq!(b.windows.get("w:a:1"), Some(&-500_000));
        assert_eq!(b.windows.get("w:b:1"), Some(&50_000));
        assert_eq!(b.windows.get("w:p:1"), Some(&-250_000));
        assert_eq!(b.budgets.get("llmgw:{t:42}:budget:2024-03"), Some(&350_000));
        assert_eq!(b.budgets.get("llmgw:{t:7}:budget:2024-03"), Some(&1_000_000));
        assert_eq!(b.budget_micro(), 1_350_000);
        assert_eq!(b.len(), 5);
    }

    #[test]
    fn free_calls_do_not_touch_the_budget() {
        let mut b = SpendBatch::new();
        b.settle(&[], 0.0, Some(1), NOW);
        b.settle(&[], f64::NAN, Some(1), NOW);
        assert!(b.is_empty());
        assert!(b.drain(10).is_none());
    }

    #[test]
    fn request_lists_window_keys_then_budget_keys() {
        let mut b = SpendBatch::new();
        b.settle(&res(&["k:1"], 300), 0.0001, Some(3), NOW);
        let r = b.request();
        let body = r.body;
        assert!(body.starts_with("EVAL/"));
        let tail: Vec<&str> = body.rsplitn(6, '/').collect();
        // …/2/k%3A1/llmgw%3A%7Bt%3A3%7D%3Abudget%3A2024-03/1/3024000/-200/100
        assert_eq!(tail[..5], ["100", "-200", "3024000", "1", "llmgw%3A%7Bt%3A3%7D%3Abudget%3A2024-03"]);
        assert!(tail[5].ends_with("/2/k%3A1"), "{}", tail[5]);
    }

    #[test]
    fn drain_in_chunks_and_merge_back() {
        let mut b = SpendBatch::new();
        for i in 0..7 {
            b.settle(&res(&[&format!("w:{i}")], 0), 0.000001, Some(i), NOW);
        }
        assert_eq!(b.len(), 14);
        let first = b.drain(5).unwrap();
        assert_eq!((first.windows.len(), first.budgets.len()), (5, 0));
        let second = b.drain(5).unwrap();
        assert_eq!((second.windows.len(), second.budgets.len()), (2, 3));
        assert_eq!(b.len(), 4);
        b.merge(second);
        b.merge(first);
        assert_eq!(b.len(), 14);
        b.merge(b.clone());
        assert_eq!(b.windows.get("w:0"), Some(&2));
        assert_eq!(b.drain(0).unwrap().len(), 1);
    }

    #[test]
    fn a_full_batch_drops_new_keys_but_still_aggregates() {
        let mut b = SpendBatch::new();
        for i in 0..PENDING_MAX_KEYS {
            b.settle(&res(&[&format!("w:{i}")], 0), 0.000001, None, NOW);
        }
        b.settle(&res(&["w:new"], 0), 0.000001, Some(1), NOW);
        b.settle(&res(&["w:0"], 0), 0.000001, None, NOW);
        assert_eq!(b.len(), PENDING_MAX_KEYS);
        assert_eq!(b.windows.get("w:0"), Some(&2));
        assert_eq!(b.take_dropped(), (2, 1), "a window delta and a budget's $0.000001");
        assert_eq!(b.take_dropped(), (0, 0));
    }

    #[test]
    fn a_slot_drains_alone_with_its_budget() {
        let mut b = SpendBatch::new();
        let keys = |team: i64, user: &str| vec![(format!("llmgw:{{t:{team}}}:rl:u:{user}:60:1"), 100_000)];
        b.settle(&keys(42, "a"), 0.2, Some(42), NOW);
        b.settle(&keys(42, "b"), 0.2, Some(42), NOW);
        b.settle(&keys(420, "a"), 0.2, Some(420), NOW);
        b.settle(&[("llmgw:{p:wizard}:rl:p:60:1".to_string(), 100_000)], 0.2, None, NOW);
        b.settle(&[("untagged".to_string(), 0)], 0.1, None, NOW);
        let mut slots = Vec::new();
        while let Some(part) = b.drain_slot(RECORD_MAX_KEYS) {
            let tags: std::collections::BTreeSet<&str> =
                part.windows.keys().chain(part.budgets.keys()).map(|k| crate::limits::hash_tag(k)).collect();
            assert_eq!(tags.len(), 1, "one slot per call: {part:?}");
            slots.push((tags.into_iter().next().unwrap().to_string(), part.windows.len(), part.budgets.len()));
        }
        slots.sort();
        assert_eq!(
            slots,
            vec![("p:wizard".into(), 1, 0), ("t:42".into(), 2, 1), ("t:420".into(), 1, 1), ("untagged".into(), 1, 0),]
        );
        // A slot larger than a call is drained over several calls.
        for i in 0..5 {
            b.settle(&keys(7, &i.to_string()), 0.2, Some(7), NOW);
        }
        assert_eq!(b.drain_slot(4).unwrap().len(), 4);
        let rest = b.drain_slot(4).unwrap();
        assert_eq!((rest.windows.len(), rest.budgets.len()), (1, 1));
        assert!(b.drain_slot(4).is_none());
    }

    #[test]
    fn record_answers() {
        assert_eq!(
            SpendBatch::parse(200, br#"{"EVAL":[3,1,2]}"#),
            Ok(RecordOutcome { windows_updated: 3, windows_expired: 1, budgets_updated: 2 })
        );
        assert_eq!(SpendBatch::parse(503, b""), Err(StoreError::Status(503)));
        for g in [&br#"{"EVAL":[1,2]}"#[..], br#"{"EVAL":[1,2,"x"]}"#, br#"{"EVAL":[-1,2,3]}"#] {
            assert!(matches!(SpendBatch::parse(200, g), Err(StoreError::Malformed(_))));
        }
        assert!(matches!(SpendBatch::parse(200, br#"{"EVAL":[false,"ERR bad"]}"#), Err(StoreError::Redis(_))));
    }
}
