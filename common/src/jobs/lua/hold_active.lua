-- Move a chunk of waiting jobs from the active list back to the delayed set (pausing a queue).
-- KEYS: 1 active list, 2 delayed zset
-- ARGV: 1 now (ms), 2 chunk size
local ids = redis.call("LRANGE", KEYS[1], 0, tonumber(ARGV[2]) - 1)
if #ids == 0 then
    return 0
end
for _, id in ipairs(ids) do
    redis.call("ZADD", KEYS[2], tonumber(ARGV[1]), id)
end
redis.call("LTRIM", KEYS[1], #ids, -1)
return #ids
