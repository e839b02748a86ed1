-- Subject ARGV[1]'s current API key hash (KEYS[1]: subject -> key hash) and
-- its record (KEYS[2]: key hash -> record), read together.
local hash = redis.call('HGET', KEYS[1], ARGV[1])
if not hash then
  return false
end
local record = redis.call('HGET', KEYS[2], hash)
if not record then
  return false
end
return {hash, record}
