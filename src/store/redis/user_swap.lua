-- Replaces the record of user ARGV[1] in hash KEYS[1] with ARGV[3] if it
-- is still exactly ARGV[2]. Returns 1 when replaced.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
