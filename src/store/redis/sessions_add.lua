-- Counts family ARGV[1] (ending at ARGV[2], unix seconds) among the subject's
-- sessions, sorted set KEYS[1] (score: the session's end; member: its start
-- by Redis's clock, then the family), forgets the ended ones, and takes the
-- oldest beyond ARGV[3] out. Returns them as {family, end, family, end, ...}.
local time = redis.call('TIME')
local now = tonumber(time[1])
local started = string.format('%010d%06d', now, tonumber(time[2]))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
redis.call('ZADD', KEYS[1], ARGV[2], started .. ':' .. ARGV[1])
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local sessions = {}
for i = 1, #all, 2 do
  table.insert(sessions, { all[i], all[i + 1] })
end
table.sort(sessions, function(a, b) return a[1] < b[1] end)
local evicted = {}
for i = 1, #sessions - tonumber(ARGV[3]) do
  redis.call('ZREM', KEYS[1], sessions[i][1])
  table.insert(evicted, string.sub(sessions[i][1], 18))
  table.insert(evicted, sessions[i][2])
end
-- The set ends with its last session.
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], math.floor(tonumber(last[2])) + 1)
return evicted
