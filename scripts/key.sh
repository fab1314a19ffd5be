#!/usr/bin/env bash
# Creates an API key for the local stack: prints a fresh phx_ key and stores its
# principal in Redis under llmgw:key:<sha256>, where the local auth contract
# (webdis) looks it up. Usage: key.sh [TEAM] [SCOPES] [PRODUCTS] [DISTINCT_ID]
#   SCOPES and PRODUCTS are comma-separated; PRODUCTS empty means all products.
#   LLMGW_REDIS_CLI replaces `redis-cli -p $LLMGW_REDIS_PORT`, e.g. for the compose
#   cluster profile: LLMGW_REDIS_CLI="docker compose exec -T redis-node-1 redis-cli -c".
set -euo pipefail
team="${1:-1}" scopes="${2:-llm_gateway:read}" products="${3:-}" distinct="${4:-local-dev}"
port="${LLMGW_REDIS_PORT:-16379}"
key="phx_$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
hash=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
principal=$(python3 - "$team" "$scopes" "$products" "$distinct" <<'PY'
import json, sys
team, scopes, products, distinct = sys.argv[1:]
print(json.dumps({"team_id": int(team), "distinct_id": distinct,
                  "scopes": [s for s in scopes.split(",") if s],
                  "products": [p for p in products.split(",") if p] or None}))
PY
)
# shellcheck disable=SC2086 # LLMGW_REDIS_CLI is a command line
${LLMGW_REDIS_CLI:-redis-cli -p $port} SET "llmgw:key:$hash" "$principal" >/dev/null
echo "$key"
