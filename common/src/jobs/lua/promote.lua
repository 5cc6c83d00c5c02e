-- Move due delayed jobs to the active list, a bounded chunk per call (never a whole backlog at once).
-- KEYS: 1 delayed zset, 2 active list, 3 signal list, 4 paused flag
-- ARGV: 1 now (ms), 2 chunk size
if redis.call("EXISTS", KEYS[4]) == 1 then
    return 0
end
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
if #ids == 0 then
    return 0
end
redis.call("RPUSH", KEYS[2], unpack(ids))
redis.call("ZREM", KEYS[1], unpack(ids))
redis.call("DEL", KEYS[3])
redis.call("LPUSH", KEYS[3], 1)
return #ids
