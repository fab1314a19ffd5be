-- llm-gateway check.lua: before forwarding, check every rate-limit window and
-- the team's monthly budget, then reserve the call's estimated cost in every
-- window, atomically (see src/limits/mod.rs).
--
-- KEYS[1..n]  window base keys; window i's key is KEYS[i]..':'..index, where
--             index = floor(now / length) on Redis's clock (fixed windows)
-- KEYS[n+1]   optional: the team's budget key for this month
-- ARGV[1]     estimated cost, integer micro-USD >= 0
-- ARGV[2]     n, the number of windows
-- ARGV[3]     monthly budget cap, micro-USD (0: never deny on budget)
-- ARGV[2+2i]  window i's length in seconds (> 0)
-- ARGV[3+2i]  window i's limit, micro-USD
-- ARGV[4+2n]  optional lease, micro-USD >= 0: reserved on top of the estimate
--             when every window can take both, for the worker to admit later
--             calls itself (src/limits/admission.rs)
--
-- Returns a flat array (webdis renders nested arrays as null):
--   {1, month_spend, key_1, spent_1, reset_ms_1, ..., key_n, spent_n, reset_ms_n, lease}
--       allowed; the estimate (and the lease granted, 0 if it did not fit)
--       was added to every window; spent_i includes both; month_spend is -1
--       without a budget key
--   {0, i, reset_ms, spent, month_spend}   denied: window i has spent +
--       estimate > limit; of several full windows, the one that resets last
--       (ties: the last listed); nothing reserved; month_spend as above
--   {2, month_spend, spent_1, reset_ms_1, ..., spent_n, reset_ms_n}
--       denied: month_spend >= cap > 0; nothing reserved; each window's
--       spend as it stands, for the response's rate-limit headers
-- A window key is created with a TTL of the time left in its window.

local function int(v)
  local x = tonumber(v)
  if x == nil or x < 0 or not string.match(v, '^%d+$') then
    return nil
  end
  return x
end

local est = int(ARGV[1])
local n = int(ARGV[2])
local cap = int(ARGV[3])
local lease = 0
if n ~= nil and #ARGV == 4 + 2 * n then
  lease = int(ARGV[4 + 2 * n])
end
if est == nil or n == nil or cap == nil or lease == nil or (#ARGV ~= 3 + 2 * n and #ARGV ~= 4 + 2 * n)
    or (#KEYS ~= n and #KEYS ~= n + 1) then
  return redis.error_reply('ERR llmgw check.lua: bad arguments')
end
local lengths, limits = {}, {}
for i = 1, n do
  lengths[i] = int(ARGV[2 + 2 * i])
  limits[i] = int(ARGV[3 + 2 * i])
  if lengths[i] == nil or lengths[i] == 0 or limits[i] == nil then
    return redis.error_reply('ERR llmgw check.lua: bad window ' .. i)
  end
end

local month_spend = -1
if #KEYS == n + 1 then
  month_spend = tonumber(redis.call('GET', KEYS[n + 1]) or '0') or 0
end

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keys, spent, resets = {}, {}, {}
for i = 1, n do
  local length_ms = lengths[i] * 1000
  local index = math.floor(now_ms / length_ms)
  keys[i] = KEYS[i] .. ':' .. string.format('%d', index)
  spent[i] = tonumber(redis.call('GET', keys[i]) or '0') or 0
  resets[i] = (index + 1) * length_ms - now_ms
end

if #KEYS == n + 1 and cap > 0 and month_spend >= cap then
  local out = {2, month_spend}
  for i = 1, n do
    out[#out + 1] = spent[i]
    out[#out + 1] = resets[i]
  end
  return out
end

local deny, deny_reset = 0, -1
for i = 1, n do
  if spent[i] + est > limits[i] and resets[i] >= deny_reset then
    deny, deny_reset = i, resets[i]
  end
end
if deny > 0 then
  return {0, deny, deny_reset, spent[deny], month_spend}
end

for i = 1, n do
  if spent[i] + est + lease > limits[i] then
    lease = 0
  end
end
local out = {1, month_spend}
local amount = string.format('%d', est + lease)
for i = 1, n do
  local v = redis.call('INCRBY', keys[i], amount)
  if redis.call('PTTL', keys[i]) < 0 then
    redis.call('PEXPIRE', keys[i], resets[i])
  end
  out[#out + 1] = keys[i]
  out[#out + 1] = v
  out[#out + 1] = resets[i]
end
out[#out + 1] = lease
return out
