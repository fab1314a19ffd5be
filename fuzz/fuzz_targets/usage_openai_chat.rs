//! `UsageTracker` for `Wire::OpenAiChat` on arbitrary bytes, read as a JSON body and
//! as an SSE stream; the properties are listed on `fuzz_support::check_tracker`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_gateway::usage::Wire;

fuzz_target!(|data: &[u8]| fuzz_support::check_tracker(Wire::OpenAiChat, data));
