//! See `fuzz/src/targets/request.rs` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::targets::request::run(data));
