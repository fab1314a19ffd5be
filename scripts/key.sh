#!/usr/bin/env bash
# Creates an API key for the local stack: prints a fresh phx_ key and stores its
# principal in Redis under llmgw:key:<sha256>, where the local auth contract
# (webdis) looks it up. Usage: key.sh [TEAM] [SCOPES] [PRODUCTS] [DISTINCT_ID]
#   SCOPES and PRODUCTS are comma-separated; PRODUCTS empty means all products.
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
redis-cli -p "$port" SET "llmgw:key:$hash" "$principal" >/dev/null
echo "$key"
