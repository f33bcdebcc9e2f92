-- One atomic step on ONE card (DESIGN section 2); semantics in features/README.md.
-- Dedup marker -> point-in-time read of the windows [t - W, t) -> insert -> trim.
-- KEYS: 1 state (packed string), 2 fraud labels (hash: transaction id -> event ms),
--       3 dedup marker of this transaction (string, wall-clock TTL)
-- ARGV[1]: '<BddI4Bi4i4ddI4I4' = mode (0 score, 1 peek: read only), event ms, cents,
--       merchant digest, located (0/1), latitude and longitude in micro-degrees,
--       lateness ms, retention ms, max records, marker TTL s (0: none); then the 8-byte
--       payload digest.
-- Returns 'F' .. vector (fresh), 'D' .. digest .. vector (duplicate: the stored marker),
-- 'L' .. newest event ms as '<d' (late), 'P' .. vector (peek). The vector is 28 doubles
-- in the order of features.windows.CardAggregates.
--
-- State (little-endian): header '<Bdddi4i4' = version, base ms, first-seen ms, newest
-- located event ms (-1: none), its latitude and longitude; then 12-byte records
-- '<I4I4I4' = ms offset from base, cents, merchant digest, sorted ascending.
local HDR, REC = 33, 12
local HFMT, RFMT, TFMT = '<Bdddi4i4', '<I4I4I4', '<I4'
local VFMT = '<dddddddddddddddddddddddddddd'
local HOUR, DAY = 3600000, 86400000
local MAXOFF = 4294967295
local sunpack, spack = struct.unpack, struct.pack

local mode, t, cents, mdig, located, lat, lon, lateness, retention, cap, ttl, apos =
  sunpack('<BddI4Bi4i4ddI4I4', ARGV[1])
local digest = ARGV[1]:sub(apos)

if mode == 0 then
  local stored = redis.call('GET', KEYS[3])
  if stored then return 'D' .. stored end
end

local state = redis.call('GET', KEYS[1])
local n, base, first, loc_ts, loc_lat, loc_lon = 0, t - retention - DAY, -1, -1, 0, 0
if state then
  local _
  _, base, first, loc_ts, loc_lat, loc_lon = sunpack(HFMT, state)
  n = (#state - HDR) / REC
else
  state = ''
end
local function off(i) return (sunpack(TFMT, state, HDR + (i - 1) * REC + 1)) end

local newest = -1
if n > 0 then newest = base + off(n) end
if mode == 0 and n > 0 and t < newest - lateness then return 'L' .. spack('<d', newest) end

-- p = number of records strictly before t (records are sorted by time)
local toff = t - base
local p = n
if n > 0 and off(n) >= toff then
  local lo, hi = 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if off(mid) < toff then lo = mid + 1 else hi = mid end
  end
  p = lo - 1
end

-- Scan backwards from the newest record before t, one phase per window (1h, 1d, 7d, 30d):
-- each phase sums the records between its limit and the previous phase's.
local visited = {}
local function phase(limit, i, pos)
  local cnt, sum, top, sq, dm = 0, 0, 0, 0, 0
  while i >= 1 do
    local o, c, m = sunpack(RFMT, state, pos)
    if o < limit then break end
    cnt, sum, sq = cnt + 1, sum + c, sq + c * c
    if c > top then top = c end
    if not visited[m] then
      visited[m] = true
      dm = dm + 1
    end
    i, pos = i - 1, pos - REC
  end
  return cnt, sum, top, sq, dm, i, pos
end
local i, pos = p, HDR + (p - 1) * REC + 1
local c1h, s1h, x1h, q1h, dm1h, c1d, s1d, x1d, q1d, dm1d
local c7d, s7d, x7d, q7d, dm7d, c30d, s30d, x30d, q30d, dm30d
c1h, s1h, x1h, q1h, dm1h, i, pos = phase(toff - HOUR, i, pos)
c1d, s1d, x1d, q1d, dm1d, i, pos = phase(toff - DAY, i, pos)
c7d, s7d, x7d, q7d, dm7d, i, pos = phase(toff - 7 * DAY, i, pos)
c30d, s30d, x30d, q30d, dm30d = phase(toff - 30 * DAY, i, pos)
c1d, s1d, x1d, dm1d = c1h + c1d, s1h + s1d, math.max(x1h, x1d), dm1h + dm1d
c7d, s7d, x7d, dm7d = c1d + c7d, s1d + s7d, math.max(x1d, x7d), dm1d + dm7d
c30d, s30d, x30d, dm30d = c7d + c30d, s7d + s30d, math.max(x7d, x30d), dm7d + dm30d
q30d = ((q1h + q1d) + q7d) + q30d

local prev_ts = -1
if p > 0 then prev_ts = base + off(p) end
local out_loc_ts, out_lat, out_lon = -1, 0, 0
if loc_ts >= 0 and loc_ts < t then out_loc_ts, out_lat, out_lon = loc_ts, loc_lat, loc_lon end

local fraud = 0
if redis.call('EXISTS', KEYS[2]) == 1 then
  local all = redis.call('HGETALL', KEYS[2])
  local lower = math.max(newest, t) - retention
  local stale = {}
  for j = 1, #all, 2 do
    local ft = tonumber(all[j + 1])
    if ft >= t - 30 * DAY and ft < t then fraud = 1 end
    if ft < lower then stale[#stale + 1] = all[j] end
  end
  if mode == 0 and #stale > 0 then redis.call('HDEL', KEYS[2], unpack(stale)) end
end

local seen_here = 0
if visited[mdig] then seen_here = 1 end
local vec = spack(VFMT, t, cents, located, lat, lon, c1h, s1h, x1h, c1d, s1d, x1d,
  c7d, s7d, x7d, c30d, s30d, x30d, q30d, dm1d, dm7d, dm30d, seen_here, prev_ts,
  out_loc_ts, out_lat, out_lon, first, fraud)
if mode ~= 0 then return 'P' .. vec end

-- Insert after the records that sort before (t, cents, digest), so equal records are
-- interchangeable and any arrival order gives the same bytes.
local ins = p
while ins < n do
  local o, c, m = sunpack(RFMT, state, HDR + ins * REC + 1)
  if o == toff and (c < cents or (c == cents and m < mdig)) then ins = ins + 1 else break end
end
local nn = math.max(newest, t)
local lower = nn - retention
-- k = records dropped from the front of (old records + the new one): too old, then over cap
local k = 0
while k < ins and base + off(k + 1) < lower do k = k + 1 end
k = math.max(k, n + 1 - cap)

local body
local nb = base
if nn - base <= MAXOFF then
  local rec = spack(RFMT, toff, cents, mdig)
  if k <= ins then
    body = state:sub(HDR + k * REC + 1, HDR + ins * REC) .. rec .. state:sub(HDR + ins * REC + 1)
  else
    body = state:sub(HDR + (k - 1) * REC + 1)
  end
else
  -- offsets would overflow 32 bits: re-encode the kept records against a later base
  nb = nn - retention - DAY
  local parts = {}
  for j = k + 1, n + 1 do
    if j == ins + 1 then
      parts[#parts + 1] = spack(RFMT, t - nb, cents, mdig)
    else
      local src = j
      if j > ins + 1 then src = j - 1 end
      local o, c, m = sunpack(RFMT, state, HDR + (src - 1) * REC + 1)
      parts[#parts + 1] = spack(RFMT, base + o - nb, c, m)
    end
  end
  body = table.concat(parts)
end

if first < 0 or t < first then first = t end
if located == 1 and (loc_ts < 0 or t > loc_ts or (t == loc_ts and
    (lat > loc_lat or (lat == loc_lat and lon > loc_lon)))) then
  loc_ts, loc_lat, loc_lon = t, lat, lon
end
redis.call('SET', KEYS[1], spack(HFMT, 1, nb, first, loc_ts, loc_lat, loc_lon) .. body)
if ttl > 0 then redis.call('SET', KEYS[3], digest .. vec, 'EX', ttl) end
return 'F' .. vec
