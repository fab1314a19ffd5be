//! `SseParser` on arbitrary bytes.
//!
//! - The same bytes give the same events (and the same dropped count) whether
//!   fed whole, cut at random points (empty chunks included) or byte by byte.
//! - Events are well formed: `data` holds no CR and fits the size cap, a type
//!   is never empty and holds no line end.
//! - `finish` leaves nothing behind: a second `finish` yields nothing.

use crate::{bytewise, pieces, Rng};
use llm_gateway::wire::sse::DEFAULT_MAX_EVENT_BYTES;
use llm_gateway::wire::{SseEvent, SseParser};

fn parse_all(cap: usize, chunks: &[&[u8]]) -> (Vec<SseEvent>, u64) {
    let mut p = SseParser::new(cap);
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(p.feed(chunk));
    }
    out.extend(p.finish());
    assert_eq!(p.finish(), None, "a second finish produced an event");
    (out, p.dropped_events())
}

pub fn run(data: &[u8]) {
    let mut rng = Rng::new(data);
    let caps = [DEFAULT_MAX_EVENT_BYTES, 1 + rng.below(64), 1 + rng.below(data.len() + 1)];
    for cap in caps {
        let whole = parse_all(cap, &[data]);
        for e in &whole.0 {
            assert!(!e.data.contains('\r'), "CR inside event data");
            assert!(e.data.len() <= cap, "event data over the cap: {} > {cap}", e.data.len());
            if let Some(t) = &e.event {
                assert!(!t.is_empty() && !t.contains(['\r', '\n']), "bad event type {t:?}");
            }
        }
        for max_cuts in [4, 64] {
            assert_eq!(
                parse_all(cap, &pieces(data, &mut rng, max_cuts)),
                whole,
                "cap {cap}: events depend on chunking"
            );
        }
        if data.len() <= 1024 {
            assert_eq!(parse_all(cap, &bytewise(data)), whole, "cap {cap}: events differ when fed byte by byte");
        }
    }
}
