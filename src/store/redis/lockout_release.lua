-- Gives a reserved attempt back on counter KEYS[1]; ARGV[1] = 'reset'
-- clears it instead. A counter that has ended is left ended.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[1] == 'reset' then
  redis.call('HSET', KEYS[1], 'attempts', 0)
elseif tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
end
return 1
