-- One atomic step on ONE merchant (DESIGN section 2); semantics in features/README.md.
-- Score: dedup marker -> read hourly/daily buckets ending at the start of the event's hour
-- -> add the event to its buckets -> drop buckets behind the horizon.
-- Label: record the fraud outcome of one transaction once (ZADD NX / ZREM) and, only when
-- that changed the set, move by +1/-1 the fraud count of the buckets of the transaction's
-- event time and the arrived count of the buckets of the label's arrival time (the first
-- fraud label's, kept as the zset score, so that a flip undoes exactly what it added).
-- KEYS: 1 state (packed string), 2 fraud labels (zset: transaction id by label arrival ms),
--       3 dedup marker (score mode)
-- ARGV[1]: '<BddI4I4I4B' = mode (0 score, 1 peek, 2 label), event ms, cents, hours kept,
--       days kept, marker TTL s (0: none), is fraud (label mode); then the 8-byte payload
--       digest (score mode) or the label's arrival ms as '<d' (label mode: its labeled_at,
--       features.windows.label_arrival_ms; never before the event, the script makes sure).
--       ARGV[2]: the transaction id (label mode).
-- Returns 'F' .. vector, 'D' .. digest .. vector, 'P' .. vector, or 'C'/'N' for a label
-- that changed / did not change anything. The vector is 13 doubles in the order of
-- features.windows.MerchantAggregates.
--
-- State (little-endian): header '<BdI2I2' = version (2), newest event ms (-1: none), number
-- of hour buckets, of day buckets; then the hour buckets and the day buckets, each sorted by
-- index: '<I4I4I4I4I6' = hour or day since the epoch, count, frauds (by event time), fraud
-- labels arrived (by arrival time), cents. Arrival buckets may lie ahead of the newest event.
local VERSION, HDR, REC = 2, 13, 22
local HFMT, RFMT, IFMT = '<BdI2I2', '<I4I4I4I4I6', '<I4'
local HOUR, DAY = 3600000, 86400000
local floor, max = math.floor, math.max
local sunpack, spack = struct.unpack, struct.pack

local mode, t, cents, keep_h, keep_d, ttl, is_fraud, apos = sunpack('<BddI4I4I4B', ARGV[1])

if mode == 0 then
  local stored = redis.call('GET', KEYS[3])
  if stored then return 'D' .. stored end
end

local state = redis.call('GET', KEYS[1]) or spack(HFMT, VERSION, -1, 0, 0)
local version, newest, nh, nd = sunpack(HFMT, state)
if version ~= VERSION then  -- checked before any write: an old layout is never misread
  return redis.error_reply('merchant state layout ' .. version .. ', expected ' .. VERSION ..
    ': rebuild the feature store (riverguard features rebuild)')
end

local arrival
if mode == 2 then
  if is_fraud == 1 then
    -- never before the transaction itself (features.windows.label_arrival_ms)
    arrival = max(sunpack('<d', ARGV[1], apos), t)
    if redis.call('ZADD', KEYS[2], 'NX', string.format('%d', arrival), ARGV[2]) == 0 then
      return 'N'
    end
  else
    arrival = redis.call('ZSCORE', KEYS[2], ARGV[2])
    if not arrival then return 'N' end
    arrival = tonumber(arrival)
    redis.call('ZREM', KEYS[2], ARGV[2])
  end
end

local hours = state:sub(HDR + 1, HDR + nh * REC)
local days = state:sub(HDR + nh * REC + 1)

-- first bucket with index >= target (n + 1 when none)
local function lower_bound(section, n, target)
  local lo, hi = 1, n + 1
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    if sunpack(IFMT, section, (mid - 1) * REC + 1) < target then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- the section with `target` moved by (dc, ds, df, da) and buckets below `horizon` dropped
local function bump(section, n, target, dc, ds, df, da, horizon)
  local k = 0
  while k < n and sunpack(IFMT, section, k * REC + 1) < horizon do k = k + 1 end
  if target < horizon then return section:sub(k * REC + 1), n - k end
  local j = lower_bound(section, n, target)
  local head = section:sub(k * REC + 1, (j - 1) * REC)
  if j <= n and sunpack(IFMT, section, (j - 1) * REC + 1) == target then
    local _, c, f, a, s = sunpack(RFMT, section, (j - 1) * REC + 1)
    local moved = spack(RFMT, target, c + dc, f + df, a + da, s + ds)
    return head .. moved .. section:sub(j * REC + 1), n - k
  end
  -- a decrement of a bucket that is not there (never written: it was behind the horizon)
  if dc <= 0 and df <= 0 and da <= 0 then return section:sub(k * REC + 1), n - k end
  return head .. spack(RFMT, target, dc, df, da, ds) .. section:sub((j - 1) * REC + 1), n - k + 1
end

local hour, day = floor(t / HOUR), floor(t / DAY)
-- Buckets older than the horizon are never read nor written, so when they are physically
-- dropped does not change any feature.
local oh, od = -1e15, -1e15
if newest >= 0 then oh, od = floor(newest / HOUR) - keep_h, floor(newest / DAY) - keep_d end

if mode == 2 then
  local delta = 1
  if is_fraud == 0 then delta = -1 end
  local ahour, aday = floor(arrival / HOUR), floor(arrival / DAY)
  local nhours, nh2 = bump(hours, nh, hour, 0, 0, delta, 0, oh)
  nhours, nh2 = bump(nhours, nh2, ahour, 0, 0, 0, delta, oh)
  local ndays, nd2 = bump(days, nd, day, 0, 0, delta, 0, od)
  ndays, nd2 = bump(ndays, nd2, aday, 0, 0, 0, delta, od)
  redis.call('SET', KEYS[1], spack(HFMT, VERSION, newest, nh2, nd2) .. nhours .. ndays)
  return 'C'
end

local h_lo, today_lo = max(hour - 24, oh), max(day * 24, oh)
local d_lo, d7_lo = max(day - 30, od), max(day - 7, od)
local c1d, s1d, f1d, a1d, ct, st, ft, at = 0, 0, 0, 0, 0, 0, 0, 0
local j = lower_bound(hours, nh, h_lo)
while j <= nh do
  local idx, c, f, a, s = sunpack(RFMT, hours, (j - 1) * REC + 1)
  if idx >= hour then break end
  c1d, s1d, f1d, a1d = c1d + c, s1d + s, f1d + f, a1d + a
  if idx >= today_lo then ct, st, ft, at = ct + c, st + s, ft + f, at + a end
  j = j + 1
end
local c30d, s30d, f30d, a30d, c7d, s7d, f7d, a7d = 0, 0, 0, 0, 0, 0, 0, 0
j = lower_bound(days, nd, d_lo)
while j <= nd do
  local idx, c, f, a, s = sunpack(RFMT, days, (j - 1) * REC + 1)
  if idx >= day then break end
  c30d, s30d, f30d, a30d = c30d + c, s30d + s, f30d + f, a30d + a
  if idx >= d7_lo then c7d, s7d, f7d, a7d = c7d + c, s7d + s, f7d + f, a7d + a end
  j = j + 1
end
local vec = spack('<ddddddddddddd', t, c1d, s1d, c7d + ct, s7d + st, c30d + ct, s30d + st,
  f1d, f7d + ft, f30d + ft, a1d, a7d + at, a30d + at)
if mode ~= 0 then return 'P' .. vec end

local nn = max(newest, t)
local hz, dz = floor(nn / HOUR) - keep_h, floor(nn / DAY) - keep_d
local nhours, nh2 = bump(hours, nh, hour, 1, cents, 0, 0, hz)
local ndays, nd2 = bump(days, nd, day, 1, cents, 0, 0, dz)
redis.call('SET', KEYS[1], spack(HFMT, VERSION, nn, nh2, nd2) .. nhours .. ndays)
-- a fraud id whose label arrived behind the day horizon can move no bucket any more (its
-- transaction is no later than its arrival), so it is forgotten
if newest < 0 or floor(nn / DAY) > floor(newest / DAY) then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%d', dz * DAY))
end
if ttl > 0 then redis.call('SET', KEYS[3], ARGV[1]:sub(apos) .. vec, 'EX', ttl) end
return 'F' .. vec
