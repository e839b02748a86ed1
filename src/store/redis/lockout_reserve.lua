-- Asks to try a login against every counter in KEYS (an account and a client
-- address), atomically. ARGV: max failures, lock (ms), reservation id,
-- hold (ms). A counter is a hash: failures, window_ends, locked_until (ms)
-- and one field r:<id> = end of its hold per attempt in flight. Failures
-- plus attempts in flight stay under the limit: then the attempt holds a
-- place on each counter. Redis's own clock decides (`now`, from
-- lockout_clock.lua), so replicas agree.
-- Returns {0} allowed, {1, ms} locked for ms, {2} busy.
local max, lock = tonumber(ARGV[1]), tonumber(ARGV[2])

local counters = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local c = { failures = 0, window_ends = 0, locked_until = 0, in_flight = 0 }
  local fields = redis.call('HGETALL', key)
  for j = 1, #fields, 2 do
    local name, value = fields[j], tonumber(fields[j + 1])
    if string.sub(name, 1, 2) == 'r:' then
      if value <= now then
        redis.call('HDEL', key, name)
      else
        c.in_flight = c.in_flight + 1
      end
    else
      c[name] = value
    end
  end
  if c.window_ends <= now then
    c.failures = 0
  end
  if c.locked_until - now > wait then
    wait = c.locked_until - now
  end
  counters[i] = c
end
if wait > 0 then
  return {1, wait}
end
local over = false
for i, c in ipairs(counters) do
  -- Only a limit lowered since the failures were counted gets here.
  if c.failures >= max then
    redis.call('HSET', KEYS[i], 'failures', 0, 'locked_until', string.format('%d', now + lock))
    keep_until(KEYS[i], now + lock)
    over = true
  end
end
if over then
  return {1, lock}
end
for _, c in ipairs(counters) do
  if c.failures + c.in_flight >= max then
    return {2}
  end
end
local held_until = now + tonumber(ARGV[4])
for _, key in ipairs(KEYS) do
  redis.call('HSET', key, 'r:' .. ARGV[3], string.format("%d", held_until))
  keep_until(key, held_until)
end
return {0}
