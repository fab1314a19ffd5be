//! See `fuzz/src/targets/sse_parser.rs` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_support::targets::sse_parser::run(data));
