-- Presents refresh token ARGV[1] to family KEYS[1]; rotates to ARGV[2]
-- (when not empty) if it is the current one. A rotated-out token revokes the
-- family and announces it: ARGV[3] channel, ARGV[4] message (the end follows).
-- Returns {0} dead, {1} current, {2, end} reused.
local family = redis.call('HMGET', KEYS[1], 'current', 'revoked', 'end')
if not family[1] or family[2] == '1' then
  return {0}
end
if family[1] ~= ARGV[1] then
  local ends = family[3] or '0'
  redis.call('HSET', KEYS[1], 'revoked', '1')
  redis.call('PUBLISH', ARGV[3], ARGV[4] .. ends)
  return {2, tonumber(ends)}
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'current', ARGV[2])
end
return {1}
