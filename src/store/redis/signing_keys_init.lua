-- The tenant's generated keys; with none yet, ARGV[1] becomes the only one.
adopt_earlier_key()
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('RPUSH', KEYS[1], ARGV[1])
end
return redis.call('LRANGE', KEYS[1], 0, -1)
