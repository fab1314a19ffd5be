//! `UsageTracker` for `Api::Messages` on arbitrary bytes, read as a JSON body and
//! as an SSE stream; the properties are listed on `fuzz_support::check_tracker`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_gateway::wire::Api;

fuzz_target!(|data: &[u8]| fuzz_support::check_tracker(Api::Messages, data));
