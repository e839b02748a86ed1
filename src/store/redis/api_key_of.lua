-- The subject's current API key hash (KEYS[1] points to it) and its record;
-- ARGV[1] is the key prefix of records.
local hash = redis.call('GET', KEYS[1])
if not hash then
  return false
end
local record = redis.call('GET', ARGV[1] .. hash)
if not record then
  return false
end
return {hash, record}
