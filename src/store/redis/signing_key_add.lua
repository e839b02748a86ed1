-- A rotation: ARGV[1] becomes the newest key; every key whose successor was
-- made before ARGV[2] (unix seconds) is forgotten, as
-- `store::forget_superseded` says.
adopt_earlier_key()
redis.call('LPUSH', KEYS[1], ARGV[1])
local keys = redis.call('LRANGE', KEYS[1], 0, -1)
local forget_before = tonumber(ARGV[2])
for i = 2, #keys do
  if (cjson.decode(keys[i - 1]).created_at or 0) < forget_before then
    redis.call('LTRIM', KEYS[1], 0, i - 2)
    return redis.call('LRANGE', KEYS[1], 0, -1)
  end
end
return keys
