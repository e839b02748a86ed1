-- Reserves one login attempt on every counter in KEYS (an account and a
-- client address), atomically. ARGV: max failures, window (ms), lock (ms).
-- Allowed only if no counter is locked and none would pass the limit; then
-- each counts it. Otherwise nothing is counted and the counters it would
-- have taken past the limit lock. Redis's own clock decides, so replicas
-- agree. Returns 0 when allowed, else the milliseconds to wait.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local max = tonumber(ARGV[1])
local wait = 0
for _, key in ipairs(KEYS) do
  local left = tonumber(redis.call('HGET', key, 'locked_until') or '0') - now
  if left > wait then
    wait = left
  end
end
if wait > 0 then
  return wait
end
local over = {}
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('HGET', key, 'attempts') or '0') >= max then
    table.insert(over, key)
  end
end
if #over > 0 then
  local lock = tonumber(ARGV[3])
  for _, key in ipairs(over) do
    redis.call('HSET', key, 'attempts', 0, 'locked_until', string.format('%d', now + lock))
    redis.call('PEXPIRE', key, lock)
  end
  return lock
end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'attempts', 1)
  if redis.call('PTTL', key) < 0 then
    -- A new counter: its window starts now and the key ends with it.
    redis.call('PEXPIRE', key, ARGV[2])
  end
end
return 0
