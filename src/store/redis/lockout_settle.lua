-- Ends reservation ARGV[1] on every counter in KEYS. ARGV[2] = 'failed'
-- counts a failure on each (the one reaching ARGV[3] failures within the
-- window of ARGV[4] ms locks for ARGV[5] ms); otherwise ARGV[5 + i] = '1'
-- clears counter i's failures. Redis's clock decides (`now`, from
-- lockout_clock.lua).
local max, window, lock = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

for i, key in ipairs(KEYS) do
  redis.call('HDEL', key, 'r:' .. ARGV[1])
  if ARGV[2] == 'failed' then
    local window_ends = tonumber(redis.call('HGET', key, 'window_ends') or '0')
    local failures = tonumber(redis.call('HGET', key, 'failures') or '0')
    if window_ends <= now then
      failures = 0
      window_ends = now + window
      redis.call('HSET', key, 'window_ends', string.format('%d', window_ends))
    end
    failures = failures + 1
    if failures >= max then
      redis.call('HSET', key, 'failures', 0, 'locked_until', string.format('%d', now + lock))
      keep_until(key, now + lock)
    else
      redis.call('HSET', key, 'failures', failures)
    end
    keep_until(key, window_ends)
  elseif ARGV[5 + i] == '1' and redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'failures', 0)
  end
end
return 0
