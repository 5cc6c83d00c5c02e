-- Forget finished jobs: their data, meta, membership of done/dead, and their index entry.
-- KEYS: 1 data hash, 2 meta prefix, 3 done set, 4 dead set, 5 finished index
-- ARGV: task ids (at most a few hundred per call)
for _, id in ipairs(ARGV) do
    redis.call("DEL", KEYS[2] .. ":" .. id)
end
redis.call("HDEL", KEYS[1], unpack(ARGV))
redis.call("SREM", KEYS[3], unpack(ARGV))
redis.call("SREM", KEYS[4], unpack(ARGV))
redis.call("ZREM", KEYS[5], unpack(ARGV))
return #ARGV
