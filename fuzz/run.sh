#!/usr/bin/env bash
# Builds and runs the cargo-fuzz targets in fuzz/fuzz_targets/.
#
#   fuzz/run.sh SECONDS [TARGET...]   each target for SECONDS (make fuzz)
#   fuzz/run.sh --smoke [TARGET...]   each target for FUZZ_SMOKE_SECONDS (default 4) or
#                                     FUZZ_SMOKE_RUNS executions, whichever ends first (make fuzz-smoke)
#
# Each target starts from the committed seeds (fuzz/corpus/<target>/, read
# only) plus its working corpus (fuzz/target/work-corpus/<target>/, where
# libFuzzer keeps what it finds, so long runs build on earlier ones).
# Targets run FUZZ_JOBS at a time (default: the number of CPUs). A crash
# leaves its input in fuzz/artifacts/<target>/, its log in
# fuzz/target/logs/<target>.log, and makes the script exit 1 once every
# target has run. Installs cargo-fuzz when it is missing.
#
# Environment: FUZZ_SANITIZER (none|address, default none: the fuzzed modules
# have no `unsafe`, and without ASan the build and the runs are several times
# faster), FUZZ_MAX_LEN (default 8192), FUZZ_TIMEOUT (seconds one input may
# take before it counts as a hang, default 10), FUZZ_TOOLCHAIN (default nightly).
set -euo pipefail
cd "$(dirname "$0")"

if [ "${1:-}" = "--smoke" ]; then
  shift
  seconds=${FUZZ_SMOKE_SECONDS:-4}
  runs=${FUZZ_SMOKE_RUNS:-100000}
  mode=smoke
else
  seconds=${1:-60}
  shift || true
  runs=-1
  mode=fuzz
fi
sanitizer=${FUZZ_SANITIZER:-none}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
max_len=${FUZZ_MAX_LEN:-8192}
timeout=${FUZZ_TIMEOUT:-10}
jobs=${FUZZ_JOBS:-$(nproc)}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz: installing cargo-fuzz (once per machine)"
  t0=$(date +%s)
  cargo install cargo-fuzz --locked
  echo "fuzz: cargo-fuzz installed in $(($(date +%s) - t0)) s"
fi

start=$(date +%s)
echo "fuzz: building ${#targets[@]} targets (sanitizer $sanitizer)"
if [ $# -eq 0 ]; then
  cargo "+$toolchain" fuzz build --sanitizer "$sanitizer"
else
  for t in "${targets[@]}"; do cargo "+$toolchain" fuzz build --sanitizer "$sanitizer" "$t"; done
fi
built=$(date +%s)
echo "fuzz: built in $((built - start)) s; running each target for ${seconds} s, $jobs at a time"
host=$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')
bin=target/$host/release
mkdir -p target/logs

# Runs one target; its summary line goes to target/logs/<target>.result.
run_one() {
  local t=$1 work=target/work-corpus/$1 log=target/logs/$1.log rc t0 t1 execs cov corpus
  mkdir -p "$work" "corpus/$t" "artifacts/$t"
  rm -f "target/logs/$t.result"
  t0=$(date +%s)
  set +e
  "$bin/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$seconds" -runs="$runs" -max_len="$max_len" \
    -timeout="$timeout" -rss_limit_mb=2048 -print_final_stats=1 "$work" "corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  t1=$(date +%s)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
  corpus=$(find "$work" -type f | wc -l || true)
  if [ $rc -eq 0 ]; then
    printf 'fuzz: %-24s ok     %10s execs  cov %6s  corpus %5s  %4s s\n' \
      "$t" "${execs:-?}" "${cov:-?}" "$corpus" $((t1 - t0)) >"target/logs/$t.result"
  else
    {
      printf 'fuzz: %-24s FAILED (exit %s) after %s s; log fuzz/%s\n' "$t" "$rc" $((t1 - t0)) "$log"
      grep -m1 -A12 -e 'panicked at' -e 'ERROR: libFuzzer' "$log" | sed 's/^/    /' || true
      grep -o 'artifacts/[^ ]*' "$log" | tail -1 | sed 's/^/    input: fuzz\//' || true
    } >"target/logs/$t.result"
  fi
  echo "$execs" >"target/logs/$t.execs"
  cat "target/logs/$t.result"
}

running=0
for t in "${targets[@]}"; do
  if [ ! -x "$bin/$t" ]; then
    echo "fuzz: no binary $bin/$t" >&2
    exit 1
  fi
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

failed=()
total_runs=0
for t in "${targets[@]}"; do
  if ! grep -q ' ok ' "target/logs/$t.result" 2>/dev/null; then failed+=("$t"); fi
  n=$(cat "target/logs/$t.execs" 2>/dev/null || true)
  total_runs=$((total_runs + ${n:-0}))
done
end=$(date +%s)
echo "fuzz: $mode: ${#targets[@]} targets, $total_runs executions, $((end - start)) s (build $((built - start)) s, runs $((end - built)) s)"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
