-- Marks token KEYS[1] revoked until ARGV[1] (unix seconds) and announces it
-- (ARGV[3] channel, ARGV[4] message). With ARGV[2] = 'once', only if it is
-- not revoked yet. Returns 1 when this call revoked it.
local set
if ARGV[2] == 'once' then
  set = redis.call('SET', KEYS[1], '1', 'NX', 'EXAT', ARGV[1])
else
  set = redis.call('SET', KEYS[1], '1', 'EXAT', ARGV[1])
end
if not set then
  return 0
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
