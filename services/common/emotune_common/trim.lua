-- Trim a stream to its newest ARGV[1] entries (0: no length bound) and drop its entries older than
-- ARGV[2] milliseconds (0: no age bound, at most ARGV[3] of them per call), and count what is evicted.
-- KEYS[1]: the stream; KEYS[2]: its stats hash.
-- Age is measured on the Redis clock, the clock of the entry ids. Evicted entries the slowest consumer
-- group had not yet been delivered are "dropped": the backpressure (or expiry) loss that matters.
-- Returns {evicted, dropped}.
local len = redis.call('XLEN', KEYS[1])
if len == 0 then
  return {0, 0}
end
local maxlen, retention, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local evict = 0
if maxlen > 0 and len > maxlen then
  evict = len - maxlen
end

local entries = nil
if retention > 0 then
  local now = redis.call('TIME')
  local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - retention
  if cutoff > 0 then
    local old = redis.call('XRANGE', KEYS[1], '-', string.format('(%d-0', cutoff), 'COUNT', math.max(evict, limit))
    if #old > evict then
      entries, evict = old, #old
    end
  end
end
if evict == 0 then
  return {0, 0}
end
if entries == nil then
  entries = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', evict)
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function less(a_ms, a_seq, b_ms, b_seq)
  return a_ms < b_ms or (a_ms == b_ms and a_seq < b_seq)
end

-- The slowest group's last delivered id; none when no group reads the stream.
local slow_ms, slow_seq = nil, nil
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  for i = 1, #group, 2 do
    if group[i] == 'last-delivered-id' then
      local ms, seq = parse(group[i + 1])
      if slow_ms == nil or less(ms, seq, slow_ms, slow_seq) then
        slow_ms, slow_seq = ms, seq
      end
    end
  end
end

local dropped = 0
if slow_ms ~= nil then
  for i = #entries, 1, -1 do
    local ms, seq = parse(entries[i][1])
    if less(slow_ms, slow_seq, ms, seq) then dropped = dropped + 1 else break end
  end
end

local last_ms, last_seq = parse(entries[#entries][1])
redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', last_ms, last_seq + 1))
redis.call('HINCRBY', KEYS[2], 'trimmed', #entries)
if dropped > 0 then redis.call('HINCRBY', KEYS[2], 'dropped', dropped) end
return {#entries, dropped}
