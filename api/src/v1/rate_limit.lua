-- Fixed-window counters for several buckets at once, all or nothing.
-- KEYS[i]: a bucket's counter. ARGV[1]: the window in milliseconds. ARGV[1 + i]: the limit of KEYS[i].
-- A window opens at a bucket's first counted call and lasts ARGV[1] ms (the key's TTL), so it is timed by
-- Redis' clock, not by the API instances'. A call is counted in every bucket or in none: a refused call
-- does not use up anything.
-- Returns {admitted (1|0), count_1, ttl_ms_1, count_2, ttl_ms_2, ...}, counts after this call.
local window = tonumber(ARGV[1])
local admitted = 1
local counts, ttls = {}, {}
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  local ttl = redis.call('PTTL', key)
  if ttl <= 0 then
    -- Absent (-2), or without expiry (-1) after a manual write: a fresh window.
    count = 0
    ttl = window
  end
  counts[i] = count
  ttls[i] = ttl
  if count >= tonumber(ARGV[i + 1]) then
    admitted = 0
  end
end
if admitted == 1 then
  for i, key in ipairs(KEYS) do
    counts[i] = counts[i] + 1
    redis.call('SET', key, counts[i], 'PX', ttls[i])
  end
end
local result = {admitted}
for i = 1, #KEYS do
  result[#result + 1] = counts[i]
  result[#result + 1] = ttls[i]
end
return result
