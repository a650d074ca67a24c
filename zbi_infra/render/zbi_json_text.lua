-- zBI access gateway, Lua engine (lua-nginx-module: Debian's 0.10.23 in the tests, OpenResty's in the pod): JSON
-- values found as spans of text, as json_text.js finds them for the njs engine, for zbi_gateway.lua and
-- zbi_splice.lua. Each scanning function takes a text already known to be valid JSON (cjson accepted it, or it is
-- the node's answer) and returns spans {first, after} (1-based; `after` is the position past the value), so that a
-- value is forwarded or rewritten as the caller or the node wrote it: numbers are never parsed and printed again.
-- JSON-RPC answers the gateway writes itself are made here too.
local cjson = require "cjson.safe"

local byte, find, sub = string.byte, string.find, string.sub

local function skip_space(s, i)
    while true do
        local c = byte(s, i)
        if c ~= 32 and c ~= 9 and c ~= 10 and c ~= 13 then
            return i
        end
        i = i + 1
    end
end

-- The position after the string whose opening quote is at `i`.
local function string_end(s, i)
    local from = i + 1
    while true do
        local quote = find(s, '"', from, true)
        local slashes = 0
        while byte(s, quote - 1 - slashes) == 92 do
            slashes = slashes + 1
        end
        if slashes % 2 == 0 then
            return quote + 1
        end
        from = quote + 1
    end
end

local function value_end(s, i)
    local c = byte(s, i)
    if c == 34 then
        return string_end(s, i)
    end
    if c == 123 or c == 91 then
        local depth = 0
        while true do
            c = byte(s, i)
            if c == 34 then
                i = string_end(s, i)
            else
                if c == 123 or c == 91 then
                    depth = depth + 1
                elseif c == 125 or c == 93 then
                    depth = depth - 1
                    if depth == 0 then
                        return i + 1
                    end
                end
                i = i + 1
            end
        end
    end
    local length = #s
    while i <= length do
        c = byte(s, i)
        if c == 44 or c == 93 or c == 125 or c == 32 or c == 9 or c == 10 or c == 13 then
            return i
        end
        i = i + 1
    end
    return i
end

-- The elements of the array whose text starts at `start`, as spans.
local function elements(s, start)
    local spans = {}
    local i = skip_space(s, start + 1)
    if byte(s, i) == 93 then
        return spans
    end
    while true do
        i = skip_space(s, i)
        local after = value_end(s, i)
        spans[#spans + 1] = {i, after}
        i = skip_space(s, after)
        if byte(s, i) ~= 44 then
            return spans
        end
        i = i + 1
    end
end

-- The members of the object whose text starts at `start`: a table name -> span (names decoded, as a JSON parser
-- reads them: "\u006dethod" is `method`), and whether a name is given twice.
local function members(s, start)
    local names = {}
    local duplicated = false
    local i = skip_space(s, start + 1)
    while byte(s, i) ~= 125 do
        local key_end = string_end(s, i)
        local name = cjson.decode(sub(s, i, key_end - 1))
        i = skip_space(s, skip_space(s, key_end) + 1)
        local after = value_end(s, i)
        duplicated = duplicated or names[name] ~= nil
        names[name] = {i, after}
        i = skip_space(s, after)
        if byte(s, i) == 44 then
            i = skip_space(s, i + 1)
        end
    end
    return names, duplicated
end

-- The text of a span.
local function text_of(s, span)
    return sub(s, span[1], span[2] - 1)
end

-- A JSON-RPC error answer; `raw_id` is the caller's id as text (nil: none).
local function error_text(raw_id, code, message)
    return '{"result":null,"error":{"code":' .. code .. ',"message":' .. cjson.encode(message) .. '},"id":' ..
        (raw_id or "null") .. "}"
end

local function reply(status, text)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Content-Length"] = #text
    ngx.print(text)
    -- The answer is sent: ending with 200 tells lua-nginx-module the content phase is done (a status of 300 or
    -- more would have nginx try an error page of its own).
    return ngx.exit(ngx.HTTP_OK)
end

local function refuse_request(status, code, message)
    return reply(status, error_text(nil, code, message))
end

return {
    skip_space = skip_space,
    elements = elements,
    members = members,
    text_of = text_of,
    error_text = error_text,
    reply = reply,
    refuse_request = refuse_request,
}
