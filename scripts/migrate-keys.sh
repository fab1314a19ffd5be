#!/usr/bin/env bash
# Upgrading a single Redis from the key layout before hash tags (issue 19): moves each
# month's budget, llmgw:budget:<team>:<YYYY-MM>, to llmgw:{t:<team>}:budget:<YYYY-MM>,
# adding it to whatever the gateway already recorded there and keeping its TTL, so the
# month's spend survives the upgrade. Run it right after the new gateways are out (it
# can run again: moved keys are gone). Rate-limit windows are not moved: they restart
# empty at the upgrade and are gone by their own TTL. A Redis Cluster starts empty.
#   LLMGW_REDIS_PORT=6379 scripts/migrate-keys.sh     (or LLMGW_REDIS_CLI="redis-cli -h host -p port")
set -euo pipefail
# shellcheck disable=SC2206 # LLMGW_REDIS_CLI is a command line
cli=(${LLMGW_REDIS_CLI:-redis-cli -p ${LLMGW_REDIS_PORT:-16379}})
move='local v = redis.call("GET", KEYS[1])
if not v then return 0 end
local ttl = redis.call("PTTL", KEYS[1])
redis.call("INCRBY", KEYS[2], v)
if ttl > 0 and redis.call("PTTL", KEYS[2]) < 0 then redis.call("PEXPIRE", KEYS[2], ttl) end
redis.call("DEL", KEYS[1])
return 1'
moved=0
while read -r old; do
  [ -n "$old" ] || continue
  rest=${old#llmgw:budget:}
  team=${rest%%:*}
  month=${rest#*:}
  new="llmgw:{t:$team}:budget:$month"
  "${cli[@]}" EVAL "$move" 2 "$old" "$new" >/dev/null
  echo "$old -> $new"
  moved=$((moved + 1))
done < <("${cli[@]}" --scan --pattern 'llmgw:budget:*')
echo "moved $moved budget key(s)" >&2
