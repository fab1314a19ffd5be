# llm-gateway: an LLM gateway as an Envoy proxy-wasm filter.
# `make run` starts the local stack; `make test` runs everything CI runs.

WASM := target/wasm32-wasip1/release/llm_gateway.wasm
CARGO ?= cargo
export CARGO_TERM_QUIET ?= true

.PHONY: all setup build run test test-unit test-wasm test-e2e lint fmt key clean

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

test-e2e: build
	@$(CARGO) test -p llm-gateway-e2e

test: lint test-unit test-wasm test-e2e

run: build
	@$(CARGO) build --release -p llm-gateway-e2e --bin mock-stack
	@scripts/run.sh

# A fresh key for the running local stack: make key TEAM=1 SCOPES=llm_gateway:read PRODUCTS=
key:
	@scripts/key.sh "$(or $(TEAM),1)" "$(or $(SCOPES),llm_gateway:read)" "$(PRODUCTS)"

fmt:
	@$(CARGO) fmt --all

clean:
	@$(CARGO) clean
