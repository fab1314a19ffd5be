//! The fuzz targets' bodies. Each `fuzz_targets/<name>.rs` binary only calls
//! `<name>::run`: the code lives in this one library crate, compiled once,
//! so the binaries are quick to build (the 2-core CI budget).

pub mod auth;
pub mod bedrock_stream;
pub mod capture_event;
pub mod config;
pub mod header_pairs;
pub mod header_properties;
pub mod include_usage;
pub mod include_usage_roundtrip;
pub mod request;
pub mod response_pipeline;
pub mod save_mode;
pub mod sse_parser;
pub mod translate_body;
pub mod translate_stream;
