-- Makes ARGV[2] the only API key hash of subject ARGV[1]. KEYS[1] is the
-- tenant's hash subject -> key hash, KEYS[2] its hash key hash -> record;
-- ARGV[3] the record, ARGV[4] channel, ARGV[5] message prefix.
-- Returns the hash of the key it replaced, if any.
local previous = redis.call('HGET', KEYS[1], ARGV[1])
local replaced = previous and previous ~= ARGV[2]
if replaced then
  redis.call('HDEL', KEYS[2], previous)
  redis.call('PUBLISH', ARGV[4], ARGV[5] .. previous)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if replaced then
  return previous
end
return false
