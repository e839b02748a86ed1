-- Revokes family KEYS[1] until at least ARGV[1] (unix seconds), known or not,
-- and announces it: ARGV[2] channel, ARGV[3] message (the end follows).
-- Returns the family's end.
local ends = tonumber(redis.call('HGET', KEYS[1], 'end') or '0')
local wanted = tonumber(ARGV[1])
if wanted > ends then
  ends = wanted
end
redis.call('HSET', KEYS[1], 'revoked', '1', 'end', string.format('%d', ends))
-- Tokens of the family are valid through second `end`: keep the record past it.
redis.call('EXPIREAT', KEYS[1], ends + 1)
redis.call('PUBLISH', ARGV[2], ARGV[3] .. ends)
return ends
