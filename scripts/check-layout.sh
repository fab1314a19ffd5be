#!/usr/bin/env bash
# Pure modules never touch the host: only src/filter/ and src/lib.rs may name proxy_wasm.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=$(grep -rln 'proxy_wasm' src --include='*.rs' | grep -v -e '^src/filter/' -e '^src/lib.rs$' || true)
if [ -n "$bad" ]; then
  echo "proxy_wasm used outside src/filter/: $bad" >&2
  exit 1
fi
