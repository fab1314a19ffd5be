//! Which request waits for what, on one worker: the callouts made for
//! requests (typed, so an answer finds its request and its meaning), the
//! requests waiting on another request's auth lookup, the requests waiting for
//! a body to start, and the requests to go on from the next tick.
//!
//! Generic over the request type so it holds only weak references and never
//! depends on the request flow that uses it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Weak;

/// What a callout made for a request is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Callout {
    /// The auth lookup of this key hash, which other requests may wait on.
    Auth(String),
    /// The request's limit check.
    Check,
}

/// A request by context id, held weakly (it may end first).
pub type Entry<R> = (u32, Weak<RefCell<R>>);

pub struct Registry<R> {
    callouts: HashMap<u32, (Entry<R>, Callout)>,
    /// Key hash → requests waiting for the lookup in flight for it.
    waiting_auth: HashMap<String, Vec<Entry<R>>>,
    /// Context id → (deadline, request) for requests whose body has not started.
    awaiting_body: HashMap<u32, (u64, Weak<RefCell<R>>)>,
    deferred: Vec<Entry<R>>,
}

impl<R> Default for Registry<R> {
    fn default() -> Self {
        Registry {
            callouts: HashMap::new(),
            waiting_auth: HashMap::new(),
            awaiting_body: HashMap::new(),
            deferred: Vec::new(),
        }
    }
}

impl<R> Registry<R> {
    pub fn add_callout(&mut self, token: u32, request: Entry<R>, callout: Callout) {
        if let Callout::Auth(hash) = &callout {
            self.waiting_auth.entry(hash.clone()).or_default();
        }
        self.callouts.insert(token, (request, callout));
    }

    /// The request a callout answered for, and what it was.
    pub fn take_callout(&mut self, token: u32) -> Option<(Entry<R>, Callout)> {
        self.callouts.remove(&token)
    }

    /// Waits on the lookup in flight for `hash`; false if there is none.
    pub fn wait_for_lookup(&mut self, hash: &str, request: Entry<R>) -> bool {
        match self.waiting_auth.get_mut(hash) {
            Some(waiters) => {
                waiters.push(request);
                true
            }
            None => false,
        }
    }

    /// Ends the lookup of `hash`: the requests that waited on it.
    pub fn end_lookup(&mut self, hash: &str) -> Vec<Entry<R>> {
        self.waiting_auth.remove(hash).unwrap_or_default()
    }

    /// A request ended, and Envoy cancelled its callouts: forgets them and its
    /// body deadline; returns the lookups it was making, whose waiters need another.
    pub fn forget(&mut self, id: u32) -> Vec<String> {
        self.awaiting_body.remove(&id);
        let mut lookups = Vec::new();
        self.callouts.retain(|_, ((owner, _), callout)| {
            if *owner != id {
                return true;
            }
            if let Callout::Auth(hash) = callout {
                lookups.push(std::mem::take(hash));
            }
            false
        });
        lookups
    }

    pub fn expect_body(&mut self, id: u32, deadline_ms: u64, request: Weak<RefCell<R>>) {
        self.awaiting_body.insert(id, (deadline_ms, request));
    }

    pub fn body_arrived(&mut self, id: u32) {
        self.awaiting_body.remove(&id);
    }

    /// Requests whose body has not started by `now_ms`.
    pub fn take_expired_bodies(&mut self, now_ms: u64) -> Vec<Entry<R>> {
        let ids: Vec<u32> = self.awaiting_body.iter().filter(|(_, (d, _))| *d <= now_ms).map(|(id, _)| *id).collect();
        ids.into_iter().filter_map(|id| self.awaiting_body.remove(&id).map(|(_, w)| (id, w))).collect()
    }

    pub fn defer(&mut self, request: Entry<R>) {
        self.deferred.push(request);
    }

    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    pub fn take_deferred(&mut self) -> Vec<Entry<R>> {
        std::mem::take(&mut self.deferred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn a_lookup_gathers_waiters_until_it_ends() {
        let mut r: Registry<()> = Registry::default();
        let me = Rc::new(RefCell::new(()));
        assert!(!r.wait_for_lookup("h", (2, Rc::downgrade(&me))));
        r.add_callout(7, (1, Rc::downgrade(&me)), Callout::Auth("h".into()));
        assert!(r.wait_for_lookup("h", (2, Rc::downgrade(&me))));
        assert!(r.wait_for_lookup("h", (3, Rc::downgrade(&me))));
        let ((id, _), callout) = r.take_callout(7).unwrap();
        assert_eq!((id, callout), (1, Callout::Auth("h".into())));
        assert_eq!(r.end_lookup("h").iter().map(|(id, _)| *id).collect::<Vec<_>>(), [2, 3]);
        assert!(!r.wait_for_lookup("h", (4, Rc::downgrade(&me))));
    }

    #[test]
    fn a_request_that_ends_gives_up_its_lookups() {
        let mut r: Registry<()> = Registry::default();
        let me = Rc::new(RefCell::new(()));
        r.add_callout(7, (1, Rc::downgrade(&me)), Callout::Auth("h".into()));
        r.add_callout(8, (1, Rc::downgrade(&me)), Callout::Check);
        r.add_callout(9, (2, Rc::downgrade(&me)), Callout::Check);
        r.expect_body(1, 10, Rc::downgrade(&me));
        assert_eq!(r.forget(1), ["h"]);
        assert!(r.take_callout(7).is_none() && r.take_callout(8).is_none() && r.take_callout(9).is_some());
        assert!(r.take_expired_bodies(u64::MAX).is_empty());
    }
}
