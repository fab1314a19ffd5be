#!/usr/bin/env bash
# The local stack in the foreground: Redis, webdis, the mock provider and
# capture sink, and Envoy with the filter. Ctrl-C drains Envoy, then stops all.
set -euo pipefail
cd "$(dirname "$0")/.."

export LLMGW_PORT="${LLMGW_PORT:-10000}" LLMGW_ADMIN_PORT="${LLMGW_ADMIN_PORT:-9901}"
export LLMGW_MOCK_PORT="${LLMGW_MOCK_PORT:-18080}" LLMGW_SINK_PORT="${LLMGW_SINK_PORT:-18081}"
export LLMGW_REDIS_PORT="${LLMGW_REDIS_PORT:-16379}" LLMGW_WEBDIS_PORT="${LLMGW_WEBDIS_PORT:-17379}"
ENVOY="${ENVOY_BIN:-.venv/bin/envoy}"
RUN=.run
mkdir -p "$RUN"

# Providers without a key in the environment are served by the mock, which accepts "mock-key"
# (Azure also needs LLMGW_AZURE_AUTHORITY, <resource>.openai.azure.com, to be real).
mocked=""
for p in OPENAI ANTHROPIC GEMINI BEDROCK AZURE; do
  var="LLM_GATEWAY_${p}_API_KEY"
  if [ -z "${!var:-}" ] || { [ "$p" = AZURE ] && [ -z "${LLMGW_AZURE_AUTHORITY:-}" ]; }; then
    mocked="$mocked ${p,,}"
    export "$var=mock-key"
  fi
done
export LLMGW_MOCKED="$mocked"

for port in "$LLMGW_PORT" "$LLMGW_ADMIN_PORT" "$LLMGW_MOCK_PORT" "$LLMGW_SINK_PORT" "$LLMGW_REDIS_PORT" "$LLMGW_WEBDIS_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run: port $port is already in use (set the LLMGW_*_PORT variables to move the stack)" >&2
    exit 1
  fi
done

pids=()
stop() {
  trap - INT TERM EXIT
  # Drain first so queued analytics are flushed before Envoy exits (docs/protocols/envoy.md).
  curl -s -X POST "http://127.0.0.1:$LLMGW_ADMIN_PORT/drain_listeners?graceful" >/dev/null 2>&1 || true
  sleep "${LLMGW_DRAIN_SECONDS:-2}"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

redis-server --port "$LLMGW_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$RUN/redis.log" 2>&1 &
pids+=($!)
cat >"$RUN/webdis.json" <<JSON
{"redis_host": "127.0.0.1", "redis_port": $LLMGW_REDIS_PORT, "http_host": "127.0.0.1",
 "http_port": $LLMGW_WEBDIS_PORT, "threads": 2, "daemonize": false, "database": 0,
 "verbosity": 1, "logfile": "$RUN/webdis.log"}
JSON
webdis "$RUN/webdis.json" >/dev/null 2>&1 &
pids+=($!)
target/release/mock-stack --provider-port "$LLMGW_MOCK_PORT" --sink-port "$LLMGW_SINK_PORT" &
pids+=($!)

for _ in $(seq 50); do redis-cli -p "$LLMGW_REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
demo_key=$(scripts/key.sh 1 llm_gateway:read "" local-dev)
python3 scripts/render-envoy.py "$RUN/envoy.yaml"
echo "demo API key (team 1, all products): $demo_key   (make key for more)"
"$ENVOY" -c "$RUN/envoy.yaml" --disable-hot-restart --concurrency "${LLMGW_CONCURRENCY:-2}" -l warning &
pids+=($!)
# Say when the gateway takes requests: Envoy loads the filter for a second or so after the banner.
ready=""
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$LLMGW_ADMIN_PORT/ready" && ready=1 && break
  sleep 0.1
done
if [ -n "$ready" ]; then
  echo "ready: send requests to http://127.0.0.1:$LLMGW_PORT"
else
  echo "not ready after 10 s: Envoy's admin /ready did not answer (its log is above)" >&2
fi
wait -n "${pids[@]}"
