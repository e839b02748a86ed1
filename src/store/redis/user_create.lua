-- Adds user ARGV[1] with normalized email ARGV[2] and record ARGV[3],
-- unless the tenant has a user with that email or that id. KEYS[1] is the
-- tenant's hash id -> record, KEYS[2] its hash email -> id, KEYS[3] its
-- sorted set of ids (all scores 0, read in id order). Returns 1 when added,
-- 0 when the email is taken, 2 when the id is.
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then
  return 0
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 2
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return 1
