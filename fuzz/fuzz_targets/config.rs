//! See `fuzz/src/targets/config.rs` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::targets::config::run(data));
