-- Makes ARGV[1] the subject's only API key hash. KEYS[1] subject's pointer,
-- KEYS[2] the new key's record; ARGV[2] the record, ARGV[3] the key prefix of
-- records (same tenant, same slot), ARGV[4] channel, ARGV[5] message prefix.
-- Returns the hash of the key it replaced, if any.
local previous = redis.call('GET', KEYS[1])
if previous and previous ~= ARGV[1] then
  redis.call('DEL', ARGV[3] .. previous)
  redis.call('PUBLISH', ARGV[4], ARGV[5] .. previous)
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
if previous and previous ~= ARGV[1] then
  return previous
end
return false
