//! See `fuzz/src/targets/include_usage_roundtrip.rs` for what this target checks.
#![no_main]

use fuzz_support::targets::include_usage_roundtrip::{run, Stream};

libfuzzer_sys::fuzz_target!(|input: Stream| run(input));
