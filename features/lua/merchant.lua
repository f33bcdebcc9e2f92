-- One atomic step on ONE merchant (DESIGN section 2); semantics in features/README.md.
-- Dedup marker -> read hourly/daily buckets ending at the start of the event's hour ->
-- add the event to its buckets -> trim buckets and fraud labels behind the horizon.
-- KEYS: 1 buckets (hash: 'n' newest event ms, 'h<hour>' and 'd<day>' -> '<I4d' count, cents),
--       2 fraud labels (zset: transaction id scored by its event ms), 3 dedup marker
-- ARGV: 1 mode ('s' score, 'p' peek), 2 event ms, 3 cents, 4 hours kept, 5 days kept,
--       6 marker TTL s (0: none), 7 payload digest
-- Returns {'fresh'|'duplicate'|'peek', vector or 'digest|vector'}.
local HOUR, DAY = 3600000, 86400000
local VFMT = '<I4d'
local floor, max = math.floor, math.max
local sunpack, spack = struct.unpack, struct.pack

local mode, t, cents = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local keep_h, keep_d = tonumber(ARGV[4]), tonumber(ARGV[5])
local ttl, digest = tonumber(ARGV[6]), ARGV[7]

if mode == 's' then
  local stored = redis.call('GET', KEYS[3])
  if stored then return {'duplicate', stored} end
end

local hour, day = floor(t / HOUR), floor(t / DAY)
local newest = tonumber(redis.call('HGET', KEYS[1], 'n'))
-- Buckets older than the horizon are never read (nor written), so when they are trimmed
-- does not change any feature.
local oh, od = -1e15, -1e15
if newest then oh, od = floor(newest / HOUR) - keep_h, floor(newest / DAY) - keep_d end
local h_lo, today_lo = max(hour - 24, oh), max(day * 24, oh)
local d_lo, d7_lo = max(day - 30, od), max(day - 7, od)

local fields = {}
for h = h_lo, hour - 1 do fields[#fields + 1] = 'h' .. h end
local nh = #fields
for d = d_lo, day - 1 do fields[#fields + 1] = 'd' .. d end

local c1d, s1d, c7d, s7d, c30d, s30d, ct, st = 0, 0, 0, 0, 0, 0, 0, 0
if #fields > 0 then
  local vals = redis.call('HMGET', KEYS[1], unpack(fields))
  for j = 1, #vals do
    local v = vals[j]
    if v then
      local c, s = sunpack(VFMT, v)
      if j <= nh then
        c1d, s1d = c1d + c, s1d + s
        if h_lo + j - 1 >= today_lo then ct, st = ct + c, st + s end
      else
        c30d, s30d = c30d + c, s30d + s
        if d_lo + j - nh - 1 >= d7_lo then c7d, s7d = c7d + c, s7d + s end
      end
    end
  end
end
c7d, s7d, c30d, s30d = c7d + ct, s7d + st, c30d + ct, s30d + st

local f1d, f7d, f30d = 0, 0, 0
if redis.call('EXISTS', KEYS[2]) == 1 then
  local function zc(lo, hi)
    if lo >= hi then return 0 end
    return redis.call('ZCOUNT', KEYS[2], string.format('%d', lo), string.format('(%d', hi))
  end
  local ftoday = zc(today_lo * HOUR, hour * HOUR)
  f1d = zc(h_lo * HOUR, hour * HOUR)
  f7d = zc(d7_lo * DAY, day * DAY) + ftoday
  f30d = zc(d_lo * DAY, day * DAY) + ftoday
end

local vec = string.format('%d,%d,%d,%d,%d,%d,%d,%d,%d,%d',
  t, c1d, s1d, c7d, s7d, c30d, s30d, f1d, f7d, f30d)
if mode ~= 's' then return {'peek', vec} end

local nn = t
if newest then nn = max(newest, t) end
local nh2, nd2 = floor(nn / HOUR) - keep_h, floor(nn / DAY) - keep_d
local set = {'n', string.format('%d', nn)}
local function bump(field)
  local v = redis.call('HGET', KEYS[1], field)
  local c, s = 0, 0
  if v then c, s = sunpack(VFMT, v) end
  set[#set + 1] = field
  set[#set + 1] = spack(VFMT, c + 1, s + cents)
end
if hour >= nh2 then bump('h' .. hour) end
if day >= nd2 then bump('d' .. day) end
redis.call('HSET', KEYS[1], unpack(set))

if not newest or floor(nn / DAY) > floor(newest / DAY) then
  local stale = {}
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    local kind, idx = f:sub(1, 1), tonumber(f:sub(2))
    if (kind == 'h' and idx < nh2) or (kind == 'd' and idx < nd2) then stale[#stale + 1] = f end
  end
  for j = 1, #stale, 500 do
    redis.call('HDEL', KEYS[1], unpack(stale, j, math.min(j + 499, #stale)))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%d', nd2 * DAY))
end

if ttl > 0 then redis.call('SET', KEYS[3], digest .. '|' .. vec, 'EX', ttl) end
return {'fresh', vec}
