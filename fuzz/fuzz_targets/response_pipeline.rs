//! See `fuzz/src/targets/response_pipeline.rs` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::targets::response_pipeline::run(data));
