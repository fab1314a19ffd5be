//! See `fuzz/src/targets/translate_stream.rs` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::targets::translate_stream::run(data));
