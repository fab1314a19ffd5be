//! LLM gateway as an Envoy proxy-wasm HTTP filter.
//!
//! Everything but `filter` is pure logic with no proxy-wasm import, so it is
//! tested natively and on `wasm32-wasip1`; `filter` is the only host adapter.

pub mod accounting;
pub mod alloc_count;
pub mod auth;
pub mod bedrock;
pub mod calendar;
pub mod capture;
pub mod completion;
pub mod config;
pub mod cost_controls;
pub mod count_tokens;
pub mod errors;
pub mod failover;
pub mod flow;
pub mod forward;
pub mod keys;
pub mod limits;
pub mod model_caps;
pub mod models;
pub mod pipeline;
pub mod pricing;
pub mod providers;
pub mod request;
pub mod routes;
pub mod translate;
pub mod usage;
pub mod wire;

#[cfg(all(target_arch = "wasm32", not(test)))]
mod filter;

#[cfg(all(target_arch = "wasm32", not(test)))]
proxy_wasm::main! {{
    filter::start();
}}
