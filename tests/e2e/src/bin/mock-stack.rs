//! Runs the mock provider and the PostHog capture sink for `make run` and
//! manual testing:
//!
//! ```text
//! mock-stack [--provider-port P] [--sink-port S]
//! ```
//!
//! A missing or zero port picks a free one; the chosen ports are printed on
//! one line. The provider accepts the keys in `LLM_GATEWAY_OPENAI_API_KEY`,
//! `LLM_GATEWAY_ANTHROPIC_API_KEY`, `LLM_GATEWAY_GEMINI_API_KEY` and
//! `LLM_GATEWAY_BEDROCK_API_KEY` (the ones the gateway is given), each
//! `mock-key` when unset. Every batch the sink receives is summarised on one
//! line: event count and names, never contents. Runs until killed.

use llm_gateway_e2e::mock::{MockProvider, ProviderKeys};
use llm_gateway_e2e::sink::CaptureSink;
use std::process::ExitCode;

const USAGE: &str = "usage: mock-stack [--provider-port P] [--sink-port S]";

fn main() -> ExitCode {
    let (provider_port, sink_port) = match parse_args(std::env::args().skip(1)) {
        Ok(ports) => ports,
        Err(message) => {
            eprintln!("mock-stack: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = MockProvider::start_on(provider_port, ProviderKeys::from_env()).and_then(|provider| {
        let sink = CaptureSink::start_on(sink_port, |batch| println!("capture sink: {}", batch.summary()))?;
        Ok((provider, sink))
    });
    let (provider, sink) = match started {
        Ok(servers) => servers,
        Err(e) => {
            eprintln!("mock-stack: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("mock provider on 127.0.0.1:{}, capture sink on 127.0.0.1:{}", provider.port(), sink.port());
    // The servers run on their own threads; this one only keeps them alive.
    loop {
        std::thread::park();
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(u16, u16), String> {
    let (mut provider, mut sink) = (0, 0);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--provider-port" => &mut provider,
            "--sink-port" => &mut sink,
            _ => return Err(format!("unknown argument {flag:?}")),
        };
        let value = args.next().ok_or_else(|| format!("{flag} needs a port"))?;
        *slot = value.parse().map_err(|_| format!("{flag}: not a port: {value:?}"))?;
    }
    Ok((provider, sink))
}
