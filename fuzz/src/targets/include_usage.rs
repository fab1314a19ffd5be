//! `UsageChunkStripper` on arbitrary bytes.
//!
//! - It only deletes: the output is the input with some bytes removed.
//! - A stream without a usage chunk or a `usage` member (no `usage` in its
//!   bytes, and no `\u` escape that could spell one) comes out identical.
//! - With the default event cap the output does not depend on chunking.
//! - With a small cap (events forwarded untouched once over it) the first two
//!   properties still hold.

use crate::{bytewise, is_subsequence, pieces, Rng};
use llm_gateway::usage::UsageChunkStripper;
use llm_gateway::wire::stream::Transform;

fn strip(cap: Option<usize>, chunks: &[&[u8]]) -> Vec<u8> {
    let mut s = cap.map_or_else(UsageChunkStripper::default, UsageChunkStripper::new);
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(s.feed(chunk));
    }
    out.extend(s.finish());
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn run(data: &[u8]) {
    let mut rng = Rng::new(data);
    let untouchable = !contains(data, b"usage") && !contains(data, b"\\u");
    let whole = strip(None, &[data]);
    assert!(is_subsequence(&whole, data), "stripper added or reordered bytes");
    if untouchable {
        assert_eq!(whole, data, "a stream without usage was changed");
    }
    for max_cuts in [4, 64] {
        assert_eq!(strip(None, &pieces(data, &mut rng, max_cuts)), whole, "output depends on chunking");
    }
    if data.len() <= 1024 {
        assert_eq!(strip(None, &bytewise(data)), whole, "output differs when fed byte by byte");
    }
    let cap = 1 + rng.below(data.len() + 1);
    let capped = strip(Some(cap), &pieces(data, &mut rng, 8));
    assert!(is_subsequence(&capped, data), "capped stripper added or reordered bytes");
    if untouchable {
        assert_eq!(capped, data, "capped stripper changed a stream without usage");
    }
}
