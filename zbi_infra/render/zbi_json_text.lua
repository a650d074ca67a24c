-- zBI access gateway, Lua engine (lua-nginx-module: Debian's 0.10.23 in the tests, OpenResty's in the pod): JSON
-- values found as spans of text, as json_text.js finds them for the njs engine, for zbi_gateway.lua and
-- zbi_splice.lua. Each scanning function takes a text already known to be valid JSON (cjson accepted it, or it is
-- the node's answer) and returns spans {first, after} (1-based; `after` is the position past the value), so that a
-- value is forwarded or rewritten as the caller or the node wrote it: numbers are never parsed and printed again.
-- JSON-RPC answers the gateway writes itself are made here too.
local cjson = require "cjson.safe"

local byte, find, sub = string.byte, string.find, string.sub

-- JSON.parse (the njs engine) refuses NaN, Infinity and hex numbers; cjson accepts them unless told not to (a
-- setting of the module every zBI module requires, so it holds for all).
cjson.decode_invalid_numbers(false)
-- njs's JSON.parse reads values nested 31 deep at most (measured on njs 0.7.9: a call whose params are 30 arrays
-- deep passes, 31 is a parse error): so do these, the body's and the node's answers alike.
local MAX_DEPTH = 31
cjson.decode_max_depth(MAX_DEPTH)

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

-- The member whose name starts at `i` (spaces before it skipped): its name (decoded, as a JSON parser reads it:
-- "\u006dethod" is `method`), its value's span, and where the next member's name starts, or its object's `}`.
local function member_at(s, i)
    local key_end = string_end(s, i)
    local name = cjson.decode(sub(s, i, key_end - 1))
    local first = skip_space(s, skip_space(s, key_end) + 1)
    local after = value_end(s, first)
    local next_member = skip_space(s, after)
    if byte(s, next_member) == 44 then
        next_member = skip_space(s, next_member + 1)
    end
    return name, {first, after}, next_member
end

-- The members of the object whose text starts at `start`: a table name -> span, and whether a name is given twice.
local function members(s, start)
    local names = {}
    local duplicated = false
    local i = skip_space(s, start + 1)
    while byte(s, i) ~= 125 do
        local name, span
        name, span, i = member_at(s, i)
        duplicated = duplicated or names[name] ~= nil
        names[name] = span
    end
    return names, duplicated
end

-- Every span of member `name` of the object whose text starts at `start`, in order (a name may be given twice in
-- a node's answer; members() keeps the last).
local function member_spans(s, start, name)
    local spans = {}
    local i = skip_space(s, start + 1)
    while byte(s, i) ~= 125 do
        local found, span
        found, span, i = member_at(s, i)
        if found == name then
            spans[#spans + 1] = span
        end
    end
    return spans
end

-- The text of a span.
local function text_of(s, span)
    return sub(s, span[1], span[2] - 1)
end

-- The JSON value of `text`, or nil when it is not one JSON text as JSON.parse (the njs engine) reads it. cjson
-- alone stops at a NUL byte (taking what follows for the end) and takes raw control characters inside strings,
-- both of which JSON refuses: a control byte is refused anywhere but as whitespace between values. One pass of
-- string.byte, which LuaJIT compiles (a pattern search would not be, nor the code around it).
local function decode(text)
    local value = cjson.decode(text)
    if value == nil then
        return nil
    end
    local inside, i, length = false, 1, #text
    while i <= length do
        local c = byte(text, i)
        if c < 32 then
            if inside or (c ~= 9 and c ~= 10 and c ~= 13) then
                return nil
            end
        elseif c == 34 then
            inside = not inside
        elseif c == 92 and inside then
            -- The escaped character is no quote that ends the string.
            i = i + 1
        end
        i = i + 1
    end
    return value
end

-- The position after the JSON number starting at `i`, or nil (RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?).
local function number_end(s, i)
    if byte(s, i) == 45 then
        i = i + 1
    end
    local c = byte(s, i)
    if c == 48 then
        i = i + 1
    elseif c and c >= 49 and c <= 57 then
        local _, last = find(s, "^%d+", i)
        i = last + 1
    else
        return nil
    end
    if byte(s, i) == 46 then
        local _, last = find(s, "^%d+", i + 1)
        if not last then
            return nil
        end
        i = last + 1
    end
    c = byte(s, i)
    if c == 101 or c == 69 then
        local _, last = find(s, "^[-+]?%d+", i + 1)
        if not last then
            return nil
        end
        i = last + 1
    end
    return i
end

-- The position after the JSON string whose quote is at `i`, or nil (no raw control character, valid escapes).
local function checked_string_end(s, i)
    i = i + 1
    while true do
        local at = find(s, '[%z\1-\31"\\]', i)
        if not at then
            return nil
        end
        local c = byte(s, at)
        if c == 34 then
            return at + 1
        elseif c ~= 92 then
            return nil
        end
        local escape = byte(s, at + 1)
        if escape == 117 then
            if not find(s, "^%x%x%x%x", at + 2) then
                return nil
            end
            i = at + 6
        elseif escape and find('"\\/bfnrt', string.char(escape), 1, true) then
            i = at + 2
        else
            return nil
        end
    end
end

local LITERALS = {[116] = "true", [102] = "false", [110] = "null"}

-- The position of the value after the member name starting at `i` (its string, then ':'), or nil.
local function past_name(text, i)
    local name_end = byte(text, i) == 34 and checked_string_end(text, i)
    if not name_end then
        return nil
    end
    i = skip_space(text, name_end)
    if byte(text, i) ~= 58 then
        return nil
    end
    return skip_space(text, i + 1)
end

-- Whether `text` is one JSON text (RFC 8259, as JSON.parse reads it), checked without building any value: a node's
-- answer of hundreds of thousands of small values, read only to be spliced, costs no table per value.
local function valid(text)
    local i = skip_space(text, 1)
    -- The open containers: true for an object (a name comes next), false for an array.
    local stack, depth = {}, 0
    while true do
        local c = byte(text, i)
        local after
        if c == 123 or c == 91 then
            depth = depth + 1
            if depth > MAX_DEPTH then
                return false
            end
            stack[depth] = c == 123
            i = skip_space(text, i + 1)
            local close = byte(text, i)
            if close == (c == 123 and 125 or 93) then
                depth = depth - 1
                after = i + 1
            elseif c == 123 then
                i = past_name(text, i)
                if not i then
                    return false
                end
            end
        elseif c == 34 then
            after = checked_string_end(text, i)
        elseif LITERALS[c] then
            local word = LITERALS[c]
            after = sub(text, i, i + #word - 1) == word and i + #word or nil
        else
            after = number_end(text, i)
        end
        if after then
            -- A value ended: close what it ends, then a comma (the next value) or the end of the text.
            i = skip_space(text, after)
            while true do
                if depth == 0 then
                    return i > #text
                end
                local separator = byte(text, i)
                if separator == 44 then
                    i = skip_space(text, i + 1)
                    if stack[depth] then
                        i = past_name(text, i)
                        if not i then
                            return false
                        end
                    end
                    break
                elseif separator == (stack[depth] and 125 or 93) then
                    depth = depth - 1
                    i = skip_space(text, i + 1)
                else
                    return false
                end
            end
        elseif c ~= 123 and c ~= 91 then
            return false
        end
    end
end

-- `s` without the whitespace around it, in one pass each way (a pattern with a lazy middle would take time
-- quadratic in the whitespace inside: a caller without a key could hold a worker with one long header).
local function space(c)
    -- What JavaScript's trim and Lua's %s both take: space, and tab to carriage return.
    return c == 32 or (c ~= nil and c >= 9 and c <= 13)
end

local function trimmed(s)
    local first, last = 1, #s
    while space(byte(s, first)) do
        first = first + 1
    end
    while last >= first and space(byte(s, last)) do
        last = last - 1
    end
    return sub(s, first, last)
end

-- Whether `s` is UTF-8 as RFC 3629, and so JSON (RFC 8259, 8.1), has it: no overlong form, no surrogate, nothing
-- above U+10FFFF. Each lead byte bounds its second byte; the others are 0x80-0xBF. A loop of string.byte, which
-- LuaJIT compiles (string.find with a pattern it does not: that cost a call 10,000 instructions).
local function utf8(s)
    local i, n = 1, #s
    while i <= n do
        local c = byte(s, i)
        if c < 0x80 then
            i = i + 1
        else
            local size = c >= 0xF0 and 4 or c >= 0xE0 and 3 or 2
            local low = (c == 0xE0 and 0xA0) or (c == 0xF0 and 0x90) or 0x80
            local high = (c == 0xED and 0x9F) or (c == 0xF4 and 0x8F) or 0xBF
            local second = byte(s, i + 1)
            if c < 0xC2 or c > 0xF4 or not second or second < low or second > high then
                return false
            end
            for k = i + 2, i + size - 1 do
                local b = byte(s, k)
                if not b or b < 0x80 or b > 0xBF then
                    return false
                end
            end
            i = i + size
        end
    end
    return true
end

-- The first `count` characters of `s` (code points, as njs's slice counts them), never cutting a UTF-8 sequence.
local function prefix(s, count)
    local length = #s
    -- No more bytes than the count: no more characters either.
    if length <= count then
        return s
    end
    local i = 1
    for _ = 1, count do
        if i > length then
            break
        end
        local c = byte(s, i)
        i = i + (c >= 240 and 4 or c >= 224 and 3 or c >= 192 and 2 or 1)
    end
    return sub(s, 1, i - 1)
end

local ESCAPES = {['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
    ["\t"] = "\\t"}

-- A string as JSON.stringify writes it (the njs engine's answers): quotes, backslashes and control characters
-- escaped, nothing else (cjson would also escape '/' and DEL).
local function encode_string(s)
    return '"' .. string.gsub(s, '[%z\1-\31"\\]', function(c)
        return ESCAPES[c] or string.format("\\u%04x", byte(c))
    end) .. '"'
end

-- A JSON-RPC error answer; `raw_id` is the caller's id as text (nil: none).
local function error_text(raw_id, code, message)
    return '{"result":null,"error":{"code":' .. code .. ',"message":' .. encode_string(message) .. '},"id":' ..
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
    member_spans = member_spans,
    text_of = text_of,
    decode = decode,
    valid = valid,
    utf8 = utf8,
    prefix = prefix,
    trimmed = trimmed,
    error_text = error_text,
    reply = reply,
    refuse_request = refuse_request,
}
