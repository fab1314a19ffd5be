#!/bin/bash
# Runs Envoy through the official image's entrypoint, and stops it the way the
# filter needs: on SIGTERM (docker compose stop/down) drain the listeners first
# and wait longer than the capture flush interval, so queued $ai_generation
# events are sent, then exit; this script is PID 1, so the container ends with it.
# The admin endpoint is on 127.0.0.1 only, reachable from inside the container.
set -u
/docker-entrypoint.sh "$@" &
pid=$!
drain() {
  if exec 3<>"/dev/tcp/127.0.0.1/${LLMGW_ADMIN_PORT:-9901}"; then
    printf 'POST /drain_listeners?graceful HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
    cat <&3 >/dev/null
    exec 3<&-
  fi
  sleep "${LLMGW_DRAIN_SECONDS:-3}"
  exit 0
}
trap drain TERM INT
wait "$pid"
