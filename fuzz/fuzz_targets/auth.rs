//! See `fuzz/src/targets/auth.rs` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::targets::auth::run(data));
