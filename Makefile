# llm-gateway: an LLM gateway as an Envoy proxy-wasm filter.
# `make run` starts the local stack; `make test` runs everything CI runs.

WASM := target/wasm32-wasip1/release/llm_gateway.wasm
CARGO ?= cargo
export CARGO_TERM_QUIET ?= true

.PHONY: all setup build build-fault build-timing run test test-unit test-wasm test-e2e test-fleet lint fmt key clean prices

all: build

setup:
	@scripts/setup.sh

build: setup
	@$(CARGO) build --release --target wasm32-wasip1 -p llm-gateway
	@echo "built $(WASM) ($$(stat -c %s $(WASM)) bytes)"

lint: setup
	@$(CARGO) fmt --all --check
	@$(CARGO) clippy --workspace --all-targets -- -D warnings
	@$(CARGO) clippy -p llm-gateway --target wasm32-wasip1 -- -D warnings
	@scripts/check-layout.sh

test-unit:
	@$(CARGO) test -p llm-gateway --lib

# The same unit tests on the real target, run by Node's WASI (see .cargo/config.toml).
test-wasm: setup
	@$(CARGO) test -p llm-gateway --lib --target wasm32-wasip1

# The fault-injection build (a header traps the VM) for the failure_policy test.
FAULT_WASM := target/wasm32-wasip1/fault/llm_gateway.wasm
build-fault: setup
	@$(CARGO) build --profile fault --target wasm32-wasip1 -p llm-gateway --features fault-injection

# The callback-timing build, for bench/profile.py --timing.
build-timing: setup
	@$(CARGO) build --profile timing --target wasm32-wasip1 -p llm-gateway --features callback-timing

# The harness writes Envoy logs and every request it received (provider, capture,
# callouts) under target/e2e-artifacts; secret-scan.py then checks them for keys,
# and refused-hostcalls.sh the logs for hostcalls Envoy refused.
test-e2e: build build-fault
	@rm -rf target/e2e-artifacts
	@$(CARGO) test -p llm-gateway-e2e
	@python3 scripts/secret-scan.py target/e2e-artifacts
	@scripts/refused-hostcalls.sh target/e2e-artifacts

test: lint test-unit test-wasm test-e2e fuzz-smoke

# The fleet tests alone (part of test-e2e): a Redis Cluster on loopback, one bridge per
# gateway, 3 gateways x 2 workers, a master killed mid-run (tests/e2e/tests/fleet.rs).
test-fleet: build
	@$(CARGO) test -p llm-gateway-e2e --test fleet

# The end-to-end smoke set on every Envoy minor 1.36-1.40 on PyPI (or ENVOY_MINORS="1.39 1.40").
.PHONY: test-matrix
test-matrix: build
	@scripts/test-matrix.sh $(ENVOY_MINORS)

run: build
	@$(CARGO) build --release -p llm-gateway-e2e --bin mock-stack
	@scripts/run.sh

# A fresh key for the running local stack: make key TEAM=1 SCOPES=llm_gateway:read PRODUCTS=
key:
	@scripts/key.sh "$(or $(TEAM),1)" "$(or $(SCOPES),llm_gateway:read)" "$(PRODUCTS)"

fmt:
	@$(CARGO) fmt --all

# Regenerates src/pricing/catalog.json from the genai-prices release pinned in
# scripts/prices.py (downloaded with pip); review the diff, then commit.
prices:
	@python3 scripts/prices.py

# Regenerates src/model_caps/catalog.tsv (output limits, reasoning controls) from the pinned LiteLLM release.
.PHONY: model-limits
model-limits:
	@python3 scripts/gen-model-limits.py

clean:
	@$(CARGO) clean

# Benchmarks (BENCHMARKS.md): Envoy without the filter vs with it, same machine and mock,
# pinned cores, interleaved rounds; results printed and written to BENCHMARKS.md.
# bench-peers installs (once) LiteLLM, Portkey and TensorZero, builds AISIX (once) from its source
# (AISIX_GIT, default its GitHub repository), takes agentgateway from BENCH_AGENTGATEWAY_BIN (skipped
# when unset; BENCH_AISIX_BIN overrides the built AISIX), and measures them against Envoy
# with and without the filter in the same run (its own BENCHMARKS.md section), 8 rounds: at
# 10 req/s the gateway's small delta needs them. BENCH_ARGS passes options
# to bench/bench.py (e.g. BENCH_ARGS="--rounds 3 --scenarios chat-1k").
.PHONY: bench bench-peers bench-fleet bench-builds
# What both bench targets load: the load generator and mock, the floor filters, the callback-timing build.
bench-builds: build
	@$(CARGO) build --release -p llm-gateway-bench
	@$(CARGO) build --release --target wasm32-wasip1 --manifest-path bench/wasm-floor/Cargo.toml \
		|| echo "bench: floor filters (bench/wasm-floor) did not build; their systems are skipped"
	@$(CARGO) build --profile timing --target wasm32-wasip1 -p llm-gateway --features callback-timing \
		|| echo "bench: the callback-timing build did not build; filter-timing is skipped"

bench: bench-builds
	@BENCH_COMMAND="make bench $(BENCH_ARGS)" python3 bench/bench.py $(BENCH_ARGS)

bench-peers: bench-builds
	@BENCH_COMMAND="make bench-peers $(BENCH_ARGS)" python3 bench/bench.py --peers-only --rounds 8 $(BENCH_ARGS)

# Redis commands per request on a Redis Cluster (BENCHMARKS.md, "Fleet"): the fleet of
# the fleet tests at FLEET_RATE req/s (100) for FLEET_SECONDS (10) per lease size and
# subject mix, then what one shard sustains of each script (redis-benchmark).
bench-fleet: build
	@$(CARGO) test -p llm-gateway-e2e --test fleet -- --ignored --nocapture fleet_sizing

# Fuzzing: fuzz/ is a cargo-fuzz project (its own workspace, nightly). Both
# targets install cargo-fuzz when missing. FUZZ_TARGETS="sse_parser request"
# limits the run to some targets; see fuzz/run.sh for the other knobs.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=

.PHONY: fuzz fuzz-smoke soak

# Each target for FUZZ_SECONDS, from the committed seeds and what earlier runs found.
fuzz:
	@fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# A few seconds per target, two at a time: the short run CI makes.
fuzz-smoke:
	@fuzz/run.sh --smoke $(FUZZ_TARGETS)

# The soak (issue 9): SOAK_MINUTES (default 20) of mixed traffic with dependency faults
# and recoveries; checks memory stays flat and the books balance. Report in target/soak/.
soak: build
	@bash scripts/soak.sh
	@python3 scripts/secret-scan.py target/soak/run
