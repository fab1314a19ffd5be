#!/usr/bin/env bash
# make soak: a bounded soak of the gateway on loopback (tests/e2e/src/bin/soak.rs).
# Mixed traffic through Envoy (1 worker) with provider faults, clients leaving
# mid-stream and one dependency (auth, webdis, PostHog primary or mirror) failing
# at a time; checks that nothing gets stuck, memory stays flat and the books
# balance. Report: target/soak/report.md; exits non-zero if a check fails.
#
#   SOAK_MINUTES=20 (fractions allowed: SOAK_MINUTES=0.5 for a quick check)
#   SOAK_RATE=75 (requests/s, all clients together), SOAK_THREADS=4, SOAK_SEED
#
# Needs the filter built (make build; `make soak` depends on it), Envoy (make setup),
# redis-server and webdis.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM=target/wasm32-wasip1/release/llm_gateway.wasm
if [ ! -f "$WASM" ]; then
  echo "soak: $WASM is missing: run make build" >&2
  exit 2
fi
for tool in redis-server webdis; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is not installed" >&2; exit 2; }
done

export SOAK_MINUTES="${SOAK_MINUTES:-20}"
CARGO="${CARGO:-cargo}"
"$CARGO" build --release -p llm-gateway-e2e --bin soak
echo "soak: ${SOAK_MINUTES} min; report in target/soak/report.md" >&2
# Everything the gateway sent to its neighbours is recorded beside the logs, for the secret scan.
export LLMGW_E2E_ARTIFACTS="$PWD/target/soak/run"
exec target/release/soak
