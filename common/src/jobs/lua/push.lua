-- Push jobs in apalis-redis' layout: data hash field, meta hash, then the active list (run now) or our
-- delayed set (run later, or the queue is paused). A task id Redis already knows is skipped.
-- KEYS: 1 data hash, 2 active list, 3 signal list, 4 meta prefix, 5 delayed zset, 6 idempotency prefix,
--       7 paused flag
-- ARGV: 1 now (ms), 2 idempotency ttl (s), 3 idempotency key ("" = none),
--       then groups of 5: task id, data, attempt, max attempts, run at (ms, 0 = now)
local now = tonumber(ARGV[1])
if ARGV[3] ~= "" then
    local claimed = redis.call("SET", KEYS[6] .. ":" .. ARGV[3], ARGV[4], "NX", "EX", tonumber(ARGV[2]))
    if not claimed then
        return 0
    end
end
local paused = redis.call("EXISTS", KEYS[7]) == 1
local pushed = 0
local activated = 0
for i = 4, #ARGV, 5 do
    local task_id = ARGV[i]
    if redis.call("HSETNX", KEYS[1], task_id, ARGV[i + 1]) == 1 then
        redis.call("HSET", KEYS[4] .. ":" .. task_id,
            "attempts", tonumber(ARGV[i + 2]) - 1, "max_attempts", ARGV[i + 3], "status", "Pending",
            "idempotency_key", "", "pushed_at", now)
        local run_at = tonumber(ARGV[i + 4])
        if paused or run_at > now then
            redis.call("ZADD", KEYS[5], math.max(run_at, now), task_id)
        else
            redis.call("RPUSH", KEYS[2], task_id)
            activated = activated + 1
        end
        pushed = pushed + 1
    end
end
if activated > 0 then
    redis.call("DEL", KEYS[3])
    redis.call("LPUSH", KEYS[3], 1)
end
return pushed
