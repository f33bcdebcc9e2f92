-- One atomic step on ONE card; semantics in features/README.md.
-- Dedup marker -> point-in-time read of the windows [t - W, t) -> insert -> trim.
-- KEYS: 1 state (packed string), 2 fraud labels (hash: transaction id -> event ms),
--       3 dedup marker of this transaction (string, wall-clock TTL)
-- ARGV[1]: '<BddI4Bi4i4ddI4I4' = mode (0 score, 1 peek: read only), event ms, cents,
--       merchant digest, located (0/1), latitude and longitude in micro-degrees,
--       lateness ms, retention ms, max records, marker TTL s (0: none); then the 8-byte
--       payload digest. ARGV[2] (optional): state lifetime in ms, renewed by every update
--       of the state and fraud keys (absent or 0: none).
-- Returns 'F' .. vector (fresh), 'D' .. digest .. vector (duplicate: the stored marker),
-- 'L' .. newest event ms as '<d' (late), 'P' .. vector (peek). The vector is 28 doubles
-- in the order of features.windows.CardAggregates.
--
-- State version 2 (little-endian): header '<Bdddi4i4' = version, base ms, first-seen ms,
-- newest located event ms (-1: none), its latitude and longitude; then the windows as of
-- the newest record R: for W = 1h, 1d, 7d, 30d '<I4I6I4' = records with time >= R - W
-- (they are the first ones), their cents and largest cents; then '<I4I4I4d' = distinct
-- merchants of those of 1d, 7d, 30d and the 30d sum of squared cents (-1: not exact below
-- 2^53); then 12-byte records '<I4I4I4' = ms offset from base, cents, merchant digest,
-- sorted NEWEST FIRST (descending by offset, cents, digest).
--
-- Why the window header: an event newer than every record (the usual case) only moves
-- each window's lower edge over the records that leave it (a few per event) instead of
-- scanning the last 30 days. Other events (out of order, same millisecond, peeks into the
-- past) scan for their own windows as version 1 did, then add themselves to the header;
-- it is recomputed from the records only when a cap cuts into the windows or the squares
-- are not exact. A version 1 state (records oldest first, no window header) is converted
-- on first use.
local HDR, REC, HDR1 = 109, 12, 33
local HFMT = '<Bdddi4i4I4I6I4I4I6I4I4I6I4I4I6I4I4I4I4d'
local RFMT, TFMT = '<I4I4I4', '<I4'
local VFMT = '<dddddddddddddddddddddddddddd'
local HOUR, DAY = 3600000, 86400000
local WIDTH = {HOUR, DAY, 7 * DAY, 30 * DAY}
local MAXOFF = 4294967295
local EXACT = 9007199254740992 -- 2^53: sums of squares below it are exact in any order
local sunpack, spack, sfind = struct.unpack, struct.pack, string.find

local mode, t, cents, mdig, located, lat, lon, lateness, retention, cap, ttl, apos =
  sunpack('<BddI4Bi4i4ddI4I4', ARGV[1])

if mode == 0 then
  local stored = redis.call('GET', KEYS[3])
  if stored then return 'D' .. stored end
end

-- Records are read in place: record i of `recs` starts after byte at + (i - 1) * REC (at is
-- the header size in the stored string, 0 in a list built here). Lua strings are
-- immutable and each new one costs an allocation and GC work, so the usual event builds a
-- single new string, the one it stores.
local function off(recs, at, i) return (sunpack(TFMT, recs, at + (i - 1) * REC + 1)) end

-- index of the newest record of merchant m (0: none): string.find from the front finds the
-- newest occurrence; matches that are not on a digest field are skipped
local function newest_of(recs, at, m)
  local pattern, from = spack(TFMT, m), at + 9
  while true do
    local pos = sfind(recs, pattern, from, true)
    if not pos then return 0 end
    if (pos - at - 9) % REC == 0 then return (pos - at - 9) / REC + 1 end
    from = pos + 1
  end
end

-- Windows [ref - W, ref) over the records from index i on (all before ref), scanned newest
-- first, one band per window: cumulative counts, cents, max, the band-ordered squares sum,
-- distinct merchants (1d, 7d, 30d) and the merchants seen.
local function scan(recs, at, n, i, ref)
  local N, S, X, D = {}, {}, {}, {}
  local visited, cnt, sum, top, sq, dm = {}, 0, 0, 0, 0, 0
  local pos = at + (i - 1) * REC + 1
  for w = 1, 4 do
    local limit, band = ref - WIDTH[w], 0
    while i <= n do
      local o, c, m = sunpack(RFMT, recs, pos)
      if o < limit then break end
      cnt, sum, band = cnt + 1, sum + c, band + c * c
      if c > top then top = c end
      if not visited[m] then
        visited[m] = true
        dm = dm + 1
      end
      i, pos = i + 1, pos + REC
    end
    N[w], S[w], X[w], D[w], sq = cnt, sum, top, dm, sq + band
  end
  return N, S, X, D, sq, visited
end

local state = redis.call('GET', KEYS[1])
local base, first, loc_ts, loc_lat, loc_lon = t - retention - DAY, -1, -1, 0, 0
local N, S, X, D, q = {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, 0
local recs, at, n = '', 0, 0
if state then
  local version = sunpack('<B', state)
  if version == 2 then
    local _
    _, base, first, loc_ts, loc_lat, loc_lon, N[1], S[1], X[1], N[2], S[2], X[2],
      N[3], S[3], X[3], N[4], S[4], X[4], D[2], D[3], D[4], q = sunpack(HFMT, state)
    recs, at, n = state, HDR, (#state - HDR) / REC
  elseif version == 1 then
    local _
    _, base, first, loc_ts, loc_lat, loc_lon = sunpack('<Bdddi4i4', state)
    n = (#state - HDR1) / REC
    local parts = {}
    for j = n, 1, -1 do parts[#parts + 1] = state:sub(HDR1 + (j - 1) * REC + 1, HDR1 + j * REC) end
    recs, q = table.concat(parts), -1 -- q = -1: the window header is recomputed below
  else
    return redis.error_reply('card state version ' .. version .. ' unknown: rebuild features')
  end
end

local newest = -1
if n > 0 then newest = base + off(recs, at, 1) end
if mode == 0 and n > 0 and t < newest - lateness then return 'L' .. spack('<d', newest) end

local toff = t - base
local vec_n, vec_s, vec_x, vec_d, vec_q, seen_here, prev_ts
local here = 0 -- index of this merchant's newest record (fast path)
local fast = t > newest and q >= 0
if fast then
  -- every record is before t: move each window's lower edge from R - W to t - W
  here = newest_of(recs, at, mdig)
  for w = 1, 4 do
    local limit, k, dirty = toff - WIDTH[w], N[w], false
    while k >= 1 and off(recs, at, k) < limit do
      local _, c, m = sunpack(RFMT, recs, at + (k - 1) * REC + 1)
      S[w] = S[w] - c
      if c == X[w] then dirty = true end
      if w == 4 then q = q - c * c end
      if w > 1 and newest_of(recs, at, m) == k then D[w] = D[w] - 1 end
      k = k - 1
    end
    if dirty then -- the largest left: the max of the narrower window and this band
      local top, from = 0, 1
      if w > 1 then top, from = X[w - 1], N[w - 1] + 1 end
      for j = from, k do
        local _, c = sunpack(RFMT, recs, at + (j - 1) * REC + 1)
        if c > top then top = c end
      end
      X[w] = top
    end
    N[w] = k
  end
  vec_n, vec_s, vec_x, vec_d, vec_q = N, S, X, D, q
  seen_here = (here > 0 and here <= N[4]) and 1 or 0
  prev_ts = newest
else
  -- first record strictly before t (records are sorted newest first)
  local lo, hi = 1, n + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if off(recs, at, mid) >= toff then lo = mid + 1 else hi = mid end
  end
  local visited
  vec_n, vec_s, vec_x, vec_d, vec_q, visited = scan(recs, at, n, lo, toff)
  seen_here = visited[mdig] and 1 or 0
  prev_ts = -1
  if lo <= n then prev_ts = base + off(recs, at, lo) end
end

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

local vec = spack(VFMT, t, cents, located, lat, lon,
  vec_n[1], vec_s[1], vec_x[1], vec_n[2], vec_s[2], vec_x[2],
  vec_n[3], vec_s[3], vec_x[3], vec_n[4], vec_s[4], vec_x[4], vec_q,
  vec_d[2], vec_d[3], vec_d[4], seen_here, prev_ts, out_loc_ts, out_lat, out_lon, first, fraud)
if mode ~= 0 then return 'P' .. vec end

local nn = math.max(newest, t)
-- records behind the retention are in no window: they go first (the new one never does)
local keep = n
while keep > 0 and base + off(recs, at, keep) < nn - retention do keep = keep - 1 end
if nn - base > MAXOFF then
  -- offsets would overflow 32 bits: re-encode the kept records against a later base
  local nb, parts = nn - retention - DAY, {}
  for j = 1, keep do
    local o, c, m = sunpack(RFMT, recs, at + (j - 1) * REC + 1)
    parts[j] = spack(RFMT, base + o - nb, c, m)
  end
  recs, at, base, toff = table.concat(parts), 0, nb, t - nb
end
local rec = spack(RFMT, toff, cents, mdig)
local list -- the new record list when it had to be built apart (else: rec, then the kept)
local rescan = false -- whether the window header must be recomputed from the new list
if fast then
  -- the new record is the newest: it enters every window; the cap keeps the newest
  for w = 1, 4 do
    if here == 0 or here > N[w] then D[w] = D[w] + 1 end
    N[w], S[w] = N[w] + 1, S[w] + cents
    if cents > X[w] then X[w] = cents end
  end
  q = q + cents * cents
  if q >= EXACT then q = -1 end
  keep = math.min(keep, cap - 1)
  if N[4] > keep + 1 then
    list, rescan = rec .. recs:sub(at + 1, at + keep * REC), true
  end
else
  -- after the records that sort above (t, cents, digest); equal records are identical, so
  -- any arrival order gives the same bytes
  local ins = 0
  while ins < keep do
    local o, c, m = sunpack(RFMT, recs, at + ins * REC + 1)
    if o > toff or (o == toff and (c > cents or (c == cents and m > mdig))) then
      ins = ins + 1
    else
      break
    end
  end
  list = recs:sub(at + 1, at + ins * REC) .. rec .. recs:sub(at + ins * REC + 1, at + keep * REC)
  local total = math.min(keep + 1, cap)
  if total <= keep then list = list:sub(1, total * REC) end -- the oldest go
  if q >= 0 and t <= newest then
    -- the newest record stays: the new one joins the windows [newest - W, ...) it falls in
    local j = newest_of(recs, at, mdig)
    for w = 1, 4 do
      if t >= newest - WIDTH[w] then
        if j == 0 or j > N[w] then D[w] = D[w] + 1 end
        N[w], S[w] = N[w] + 1, S[w] + cents
        if cents > X[w] then X[w] = cents end
      end
    end
    if t >= newest - WIDTH[4] then q = q + cents * cents end
    rescan = N[4] > total or q >= EXACT -- a cap cut into the windows, or inexact squares
  else
    rescan = true -- a version 1 state, or squares not exact: from scratch
  end
end
if rescan then
  -- windows as of the newest record, from scratch
  N, S, X, D, q = scan(list, 0, #list / REC, 1, nn - base)
  if q >= EXACT then q = -1 end
end

if first < 0 or t < first then first = t end
if located == 1 and (loc_ts < 0 or t > loc_ts or (t == loc_ts and
    (lat > loc_lat or (lat == loc_lat and lon > loc_lon)))) then
  loc_ts, loc_lat, loc_lon = t, lat, lon
end
local header = spack(HFMT, 2, base, first, loc_ts, loc_lat, loc_lon,
  N[1], S[1], X[1], N[2], S[2], X[2], N[3], S[3], X[3], N[4], S[4], X[4],
  D[2], D[3], D[4], q)
if list then
  redis.call('SET', KEYS[1], header .. list)
else
  redis.call('SET', KEYS[1], header .. rec .. recs:sub(at + 1, at + keep * REC))
end
if ttl > 0 then redis.call('SET', KEYS[3], ARGV[1]:sub(apos) .. vec, 'EX', ttl) end
local life = tonumber(ARGV[2] or '') or 0
if life > 0 then
  redis.call('PEXPIRE', KEYS[1], life)
  redis.call('PEXPIRE', KEYS[2], life)
end
return 'F' .. vec
