-- Deletes user ARGV[1] and frees its email. KEYS as in user_create.lua.
-- Returns 1 when deleted, 0 when there is no such user.
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then
  return 0
end
local email = cjson.decode(stored).email
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[2], email) == ARGV[1] then
  redis.call('HDEL', KEYS[2], email)
end
return 1
