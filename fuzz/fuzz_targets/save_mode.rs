//! See `fuzz/src/targets/save_mode.rs` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::targets::save_mode::run(data));
