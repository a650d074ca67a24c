-- zBI access gateway, Lua engine: the callers' rate buckets, each in a shared dictionary of its own all workers use
-- (nginx.conf's `lua_shared_dict zbi_rate_<bucket>`, as each of njs's buckets is a zone of its own: a full one
-- forgets only its own keys, so callers of one bucket, anonymous ones from many addresses say, cannot push another
-- bucket's entries out), by nginx's own rule for `limit_req ... nodelay` (ngx_http_limit_req_lookup in nginx
-- 1.22's ngx_http_limit_req_module.c), which the njs engine's nginx.conf still applies with limit_req zones:
--
--   ms = now - last (milliseconds of ngx_current_msec, nginx's monotonic clock)
--   excess = max(0, excess - rate * ms + 1000)      (thousandths of a call, rate in calls a second)
--   refused when excess > burst * 1000 (nothing stored); else excess and last are stored
--
-- and a key seen for the first time starts at excess 0. So a key may take burst + 1 calls at once, then `rate` a
-- second; refused calls do not count.
--
-- Why one number per key: a shared dictionary's operations are each atomic, but a read, then a write is not, and
-- set_by_lua cannot yield, so no lock can be waited for. Writing T = excess + rate * last, the rule becomes
-- excess = max(0, T - rate * now + 1000) and T' = max(T + 1000, rate * now) (GCRA, with nginx's offset of one
-- call): while the bucket has not drained, a call is one atomic `incr` of 1000. A drained bucket (whose next call
-- would start from excess 0, as a new key does) has no entry: each entry expires when its bucket drains, and `incr`
-- of an absent or expired key starts it from excess 0 atomically too; each call then sets the entry's new expiry.
-- Where this differs from nginx (each bounded, see docs/gateway-limits.md and tests/test_lua_rate_rule.py):
--   * a worker whose clock reading is behind the last call's (another worker's, a few milliseconds) counts the
--     difference as not yet drained (nginx counts no time), so near its limit a call may be refused that nginx would
--     have passed; what is stored is the same as nginx's.
--   * a refused call adds 1000, then takes it back: a call of another worker in between sees it.
--   * each call writes its entry's expiry after its incr: a worker held between the two (the kernel preempting it
--     for that long) while another worker takes calls writes the shorter expiry last, and the entry goes early, the
--     other worker's calls forgiven (a review, holding a worker there with gdb: a burst of 6 passed again 3 s
--     later, where nginx passes 3). An expiry long enough never to come out short would leave drained entries
--     found stale by two workers at once, which both bring up to `now`: too full by the whole stale time, a
--     caller refused for as long (worse, and not rare). The rare way is kept.
--   * an entry outlives its bucket's draining by its expiry's margin (a millisecond, and a worker's clock lag): a
--     call then finds its bucket behind `now` and brings it up; two workers doing so at once may leave it a few
--     milliseconds' drain too full.
--   * when the dictionary is full the least recently used keys are forgotten (nginx forgets the oldest only at
--     need too, and refuses a call it finds no room for, as here).
local ffi = require "ffi"

local C = ffi.C
local floor, ceil, tonumber = math.floor, math.ceil, tonumber

ffi.cdef [[
extern volatile uintptr_t ngx_current_msec;
]]

local CALL = 1000
-- Past its bucket's draining an entry is kept this much longer: its expiry is on nginx's wall clock, cached with
-- ngx_current_msec but truncated to milliseconds apart, so it may fall a millisecond early.
local EXPIRY_MARGIN_MS = 1

local DICTIONARY_PREFIX = "zbi_rate_"
-- name -> {name, rate (calls a second), burst (thousandths of a call), dict}; the strictest counts unknown names.
local buckets, strictest = {}, nil

-- nginx.conf's buckets (init_by_lua, before the workers start): name -> {requests per second, burst}. A user table
-- newer than nginx.conf may name a bucket unknown here: its caller is counted in the strictest, never in none.
local function configure(limits, strictest_name)
    for name, limit in pairs(limits) do
        buckets[name] = {name = name, rate = limit[1], burst = limit[2] * CALL,
            dict = ngx.shared[DICTIONARY_PREFIX .. name]}
    end
    strictest = buckets[strictest_name]
end

-- The dictionary takes an expiry in seconds and stores it in whole milliseconds (truncating): half a millisecond
-- more keeps the product from falling just below the integer.
local function seconds(milliseconds)
    return (milliseconds + 0.5) / 1000
end

-- Takes `count` calls from `rate_key`'s bucket named `bucket_name`, as that many calls in a row would: true when
-- all had room. Those that had room stay counted when a later one has none (a batch is refused at its first call
-- over the limit, as the njs engine's meter refuses it). An empty rate key is counted in no bucket.
local function take(rate_key, bucket_name, count)
    if count <= 0 or rate_key == nil or rate_key == "" then
        return true
    end
    local bucket = buckets[bucket_name] or strictest
    -- The bucket's own dictionary: the rate key alone names the caller in it.
    local rate, burst, dict = bucket.rate, bucket.burst, bucket.dict
    local now = rate * tonumber(C.ngx_current_msec)
    local charged = count * CALL
    local total = dict:incr(rate_key, charged, now - CALL, seconds(ceil(CALL / rate) + EXPIRY_MARGIN_MS))
    if total == nil then
        -- No room even after forgetting the least recently used keys: refused, as nginx refuses a call it could not
        -- allocate a node for.
        return false
    end
    -- nginx's excess after the first of these calls, before its floor at 0 (0 for a new or expired key).
    local first = total - charged + CALL - now
    local behind = 0
    if first < 0 then
        behind, first = -first, 0
    end
    local taken = count
    if first + (count - 1) * CALL > burst then
        taken = first > burst and 0 or floor((burst - first) / CALL) + 1
    end
    local correction = behind - (count - taken) * CALL
    if correction ~= 0 then
        dict:incr(rate_key, correction)
    end
    if taken > 0 then
        -- Until the next call would find the bucket drained (its excess back to 0).
        local excess = first + (taken - 1) * CALL
        dict:expire(rate_key, seconds(ceil((excess + CALL) / rate) + EXPIRY_MARGIN_MS))
    end
    return taken == count
end

return {configure = configure, take = take}
