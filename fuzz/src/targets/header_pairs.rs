//! The proxy-wasm ABI's header map (`wire::header_pairs`), as Envoy hands it
//! to the filter.
//!
//! `decode_pairs`: any bytes decode or are refused, without a panic or a read
//! past their end; pairs that decode encode back to bytes that decode to the
//! same pairs.

use llm_gateway::wire::header_pairs::{decode_pairs, encode_pairs};

pub fn run(data: &[u8]) {
    if let Some(pairs) = decode_pairs(data) {
        let borrowed: Vec<(&str, &str)> = pairs.iter().collect();
        assert_eq!(decode_pairs(&encode_pairs(&borrowed)).as_ref(), Some(&pairs));
    }
}
