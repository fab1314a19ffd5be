#!/usr/bin/env bash
# After the e2e suite: no Envoy log under DIR may show a hostcall Envoy refused
# (README, failure modes: `hostcalls_failed_total`), except the one test that
# forces such calls with the fault build (tests/e2e/tests/vm_failure.rs, in a
# directory named vm-wrong-phase). A refusal anywhere else is a call made in the
# wrong phase, or with a wrong argument, by the shipped flow.
set -euo pipefail
dir=${1:?usage: refused-hostcalls.sh DIR}
# The filter's own warning, in Envoy's logs only (recorded requests may quote anything).
line='\] wasm log [^:]*: hostcall [a-z_]+(\([a-z_]+\))? failed: '
found=$(grep -rlE --include='envoy-*.log' "$line" "$dir" | grep -v '/vm-wrong-phase/' || true)
if [ -n "$found" ]; then
  echo "refused hostcalls in the e2e run:" >&2
  for f in $found; do grep -hE "$line" "$f" | sed 's/.*wasm log[^:]*: /  /' | sort | uniq -c >&2; echo "  in $f" >&2; done
  exit 1
fi
forced=$({ grep -rhE --include='envoy-*.log' "$line" "$dir" || true; } | wc -l)
echo "refused-hostcalls: none outside the wrong-phase test ($forced forced there)"
