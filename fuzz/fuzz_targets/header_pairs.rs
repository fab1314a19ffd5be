//! See `fuzz/src/targets/header_pairs.rs` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::targets::header_pairs::run(data));
