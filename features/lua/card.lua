-- One atomic step on ONE card (DESIGN section 2); semantics in features/README.md.
-- Dedup marker -> point-in-time read of the windows [t - W, t) -> insert -> trim.
-- KEYS: 1 state (packed string), 2 fraud labels (hash: transaction id -> event ms),
--       3 dedup marker of this transaction (string, wall-clock TTL)
-- ARGV: 1 mode ('s' score, 'p' peek: read only), 2 event ms, 3 amount in cents,
--       4 merchant digest, 5 latitude micro-degrees or '', 6 longitude or '',
--       7 lateness ms, 8 retention ms, 9 max records, 10 marker TTL s (0: none),
--       11 payload digest
-- Returns {'fresh'|'duplicate'|'late'|'peek', payload}: the aggregate vector, the stored
-- marker 'digest|vector', or the card's newest event ms.
--
-- State layout (little-endian): header '<Bdddi4i4' = version, base ms, first-seen ms,
-- newest located event ms (-1: none), its latitude and longitude; then 12-byte records
-- '<I4I4I4' = ms offset from base, cents, merchant digest, sorted ascending.
local HDR, REC = 33, 12
local HFMT, RFMT, TFMT = '<Bdddi4i4', '<I4I4I4', '<I4'
local HOUR, DAY = 3600000, 86400000
local MAXOFF = 4294967295
local sunpack, spack = struct.unpack, struct.pack

local mode = ARGV[1]
local t, cents, mdig = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local lat, lon = tonumber(ARGV[5]), tonumber(ARGV[6])
local lateness, retention = tonumber(ARGV[7]), tonumber(ARGV[8])
local cap, ttl, digest = tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11]

if mode == 's' then
  local stored = redis.call('GET', KEYS[3])
  if stored then return {'duplicate', stored} end
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
if mode == 's' and n > 0 and t < newest - lateness then
  return {'late', string.format('%d', newest)}
end

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

-- Scan backwards from the newest record before t; windows close from 1h to 30d.
local l1h, l1d, l7d, l30d = toff - HOUR, toff - DAY, toff - 7 * DAY, toff - 30 * DAY
local c1h, s1h, x1h, c1d, s1d, x1d = 0, 0, 0, 0, 0, 0
local c7d, s7d, x7d, c30d, s30d, x30d = 0, 0, 0, 0, 0, 0
local mean, m2, dm1d, dm7d, dm30d = 0, 0, 0, 0, 0
local visited = {}
local pos = HDR + (p - 1) * REC + 1
for _ = p, 1, -1 do
  local o, c, m = sunpack(RFMT, state, pos)
  if o < l30d then break end
  c30d = c30d + 1
  s30d = s30d + c
  if c > x30d then x30d = c end
  local d = c - mean
  mean = mean + d / c30d
  m2 = m2 + d * (c - mean)
  local new_merchant = not visited[m]
  if new_merchant then
    visited[m] = true
    dm30d = dm30d + 1
  end
  if o >= l7d then
    c7d, s7d = c7d + 1, s7d + c
    if c > x7d then x7d = c end
    if new_merchant then dm7d = dm7d + 1 end
    if o >= l1d then
      c1d, s1d = c1d + 1, s1d + c
      if c > x1d then x1d = c end
      if new_merchant then dm1d = dm1d + 1 end
      if o >= l1h then
        c1h, s1h = c1h + 1, s1h + c
        if c > x1h then x1h = c end
      end
    end
  end
  pos = pos - REC
end

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
  if mode == 's' and #stale > 0 then redis.call('HDEL', KEYS[2], unpack(stale)) end
end

local has_loc = 0
if lat and lon then has_loc = 1 end
local seen_here = 0
if visited[mdig] then seen_here = 1 end
local vec = string.format(
  '%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%.17g,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d',
  t, cents, has_loc, lat or 0, lon or 0, c1h, s1h, x1h, c1d, s1d, x1d, c7d, s7d, x7d,
  c30d, s30d, x30d, m2, dm1d, dm7d, dm30d, seen_here, prev_ts, out_loc_ts, out_lat, out_lon,
  first, fraud)
if mode ~= 's' then return {'peek', vec} end

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
if has_loc == 1 and (loc_ts < 0 or t > loc_ts or (t == loc_ts and
    (lat > loc_lat or (lat == loc_lat and lon > loc_lon)))) then
  loc_ts, loc_lat, loc_lon = t, lat, lon
end
redis.call('SET', KEYS[1], spack(HFMT, 1, nb, first, loc_ts, loc_lat, loc_lon) .. body)
if ttl > 0 then redis.call('SET', KEYS[3], digest .. '|' .. vec, 'EX', ttl) end
return {'fresh', vec}
