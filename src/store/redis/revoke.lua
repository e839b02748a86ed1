-- Marks token KEYS[1] revoked through second ARGV[1] (its `exp`: a token is
-- still valid during that second, so the key ends at the next) and announces
-- it (ARGV[3] channel, ARGV[4] message). With ARGV[2] = 'once', only if it is
-- not revoked yet. Returns 1 when this call revoked it.
local ends = string.format('%d', tonumber(ARGV[1]) + 1)
local set
if ARGV[2] == 'once' then
  set = redis.call('SET', KEYS[1], '1', 'NX', 'EXAT', ends)
else
  set = redis.call('SET', KEYS[1], '1', 'EXAT', ends)
end
if not set then
  return 0
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
