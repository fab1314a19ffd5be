//! Benchmark tooling for the gateway (BENCHMARKS.md, `make bench`):
//!
//! ```text
//! llmgw-bench load  --port P [--path /v1/chat/completions] [--header 'name: value']...
//!                   [--body-bytes 1024 | --body-file F] [--stream] [--expect-body TEXT]
//!                   [--rate R | --closed] [--conns N] [--duration S] [--warmup S]
//!                   [--timeout-ms MS] [--spin-us 0] [--watch-pid PID]...
//! llmgw-bench mock  [--port P] [--chunks N] [--chunk-gap-us U] [--service-us U]
//! llmgw-bench sink  [--port P] [--delay-ms MS]
//! llmgw-bench body  --body-bytes N [--stream]
//! ```
//!
//! `load` prints one JSON object with the results; `mock` and `sink` print
//! `listening <port>` and serve until killed; `body` prints a request body.

mod body;
mod load;
mod proc;
mod upstream;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: llmgw-bench load|mock|sink|body [options] (see src/main.rs)");
        return ExitCode::from(2);
    }
    let command = args.remove(0);
    let result = match command.as_str() {
        "load" => load::main(&args),
        "mock" => upstream::mock_main(&args),
        "sink" => upstream::sink_main(&args),
        "body" => body::main(&args),
        other => Err(format!("unknown command {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("llmgw-bench {command}: {message}");
            ExitCode::from(2)
        }
    }
}

/// Minimal `--flag value` / `--switch` parsing shared by the commands.
pub struct Args {
    pairs: Vec<(String, Option<String>)>,
}

impl Args {
    /// `switches` are the flags that take no value.
    pub fn parse(args: &[String], switches: &[&str]) -> Result<Args, String> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if !flag.starts_with("--") {
                return Err(format!("unexpected argument {flag:?}"));
            }
            if switches.contains(&flag.as_str()) {
                pairs.push((flag.clone(), None));
            } else {
                let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
                pairs.push((flag.clone(), Some(value.clone())));
            }
        }
        Ok(Args { pairs })
    }

    pub fn has(&self, flag: &str) -> bool {
        self.pairs.iter().any(|(f, _)| f == flag)
    }

    pub fn all(&self, flag: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(f, _)| f == flag).filter_map(|(_, v)| v.as_deref()).collect()
    }

    pub fn get<T: std::str::FromStr>(&self, flag: &str, default: T) -> Result<T, String> {
        match self.all(flag).last() {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("{flag}: cannot use {v:?}")),
        }
    }

    /// Rejects flags the command does not know, so a typo fails loudly.
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        match self.pairs.iter().find(|(f, _)| !known.contains(&f.as_str())) {
            Some((f, _)) => Err(format!("unknown flag {f}")),
            None => Ok(()),
        }
    }
}

/// Makes `sleep` wake within microseconds instead of the default 50 µs timer
/// slack. Threads created afterwards inherit it.
pub fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches no memory.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong, 0);
    }
}
