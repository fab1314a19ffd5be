//! Writes what the gateway sent to its neighbours (provider requests, capture
//! batches, callouts) next to Envoy's logs under `artifacts_dir()`, so
//! `scripts/secret-scan.py` can check the whole suite for leaked keys.

use std::io::Write;
use std::path::PathBuf;

use crate::http1::Request;

/// `LLMGW_E2E_ARTIFACTS`, or `target/e2e-artifacts` in the repo.
pub fn artifacts_dir() -> PathBuf {
    std::env::var_os("LLMGW_E2E_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::stack::repo_root().join("target/e2e-artifacts"))
}

/// Appends `req` to `<kind>-<pid>.log`: a `=== ` line, `h name: value` per
/// header, then `b ` and the body with newlines escaped.
pub fn request(kind: &str, req: &Request) {
    let mut text = format!("=== {} {}\n", req.method, req.path);
    for (name, value) in &req.headers {
        text.push_str(&format!("h {name}: {value}\n"));
    }
    let body = String::from_utf8_lossy(&req.body).replace('\\', "\\\\").replace('\n', "\\n").replace('\r', "\\r");
    text.push_str(&format!("b {body}\n"));
    let dir = artifacts_dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{kind}-{}.log", std::process::id()));
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(text.as_bytes());
    }
}
