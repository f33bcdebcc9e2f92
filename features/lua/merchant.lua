-- One atomic step on ONE merchant; semantics in features/README.md.
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
--       ARGV[2]: the transaction id (label mode). ARGV[3] (optional): state lifetime in ms,
--       renewed by every update of the state and fraud keys (absent or 0: none).
-- Returns 'F' .. vector, 'D' .. digest .. vector, 'P' .. vector, or 'C'/'N' for a label
-- that changed / did not change anything. The vector is 13 doubles in the order of
-- features.windows.MerchantAggregates.
--
-- State version 3 (little-endian): header '<BdI2I2' = version, newest event ms (-1: none),
-- number of hour buckets, of day buckets; then '<dddddddd' = count, frauds, arrived, cents
-- of the day buckets in [D - 30, D) and in [D - 7, D), D = the newest event's UTC day (0
-- when there is no newest event); then the DAY buckets, then the HOUR buckets, each sorted
-- by index: '<I4I4I4I4I6' = hour or day since the epoch, count, frauds (by event time),
-- fraud labels arrived (by arrival time), cents. Arrival buckets may lie ahead of the newest
-- event. Hour buckets are dropped only when the newest event's day changes, from the start
-- of that day: up to 23 hours of them behind the horizon stay, never read.
--
-- Why: an event of the newest event's day (the usual case) reads its day windows from the
-- header instead of scanning 30 day buckets and the hour buckets in place, then writes its
-- buckets and the header with SETRANGE, or the state in one SET (one concatenation) when it
-- opens a new hour bucket, instead of copying every section in Lua. Other events rewrite
-- the state in one SET. A version 2 state (hours before days, no header sums) is converted on first use.
local VERSION, HDR0, HDR, REC = 3, 13, 77, 22
local HFMT, SFMT, RFMT, IFMT = '<BdI2I2', '<dddddddd', '<I4I4I4I4I6', '<I4'
local HOUR, DAY = 3600000, 86400000
local floor, max = math.floor, math.max
local sunpack, spack = struct.unpack, struct.pack

local mode, t, cents, keep_h, keep_d, ttl, is_fraud, apos = sunpack('<BddI4I4I4B', ARGV[1])
local life = tonumber(ARGV[3] or '') or 0
local function renew()
  if life > 0 then
    redis.call('PEXPIRE', KEYS[1], life)
    redis.call('PEXPIRE', KEYS[2], life)
  end
end

if mode == 0 then
  local stored = redis.call('GET', KEYS[3])
  if stored then return 'D' .. stored end
end

local state = redis.call('GET', KEYS[1])
state = state or (spack(HFMT, VERSION, -1, 0, 0) .. spack(SFMT, 0, 0, 0, 0, 0, 0, 0, 0))
local version, newest, nh, nd = sunpack(HFMT, state)
local D = -1e15 -- the newest event's day
if newest >= 0 then D = floor(newest / DAY) end

-- first bucket (of those after byte `at`) with index >= target (n + 1 when none)
local function lower_bound(str, at, n, target)
  local lo, hi = 1, n + 1
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    if sunpack(IFMT, str, at + (mid - 1) * REC + 1) < target then lo = mid + 1 else hi = mid end
  end
  return lo
end

local hour, day = floor(t / HOUR), floor(t / DAY)
local DAT, HAT = HDR, HDR + nd * REC -- bytes before the first day / hour bucket (version 3)
-- The usual event: scored on the newest event's day (whose bucket is there), in layout 3.
-- It needs neither helper below: a closure costs an allocation per call, so they are made
-- only for the other paths.
local usual, jd = false, 1
if version == VERSION and mode == 0 and day == D then
  jd = lower_bound(state, DAT, nd, day)
  usual = jd <= nd and sunpack(IFMT, state, DAT + (jd - 1) * REC + 1) == day
end
local day_sums_of, bump
if not usual then
  -- Sums (count, frauds, arrived, cents) of the day buckets after byte `at` with index in
  -- [lo, hi), and of those in [lo7, hi).
  day_sums_of = function(str, at, n, lo, lo7, hi)
    local c30, f30, a30, s30, c7, f7, a7, s7 = 0, 0, 0, 0, 0, 0, 0, 0
    for j = 1, n do
      local i, c, f, a, s = sunpack(RFMT, str, at + (j - 1) * REC + 1)
      if i >= hi then break end
      if i >= lo then
        c30, f30, a30, s30 = c30 + c, f30 + f, a30 + a, s30 + s
        if i >= lo7 then c7, f7, a7, s7 = c7 + c, f7 + f, a7 + a, s7 + s end
      end
    end
    return c30, f30, a30, s30, c7, f7, a7, s7
  end

  -- the section with `target` moved by (dc, ds, df, da) and buckets below `horizon` dropped;
  -- its bucket count and whether the target was written
  bump = function(section, n, target, dc, ds, df, da, horizon)
    local k = 0
    while k < n and sunpack(IFMT, section, k * REC + 1) < horizon do k = k + 1 end
    if target < horizon then return section:sub(k * REC + 1), n - k, false end
    local j = lower_bound(section, 0, n, target)
    local head = section:sub(k * REC + 1, (j - 1) * REC)
    if j <= n and sunpack(IFMT, section, (j - 1) * REC + 1) == target then
      local _, c, f, a, s = sunpack(RFMT, section, (j - 1) * REC + 1)
      local moved = spack(RFMT, target, c + dc, f + df, a + da, s + ds)
      return head .. moved .. section:sub(j * REC + 1), n - k, true
    end
    -- a decrement of a bucket that is not there (never written: it was behind the horizon)
    if dc <= 0 and df <= 0 and da <= 0 then return section:sub(k * REC + 1), n - k, false end
    return head .. spack(RFMT, target, dc, df, da, ds) .. section:sub((j - 1) * REC + 1),
      n - k + 1, true
  end
end

if version == 2 then -- hours then days, no header sums: reorder and sum once
  local hours = state:sub(HDR0 + 1, HDR0 + nh * REC)
  local days = state:sub(HDR0 + nh * REC + 1)
  state = spack(HFMT, VERSION, newest, nh, nd) ..
    spack(SFMT, day_sums_of(days, 0, nd, D - 30, D - 7, D)) .. days .. hours
elseif version ~= VERSION then -- checked before any write: an old layout is never misread
  return redis.error_reply('merchant state layout ' .. version .. ', expected ' .. VERSION ..
    ': rebuild the feature store (riverguard features rebuild)')
end
-- the header sums of [D - 30, D) and [D - 7, D)
local c30, f30, a30, s30, c7, f7, a7, s7 = sunpack(SFMT, state, HDR0 + 1)

-- Buckets older than the horizon are never read, so when they are physically dropped does
-- not change any feature. Hour buckets are only dropped when the newest event's day changes (from the start of that
-- day: ph), so that the usual event never has to drop any; the few kept in [ph, oh) are
-- never read, and the state stays the same for any order of the same events.
local oh, od, ph = -1e15, -1e15, -1e15
if newest >= 0 then oh, od, ph = floor(newest / HOUR) - keep_h, D - keep_d, D * 24 - keep_h end

if mode == 2 then
  local arrival
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
  local delta = 1
  if is_fraud == 0 then delta = -1 end
  local ahour, aday = floor(arrival / HOUR), floor(arrival / DAY)
  local hours, days = state:sub(HAT + 1), state:sub(DAT + 1, HAT)
  local nh2, nd2, done
  hours, nh2 = bump(hours, nh, hour, 0, 0, delta, 0, ph)
  hours, nh2 = bump(hours, nh2, ahour, 0, 0, 0, delta, ph)
  days, nd2, done = bump(days, nd, day, 0, 0, delta, 0, od)
  if done and day >= D - 30 and day < D then -- the header sums follow their buckets
    f30 = f30 + delta
    if day >= D - 7 then f7 = f7 + delta end
  end
  days, nd2, done = bump(days, nd2, aday, 0, 0, 0, delta, od)
  if done and aday >= D - 30 and aday < D then
    a30 = a30 + delta
    if aday >= D - 7 then a7 = a7 + delta end
  end
  redis.call('SET', KEYS[1], spack(HFMT, VERSION, newest, nh2, nd2) ..
    spack(SFMT, c30, f30, a30, s30, c7, f7, a7, s7) .. days .. hours)
  renew()
  return 'C'
end

local h_lo, today_lo = max(hour - 24, oh), max(day * 24, oh)
local c1d, s1d, f1d, a1d, ct, st, ft, at = 0, 0, 0, 0, 0, 0, 0, 0
local j = lower_bound(state, HAT, nh, h_lo)
while j <= nh do
  local idx, c, f, a, s = sunpack(RFMT, state, HAT + (j - 1) * REC + 1)
  if idx >= hour then break end
  c1d, s1d, f1d, a1d = c1d + c, s1d + s, f1d + f, a1d + a
  if idx >= today_lo then ct, st, ft, at = ct + c, st + s, ft + f, at + a end
  j = j + 1
end
local w30, wf30, wa30, ws30, w7, wf7, wa7, ws7 = c30, f30, a30, s30, c7, f7, a7, s7
if day ~= D then -- not the newest event's day: the day windows from the buckets
  w30, wf30, wa30, ws30, w7, wf7, wa7, ws7 =
    day_sums_of(state, DAT, nd, max(day - 30, od), max(day - 7, od), day)
end
local vec = spack('<ddddddddddddd', t, c1d, s1d, w7 + ct, ws7 + st, w30 + ct, ws30 + st,
  f1d, wf7 + ft, wf30 + ft, a1d, wa7 + at, wa30 + at)
if mode ~= 0 then return 'P' .. vec end

local nn = max(newest, t)
local nday = floor(nn / DAY)
local dz, hz = nday - keep_d, nday * 24 - keep_h -- as od and ph, after this event
local same_day = nday == D
if same_day then
  if day >= dz and day >= D - 30 and day < D then -- an earlier day in the windows
    c30, s30 = c30 + 1, s30 + cents
    if day >= D - 7 then c7, s7 = c7 + 1, s7 + cents end
  end
else -- t is the newest event now, on a later day: the windows just read are the header's
  c30, f30, a30, s30, c7, f7, a7, s7 = w30, wf30, wa30, ws30, w7, wf7, wa7, ws7
end
local sums = spack(SFMT, c30, f30, a30, s30, c7, f7, a7, s7)

-- the usual event writes its day and hour buckets and the header in place, or the state in
-- one SET when it opens a new hour bucket
if usual then
  local jh = lower_bound(state, HAT, nh, hour)
  local dpos, hpos = DAT + (jd - 1) * REC, HAT + (jh - 1) * REC
  local _, c, f, a, s = sunpack(RFMT, state, dpos + 1)
  local drec = spack(RFMT, day, c + 1, f, a, s + cents)
  if jh <= nh and sunpack(IFMT, state, hpos + 1) == hour then
    _, c, f, a, s = sunpack(RFMT, state, hpos + 1)
    redis.call('SETRANGE', KEYS[1], hpos, spack(RFMT, hour, c + 1, f, a, s + cents))
    redis.call('SETRANGE', KEYS[1], dpos, drec)
    redis.call('SETRANGE', KEYS[1], 0, spack(HFMT, VERSION, nn, nh, nd) .. sums)
  else -- (an APPEND of a new last one would leave the string twice its length in memory)
    redis.call('SET', KEYS[1], spack(HFMT, VERSION, nn, nh + 1, nd) .. sums ..
      state:sub(DAT + 1, dpos) .. drec .. state:sub(dpos + REC + 1, hpos) ..
      spack(RFMT, hour, 1, 0, 0, cents) .. state:sub(hpos + 1))
  end
else
  local hours, nh2 = bump(state:sub(HAT + 1), nh, hour, 1, cents, 0, 0, hz)
  local days, nd2 = bump(state:sub(DAT + 1, HAT), nd, day, 1, cents, 0, 0, dz)
  redis.call('SET', KEYS[1], spack(HFMT, VERSION, nn, nh2, nd2) .. sums .. days .. hours)
end
-- a fraud id whose label arrived behind the day horizon can move no bucket any more (its
-- transaction is no later than its arrival), so it is forgotten
if not same_day then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%d', dz * DAY))
end
if ttl > 0 then redis.call('SET', KEYS[3], ARGV[1]:sub(apos) .. vec, 'EX', ttl) end
renew()
return 'F' .. vec
