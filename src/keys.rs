//! Provider key pools. `LLM_GATEWAY_<PROVIDER>_API_KEY` may hold several keys,
//! separated by commas (no provider's keys contain one); each worker uses them
//! in turn (round robin). A key whose call answered 429 rests for the answer's
//! `retry-after-ms` or `Retry-After` (seconds or an HTTP date), capped at
//! [`MAX_REST_MS`], or [`DEFAULT_REST_MS`] when the answer names no time.
//! While a key rests the others are used; when every key rests, the one whose
//! rest ends first is used (the caller counts it). The state is per worker:
//! another worker learns of a limit from its own 429.
//!
//! Which key a call used travels with the call as a [`KeyUse`] (an index,
//! never the key itself), so the response stage can rest it.

use std::cell::{Cell, RefCell};
use std::fmt;

use crate::providers::Provider;

/// A provider key from the VM environment. `Debug` never shows it.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Separates the keys in one environment variable.
pub const SEPARATOR: char = ',';
/// The longest rest a 429 can ask for; a longer `Retry-After` is cut to this.
pub const MAX_REST_MS: u64 = 300_000;
/// The rest of a key whose 429 named no usable time.
pub const DEFAULT_REST_MS: u64 = 5_000;

/// The key a call used: its provider and its place in the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUse {
    pub provider: Provider,
    pub index: usize,
}

/// A key handed out for one call.
#[derive(Debug)]
pub struct Picked<'a> {
    pub key: KeyUse,
    pub secret: &'a Secret,
    /// Every key of the pool rests: this is the one whose rest ends first.
    pub all_resting: bool,
}

/// One provider's keys and when each may be used again.
#[derive(Debug)]
pub struct KeyPool {
    provider: Provider,
    keys: Vec<Secret>,
    /// The index the next pick starts from.
    next: Cell<usize>,
    /// Per key, the time (ms) its rest ends; 0 when it never rested.
    rested_until_ms: RefCell<Vec<u64>>,
}

impl Clone for KeyPool {
    fn clone(&self) -> Self {
        KeyPool {
            provider: self.provider,
            keys: self.keys.clone(),
            next: Cell::new(self.next.get()),
            rested_until_ms: RefCell::new(self.rested_until_ms.borrow().clone()),
        }
    }
}

impl KeyPool {
    /// The keys of one variable's value: split at commas, trimmed, empty ones
    /// and repeats dropped. `None` when no key is left.
    pub fn parse(provider: Provider, value: &str) -> Option<KeyPool> {
        let mut keys: Vec<Secret> = Vec::new();
        for key in value.split(SEPARATOR).map(str::trim).filter(|k| !k.is_empty()) {
            if !keys.iter().any(|k| k.expose() == key) {
                keys.push(Secret::new(key.to_string()));
            }
        }
        if keys.is_empty() {
            return None;
        }
        let rested = RefCell::new(vec![0; keys.len()]);
        Some(KeyPool { provider, keys, next: Cell::new(0), rested_until_ms: rested })
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The first key (for callers that only ask whether a provider has one).
    pub fn first(&self) -> Option<&Secret> {
        self.keys.first()
    }

    /// The next key in turn that is not resting; when all rest, the one whose
    /// rest ends first (the earliest in turn among equals).
    pub fn pick(&self, now_ms: u64) -> Option<Picked<'_>> {
        let n = self.keys.len();
        if n == 0 {
            return None;
        }
        let rested = self.rested_until_ms.borrow();
        let start = self.next.get() % n;
        let order = (0..n).map(|offset| (start + offset) % n);
        let free = order.clone().find(|&i| rested.get(i).is_none_or(|&until| until <= now_ms));
        let (index, all_resting) = match free {
            Some(i) => (i, false),
            None => (order.min_by_key(|&i| rested.get(i).copied().unwrap_or(0)).unwrap_or(start), true),
        };
        self.next.set((index + 1) % n);
        let secret = self.keys.get(index)?;
        Some(Picked { key: KeyUse { provider: self.provider, index }, secret, all_resting })
    }

    /// Rests a key for `rest_ms` (at most [`MAX_REST_MS`]) from `now_ms`; a
    /// rest already longer is kept.
    pub fn rest(&self, index: usize, now_ms: u64, rest_ms: u64) {
        let until = now_ms.saturating_add(rest_ms.min(MAX_REST_MS));
        if let Some(slot) = self.rested_until_ms.borrow_mut().get_mut(index) {
            *slot = (*slot).max(until);
        }
    }

    /// When the key's rest ends (ms), if it rests at `now_ms`.
    pub fn resting_until(&self, index: usize, now_ms: u64) -> Option<u64> {
        self.rested_until_ms.borrow().get(index).copied().filter(|&until| until > now_ms)
    }
}

/// How long a key that answered 429 rests: `retry-after-ms` (Azure and
/// OpenAI send it), else `Retry-After` as seconds or an HTTP date, else
/// [`DEFAULT_REST_MS`]; never more than [`MAX_REST_MS`].
pub fn rest_ms(retry_after_ms: Option<&str>, retry_after: Option<&str>, now_ms: u64) -> u64 {
    let from_ms = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0);
    let rest = match from_ms {
        Some(ms) => ms.ceil() as u64,
        None => match retry_after.map(str::trim) {
            Some(v) => match v.parse::<f64>() {
                Ok(secs) if secs.is_finite() && secs >= 0.0 => (secs * 1000.0).ceil() as u64,
                _ => http_date_ms(v).map_or(DEFAULT_REST_MS, |at| at.saturating_sub(now_ms)),
            },
            None => DEFAULT_REST_MS,
        },
    };
    rest.min(MAX_REST_MS)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's preferred
/// form) as Unix milliseconds.
pub fn http_date_ms(value: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = MONTHS.iter().position(|m| m == month)? as u64 + 1;
    let year: u64 = year.parse().ok().filter(|y| *y >= 1970)?;
    let hms: Vec<u64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    let days = crate::calendar::days_from_civil(year, month, day);
    Some(((days * 86_400) + h * 3600 + m * 60 + s) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(value: &str) -> KeyPool {
        KeyPool::parse(Provider::OpenAi, value).unwrap()
    }

    fn picks(p: &KeyPool, now: u64, n: usize) -> Vec<(usize, bool)> {
        (0..n).map(|_| p.pick(now).map(|k| (k.key.index, k.all_resting)).unwrap()).collect()
    }

    #[test]
    fn keys_are_split_trimmed_and_deduplicated() {
        let p = pool(" k1, k2 ,,k1,k3 ");
        assert_eq!(p.len(), 3);
        let secrets: Vec<&str> = (0..3).map(|_| p.pick(0).unwrap().secret.expose()).collect();
        assert_eq!(secrets, ["k1", "k2", "k3"]);
        assert!(KeyPool::parse(Provider::OpenAi, " , ").is_none());
        assert_eq!(pool("single").len(), 1);
        assert!(!format!("{p:?}").contains("k1"), "Debug never shows a key");
    }

    #[test]
    fn keys_are_used_in_turn() {
        let p = pool("a,b,c");
        assert_eq!(
            picks(&p, 0, 7),
            [(0, false), (1, false), (2, false), (0, false), (1, false), (2, false), (0, false)]
        );
    }

    #[test]
    fn a_resting_key_is_skipped_until_its_rest_ends() {
        let p = pool("a,b,c");
        p.rest(1, 1_000, 10_000);
        assert_eq!(p.resting_until(1, 1_000), Some(11_000));
        assert_eq!(picks(&p, 5_000, 4), [(0, false), (2, false), (0, false), (2, false)]);
        // At the end of its rest it is back in turn.
        assert_eq!(picks(&p, 11_000, 3), [(0, false), (1, false), (2, false)]);
        assert_eq!(p.resting_until(1, 11_000), None);
    }

    #[test]
    fn when_every_key_rests_the_one_resting_least_is_used() {
        let p = pool("a,b,c");
        p.rest(0, 0, 30_000);
        p.rest(1, 0, 10_000);
        p.rest(2, 0, 20_000);
        assert_eq!(picks(&p, 1_000, 2), [(1, true), (1, true)]);
        // A single key rests and is still used.
        let one = pool("only");
        one.rest(0, 0, 10_000);
        assert_eq!(picks(&one, 1, 1), [(0, true)]);
        assert_eq!(picks(&one, 10_000, 1), [(0, false)]);
    }

    #[test]
    fn rests_only_grow_and_are_capped() {
        let p = pool("a,b");
        p.rest(0, 0, 60_000);
        p.rest(0, 1_000, 5_000);
        assert_eq!(p.resting_until(0, 1_000), Some(60_000));
        p.rest(1, 0, u64::MAX);
        assert_eq!(p.resting_until(1, 0), Some(MAX_REST_MS));
        p.rest(7, 0, 1_000); // no such key: nothing happens
    }

    #[test]
    fn retry_after_in_ms_seconds_or_a_date() {
        let now = http_date_ms("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(now, 1_445_412_480_000);
        assert_eq!(rest_ms(Some("1500"), Some("9"), now), 1_500);
        assert_eq!(rest_ms(None, Some("9"), now), 9_000);
        assert_eq!(rest_ms(None, Some(" 0.5 "), now), 500);
        assert_eq!(rest_ms(None, Some("Wed, 21 Oct 2015 07:28:42 GMT"), now), 42_000);
        assert_eq!(rest_ms(None, Some("Wed, 21 Oct 2015 07:27:00 GMT"), now), 0, "a date in the past");
        assert_eq!(rest_ms(None, Some("86400"), now), MAX_REST_MS);
        for unusable in [None, Some("soon"), Some("-3"), Some("NaN"), Some("Wed, 21 Oct 2015 25:00:00 GMT")] {
            assert_eq!(rest_ms(Some("x"), unusable, now), DEFAULT_REST_MS, "{unusable:?}");
        }
        assert_eq!(http_date_ms("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date_ms("Sun, 29 Feb 2032 23:59:59 GMT"), Some(1_961_711_999_000));
        assert_eq!(http_date_ms("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }
}
