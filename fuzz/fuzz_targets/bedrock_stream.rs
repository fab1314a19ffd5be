//! See `fuzz/src/targets/bedrock_stream.rs` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::targets::bedrock_stream::run(data));
