-- Prelude of the scripts on a tenant's generated keys. KEYS[1]: the list
-- of keys, newest first; KEYS[2]: the single key earlier versions kept,
-- which becomes the list's first entry (and is left where it was, for an
-- earlier replica still reading it).
local function adopt_earlier_key()
  if redis.call('LLEN', KEYS[1]) == 0 then
    local earlier = redis.call('GET', KEYS[2])
    if earlier then
      redis.call('RPUSH', KEYS[1], earlier)
    end
  end
end
