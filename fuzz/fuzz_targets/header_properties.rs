//! See `fuzz/src/targets/header_properties.rs` for what this target checks.
#![no_main]

use fuzz_support::targets::header_properties::{run, Input};

libfuzzer_sys::fuzz_target!(|input: Input| run(input));
