-- llm-gateway record.lua: after responses, apply a batch of spend records
-- (aggregated per key by the filter's root context) in one call, atomically
-- (see src/limits/mod.rs).
--
-- KEYS[1..m]    window keys exactly as check.lua returned them
-- KEYS[m+1..]   budget month keys
-- ARGV[1]       m, the number of window keys
-- ARGV[2]       TTL in seconds for a budget key this call creates
-- ARGV[2+j]     integer micro-USD for KEYS[j]: for a window key the delta
--               real cost - reserved estimate (may be negative); for a
--               budget key the real cost (> 0)
--
-- A window key that no longer exists is skipped, never recreated: its window
-- is over (or it was never reserved). A window total never goes below 0.
-- A budget key is created with the TTL. A key found without a TTL gets one.
-- Every argument is checked before the first write, so a bad batch changes nothing.
-- Returns {window keys updated, window keys skipped, budget keys updated}.

local function int(v)
  local x = tonumber(v)
  if x == nil or x ~= math.floor(x) or not string.match(v, '^%-?%d+$') then
    return nil
  end
  return x
end

local m = int(ARGV[1])
local ttl = int(ARGV[2])
if m == nil or m < 0 or m > #KEYS or ttl == nil or ttl <= 0 or #ARGV ~= 2 + #KEYS then
  return redis.error_reply('ERR llmgw record.lua: bad arguments')
end
for j = 1, #KEYS do
  local amount = int(ARGV[2 + j])
  if amount == nil or (j > m and amount < 0) then
    return redis.error_reply('ERR llmgw record.lua: bad amount ' .. j)
  end
end

local updated, skipped, budgets = 0, 0, 0
for j = 1, m do
  local key = KEYS[j]
  local pttl = redis.call('PTTL', key)
  if pttl == -2 then
    skipped = skipped + 1
  else
    if redis.call('INCRBY', key, ARGV[2 + j]) < 0 then
      redis.call('SET', key, 0, 'KEEPTTL')
    end
    if pttl == -1 then
      redis.call('EXPIRE', key, ttl)
    end
    updated = updated + 1
  end
end
for j = m + 1, #KEYS do
  local key = KEYS[j]
  if ARGV[2 + j] ~= '0' then
    redis.call('INCRBY', key, ARGV[2 + j])
    if redis.call('PTTL', key) == -1 then
      redis.call('EXPIRE', key, ttl)
    end
    budgets = budgets + 1
  end
end
return {updated, skipped, budgets}
