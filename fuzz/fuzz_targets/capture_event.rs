//! See `fuzz/src/targets/capture_event.rs` for what this target checks.
#![no_main]

use fuzz_support::targets::capture_event::{run, Input};

libfuzzer_sys::fuzz_target!(|input: Input| run(input));
