-- Shared by the lockout scripts (prepended to each): Redis's clock in ms,
-- and keeping a counter at least until `at`.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function keep_until(key, at)
  local left = redis.call('PTTL', key)
  if left < 0 or now + left < at then
    redis.call('PEXPIREAT', key, at)
  end
end

