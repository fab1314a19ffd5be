//! Test helpers shared by the wire readers.

use super::{Extracted, UsageTracker};
use crate::wire::Api;

pub(super) fn finish_body(wire: Api, body: &[u8]) -> Extracted {
    let mut t = UsageTracker::new(wire, false);
    t.feed(body);
    t.finish()
}

/// Reads `stream` whole, split at every byte offset and one byte at a time;
/// all must agree. Returns the result.
pub(super) fn every_split(wire: Api, stream: &[u8]) -> Extracted {
    let mut t = UsageTracker::new(wire, true);
    t.feed(stream);
    let whole = t.finish();
    for cut in 0..=stream.len() {
        let (a, b) = stream.split_at(cut);
        let mut t = UsageTracker::new(wire, true);
        t.feed(a);
        t.feed(b);
        assert_eq!(t.finish(), whole, "split at {cut}");
    }
    let mut t = UsageTracker::new(wire, true);
    for byte in stream {
        t.feed(std::slice::from_ref(byte));
    }
    assert_eq!(t.finish(), whole, "one byte at a time");
    whole
}
