//! See `fuzz/src/targets/translate_body.rs` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::targets::translate_body::run(data));
