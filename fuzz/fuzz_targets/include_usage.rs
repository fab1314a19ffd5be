//! See `fuzz/src/targets/include_usage.rs` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::targets::include_usage::run(data));
