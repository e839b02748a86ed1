-- Replaces the record of user ARGV[1] with ARGV[3], whose email must be
-- the stored one, ARGV[2]. KEYS as in user_create.lua. Returns 1 when
-- replaced, 0 when there is no such user.
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then
  return 0
end
if cjson.decode(stored).email ~= ARGV[2] then
  return redis.error_reply("a user's email cannot change")
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
