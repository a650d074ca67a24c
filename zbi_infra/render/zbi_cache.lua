-- zBI access gateway, Lua engine: the cache of answers about final blocks (history.cache), as gateway_cache.js does
-- it for the njs engine (docs/history-cache.md). zbi_gateway.lua hands it single calls the caller may make; it
-- answers them from nginx's proxy cache (a volume) when the answer can never change, and otherwise says "not mine"
-- so the call is forwarded as usual.
--
-- Zebra v6.3.0 finalizes a block FINAL_DEPTH (1000) below its tip. An answer is stored only when it is about final
-- data, was a success, and came from a call in canonical form; `confirmations` (of the block and of each of its
-- transactions) is stored as a placeholder and computed again at serving time from the tip the gateway learned at
-- most TIP_SECONDS ago. serve() learns the tip, sets the key, the tip and the caller's id in variables and hands the
-- request to the location @zbi_history, whose proxy cache answers from the volume, streamed, with sub_filter writing
-- the id and confirmations() into the placeholders. A miss goes to this nginx's loopback filler (fill() below),
-- which asks the node, decides finality from the node's own answer, and marks an answer that must not be kept with
-- X-Accel-Expires: 0. The filler answers 555 when the call is not its to answer; nginx then forwards the caller's
-- own call to the node, as if there were no cache.
local cjson = require "cjson.safe"
local text = require "zbi_json_text"
local splice = require "zbi_splice"
local rate = require "zbi_rate"

local byte, find, lower, match, sub = string.byte, string.find, string.lower, string.match, string.sub
local floor = math.floor
local ngx_var = ngx.var

local ENABLED = __ENABLED__
local FINAL_DEPTH = __FINAL_DEPTH__
local MAX_ANSWER = __MAX_ANSWER__
-- What the filler reads of the node's answer at most: a little above what it stores, so an answer just over the
-- bound still passes (unstored) without a second call.
local MAX_READ = MAX_ANSWER + 64 * 1024
local HISTORY = "@zbi_history"
local FILL_PORT = __FILL_PORT__
local TIP_REQUEST = "GET /_zbi_tip HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
local NOT_MINE = 555
local NODE_DOWN = 556
local ID = "@zbi:id@"
local CONFIRMATIONS = "@zbi:confirmations@"
local TIP_MAX_AGE = __TIP_MAX_AGE__
local POOLS = {sapling = true, orchard = true, ironwood = true}
-- Request headers that would make nginx answer a cached response with 304 or 412 (or a part of it).
local CONDITIONAL = {"if_match", "if_none_match", "if_modified_since", "if_unmodified_since", "if_range", "range"}

-- JavaScript's falsy JSON values (gateway_cache.js tests `!error`): absent, null, false, 0 and "".
local function falsy(v)
    return v == nil or v == cjson.null or v == false or v == 0 or v == ""
end

local function is_count(v, max)
    return type(v) == "number" and floor(v) == v and v >= 0 and v <= max
end

-- A block's or transaction's hash: 64 hex digits, in either case.
local function is_hash(v)
    return type(v) == "string" and #v == 64 and not find(v, "[^0-9a-fA-F]")
end

-- A hash-or-height argument: {text, height (nil for a hash)}, or nil when not canonical.
local function reference(v)
    if type(v) ~= "string" then
        return nil
    end
    if is_hash(v) then
        return {text = lower(v)}
    end
    -- A height as zebra-state parses it, in one spelling only: other spellings pass uncached.
    if (v == "0" or match(v, "^[1-9]%d*$")) and #v <= 10 and tonumber(v) <= 0xffffffff then
        return {text = v, height = tonumber(v)}
    end
    return nil
end

local function one_of(v, ...)
    for i = 1, select("#", ...) do
        if v == select(i, ...) then
            return true
        end
    end
    return false
end

-- A cached method's reader of its positional params (nil: not cached), which gives their canonical arguments (nil:
-- not cacheable as asked) with the node's defaults filled in (zebra-rpc methods.rs at v6.3.0). `settled` says from
-- the node's answer whether it is about final blocks only (the two z_ chain queries).
local READERS = {
    getblock = function(p)
        local ref = reference(p[1])
        local verbosity = 1
        if #p > 1 then
            verbosity = p[2]
        end
        if not ref or #p > 2 or not one_of(verbosity, 0, 1, 2) or type(verbosity) ~= "number" then
            return nil
        end
        return {args = {ref.text, verbosity}, height = ref.height, verbose = verbosity > 0}
    end,
    getblockheader = function(p)
        local ref = reference(p[1])
        local verbose = true
        if #p > 1 then
            verbose = p[2]
        end
        if not ref or #p > 2 or type(verbose) ~= "boolean" then
            return nil
        end
        return {args = {ref.text, verbose}, height = ref.height, verbose = verbose}
    end,
    getblockhash = function(p)
        if #p ~= 1 or not is_count(p[1], 0x7fffffff) then
            return nil
        end
        return {args = {p[1]}, height = p[1], verbose = false}
    end,
    getrawtransaction = function(p)
        local verbose = 0
        if #p > 1 then
            verbose = p[2]
        end
        if not is_hash(p[1]) or #p > 2 or type(verbose) ~= "number" or not one_of(verbose, 0, 1) then
            return nil
        end
        return {args = {lower(p[1]), verbose}, verbose = verbose == 1}
    end,
    z_gettreestate = function(p)
        local ref = reference(p[1])
        if not ref or #p ~= 1 then
            return nil
        end
        return {args = {ref.text}, height = ref.height, verbose = false, settled = function(result, tip)
            local height = result.height
            local same = ref.height == nil and result.hash == ref.text or ref.height ~= nil and height == ref.height
            return is_count(height, 0xffffffff) and tip - height >= FINAL_DEPTH and same and height or nil
        end}
    end,
    -- Only with a limit, and only when that many subtrees came back, each ending in a final block.
    z_getsubtreesbyindex = function(p)
        if #p ~= 3 or not POOLS[p[1]] or not is_count(p[2], 0xffff) or not is_count(p[3], 0xffff) or p[3] < 1 then
            return nil
        end
        return {args = {p[1], p[2], p[3]}, verbose = false, settled = function(result, tip)
            local subtrees = result.subtrees
            if result.pool ~= p[1] or result.start_index ~= p[2] or type(subtrees) ~= "table" or #subtrees ~= p[3] then
                return nil
            end
            for i = 1, #subtrees do
                local t = subtrees[i]
                if type(t) ~= "table" or not is_count(t.end_height, 0xffffffff) or tip - t.end_height < FINAL_DEPTH then
                    return nil
                end
            end
            return subtrees[#subtrees].end_height
        end}
    end,
}

local function argument_text(a)
    if type(a) == "number" then
        return string.format("%d", a)
    end
    return tostring(a)
end

-- The canonical form of a call: {path, height, verbose} or nil. `params`: its params as decoded, or nil when the
-- call has none (or null); `params_array`: whether its text is an array.
local function canonical(call, params, params_array)
    local reader = READERS[call.method]
    local version = call.jsonrpc
    if version == nil then
        version = "none"
    elseif version ~= "1.0" and version ~= "2.0" then
        return nil
    end
    if not reader or (params ~= nil and not params_array) then
        return nil
    end
    local found = reader(params or {})
    if not found then
        return nil
    end
    local path = {version, call.method}
    for i = 1, #found.args do
        path[#path + 1] = argument_text(found.args[i])
    end
    return {path = table.concat(path, "/"), height = found.height, verbose = found.verbose}
end

-- True when the gateway should hand this allowed single call to serve().
local function serves(method)
    return ENABLED and READERS[method] ~= nil
end

-- The tip this gateway learned at most TIP_MAX_AGE ago (the filler's micro-cache of the node's getblockcount,
-- asked over a cosocket: no subrequest, which lua-nginx-module refuses in an HTTP/2 request), or nil.
local function tip_height()
    local status, body, headers = splice.exchange(FILL_PORT, TIP_REQUEST, 4096)
    if status ~= 200 then
        return nil
    end
    local age = ngx.now() - (tonumber(headers["x-zbi-tip-at"]) or 0)
    local parsed = age <= TIP_MAX_AGE and text.decode(body) or nil
    local tip = type(parsed) == "table" and parsed.result or nil
    return is_count(tip, 0xffffffff) and tip or nil
end

local function plain_id(raw)
    if raw == "0" or match(raw, "^[1-9]%d*$") then
        return #raw < 20 or (#raw == 20 and raw <= "18446744073709551615")
    end
    return byte(raw, 1) == 34 and byte(raw, #raw) == 34 and #raw >= 2 and not find(sub(raw, 2, -2), '["\\]')
end

local function plain_param(value)
    return value == "0" or match(value, "^[1-9]%d*$") or value == "true" or value == "false" or
        (#value >= 2 and byte(value, 1) == 34 and byte(value, #value) == 34 and not find(sub(value, 2, -2), '["\\]'))
end

-- True when the call's id and params are written as the node would read the canonical call it sends (plain digits,
-- true or false, strings without escapes; an id the node echoes as written: a string or a u64).
local function plainly_written(body, params, raw_id)
    if not plain_id(raw_id) then
        return false
    end
    if params == nil or text.text_of(body, params) == "null" then
        return true
    end
    if byte(body, params[1]) ~= 91 then
        return false
    end
    local elements = text.elements(body, params[1])
    for i = 1, #elements do
        if not plain_param(text.text_of(body, elements[i])) then
            return false
        end
    end
    return true
end

-- Hands the call to the cache (ngx.exec: nothing returns), or returns false: the caller forwards it as usual.
-- `call` as decoded; `raw_id` the caller's id as text (nil for a notification); `params` its params' span in body.
local function serve(call, raw_id, body, params)
    ngx_var.zbi_cache = "pass"
    if raw_id == nil then
        return false
    end
    local decoded = call.params
    if decoded == cjson.null then
        decoded = nil
    end
    local key = canonical(call, decoded, params ~= nil and byte(body, params[1]) == 91)
    if not key or not plainly_written(body, params, raw_id) then
        return false
    end
    for i = 1, #CONDITIONAL do
        if ngx_var["http_" .. CONDITIONAL[i]] ~= nil then
            return false
        end
    end
    local tip = tip_height()
    if tip == nil or (key.height ~= nil and tip - key.height < FINAL_DEPTH) then
        return false
    end
    -- nginx.conf's map turns "lookup" into hit, miss (stored now) or pass from the proxy cache's own status.
    ngx_var.zbi_cache = "lookup"
    ngx_var.zbi_cache_key = "/" .. key.path
    ngx_var.zbi_cache_tip = tostring(tip)
    ngx_var.zbi_cache_id = raw_id
    return ngx.exec(HISTORY)
end

-- header_filter_by_lua of @zbi_history: $zbi_confirmations, read by sub_filter as a stored answer streams out, the
-- depth + 1 of the block it is about at the tip serve() learned (never below 1).
local function confirmations()
    local height = tonumber(ngx_var.upstream_http_x_zbi_height)
    local tip = tonumber(ngx_var.zbi_cache_tip)
    ngx_var.zbi_confirmations = is_count(height, 0xffffffff) and is_count(tip, 0xffffffff) and
        string.format("%d", math.max(1, tip - height + 1)) or CONFIRMATIONS
end

-- --- The filler: the proxy cache's upstream, on a loopback server of this nginx ---

-- Replaces the given spans of `s` (non-overlapping) with `by`, in one pass.
local function replace_spans(s, spans, by)
    table.sort(spans, function(a, b) return a[1] < b[1] end)
    local pieces, from = {}, 1
    for i = 1, #spans do
        pieces[#pieces + 1] = sub(s, from, spans[i][1] - 1)
        pieces[#pieces + 1] = by
        from = spans[i][2]
    end
    pieces[#pieces + 1] = sub(s, from)
    return table.concat(pieces)
end

-- The node asked `method` with `args` (through the loopback relay, reading MAX_READ at most): {status, text,
-- parsed}, or nil when unread (the node unreachable, or an answer above MAX_READ).
local function ask(version, method, args)
    local params = {}
    for i = 1, #args do
        local a = args[i]
        params[i] = type(a) == "string" and cjson.encode(a) or argument_text(a)
    end
    local body = '{"id":"zbi-cache","method":' .. cjson.encode(method) .. ',"params":[' .. table.concat(params, ",") ..
        "]" .. (version ~= "none" and ',"jsonrpc":' .. cjson.encode(version) or "") .. "}"
    local status, answer = splice.relay("/", body, MAX_READ)
    if not status then
        return nil
    end
    local parsed = text.decode(answer)
    -- `null` is no answer, as gateway_cache.js reads it.
    return {status = status, text = answer, parsed = parsed ~= cjson.null and parsed or nil}
end

-- Is what the node said about a block or transaction final? Its own `confirmations` (depth + 1) says so.
local function final_by_confirmations(result)
    return type(result) == "table" and is_count(result.height, 0xffffffff) and
        is_count(result.confirmations, 0xffffffff) and result.confirmations >= FINAL_DEPTH + 1
end

local function reply(status, body, stored, height)
    ngx.header["X-Zbi-Stored"] = stored and "1" or "0"
    ngx.header["X-Zbi-Height"] = string.format("%d", height or -1)
    if not stored then
        ngx.header["X-Accel-Expires"] = "0"
    end
    return text.reply(status, body)
end

-- One more call to the node charged to the caller's rate (the rate key and bucket the front sent; only the front
-- holds the node's credentials, which fill() checked).
local function charged()
    return rate.take(ngx_var.http_x_zbi_rate_key, ngx_var.http_x_zbi_bucket, 1)
end

local NUMERIC = {
    getblock = function(i) return i == 2 end,
    getrawtransaction = function(i) return i == 2 end,
    getblockhash = function() return true end,
    z_getsubtreesbyindex = function(i) return i > 1 end,
}

-- The spans of `confirmations` in a final verbose answer: the block's (or transaction's), and each transaction
-- object's in a verbosity-2 block; nil when one is missing.
local function confirmation_spans(answer, start, method, verbosity)
    local fields = text.members(answer, text.members(answer, start).result[1])
    local spans = {fields.confirmations}
    if not fields.confirmations then
        return nil
    end
    if method == "getblock" and verbosity == 2 and fields.tx then
        local transactions = text.elements(answer, fields.tx[1])
        for i = 1, #transactions do
            local span = transactions[i]
            local found = byte(answer, span[1]) == 123 and text.members(answer, span[1]).confirmations
            if found then
                spans[#spans + 1] = found
            end
        end
    end
    return spans
end

-- The filler's work for /<version>/<method>/<args...>?tip=N, reached only through the cache location.
local function fill_from()
    local parts = {}
    for part in string.gmatch(ngx_var.uri, "[^/]+") do
        parts[#parts + 1] = ngx.unescape_uri(part)
    end
    local version, method = parts[1], parts[2]
    local tip = tonumber(ngx_var.arg_tip)
    local args = {}
    for i = 3, #parts do
        local a, index = parts[i], i - 2
        if method == "getblockheader" and index == 2 then
            args[index] = a == "true"
        elseif NUMERIC[method] and NUMERIC[method](index) then
            args[index] = tonumber(a)
        else
            args[index] = a
        end
    end
    local reader = READERS[method]
    local shape = reader and reader(args)
    if not shape or not is_count(tip, 0xffffffff) then
        return text.reply(400, "")
    end
    -- Non-verbose answers carry no height: the verbose form of the same call tells whether it is final, one more
    -- node call charged to the caller (without room, the answer passes unstored).
    local height = shape.height
    local final = height ~= nil and tip - height >= FINAL_DEPTH
    local by_hash = not shape.verbose and height == nil and
        (method == "getblock" or method == "getblockheader" or method == "getrawtransaction")
    if by_hash and charged() then
        local probe = method == "getrawtransaction" and ask(version, method, {args[1], 1}) or
            ask(version, "getblockheader", {args[1], true})
        local parsed = probe and probe.parsed
        local result = type(parsed) == "table" and falsy(parsed.error) and parsed.result or nil
        final = final_by_confirmations(result)
        height = final and result.height or nil
    end
    local answer = ask(version, method, args)
    -- The node down or not answering JSON: as any call the node cannot answer.
    if answer ~= nil and answer.parsed == nil and (answer.status == 502 or answer.status == 504) then
        return text.reply(NODE_DOWN, "")
    end
    -- Unread here (above MAX_READ, or not JSON): the front asks the node again, one more call charged.
    if answer == nil or answer.parsed == nil then
        return text.reply(charged() and NOT_MINE or 429, "")
    end
    local body = answer.text
    local start = text.skip_space(body, 1)
    local id = byte(body, start) == 123 and text.members(body, start).id
    -- Not an answer to one call, or one holding a placeholder's text (sub_filter matches regardless of case).
    if not id or find(body, "@[zZ][bB][iI]:") then
        return text.reply(NOT_MINE, "")
    end
    local parsed = answer.parsed
    local result = type(parsed) == "table" and parsed.result
    local okay = answer.status == 200 and falsy(parsed.error) and result ~= nil and
        result ~= cjson.null and #body <= MAX_ANSWER
    if okay and shape.verbose then
        final = final_by_confirmations(result) and (shape.height == nil or result.height == shape.height)
        height = final and result.height or nil
    end
    if okay and shape.settled then
        height = type(result) == "table" and shape.settled(result, tip) or nil
        final = height ~= nil
    end
    local spans = {}
    if okay and shape.verbose and final then
        spans = confirmation_spans(body, start, method, shape.args[2])
    end
    local stored = okay and final and spans ~= nil
    if stored and #spans > 0 then
        body = replace_spans(body, spans, CONFIRMATIONS)
    end
    body = replace_spans(body, {id}, ID)
    return reply(answer.status, body, stored, stored and height or nil)
end

-- content_by_lua of the filler: only a caller holding the node's credentials; any failure is "not mine".
local function fill()
    if ngx_var.http_authorization ~= splice.node_authorization() then
        return text.reply(403, "")
    end
    local ok = pcall(fill_from)
    if not ok then
        return text.reply(NOT_MINE, "")
    end
end

return {serves = serves, serve = serve, confirmations = confirmations, fill = fill}
