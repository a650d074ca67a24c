-- zBI access gateway, Lua engine, the spliced path (gateway_splice.js for the njs engine): a batch with refused
-- calls, or a call whose answer has members withheld (getinfo). The allowed calls are rebuilt from their own text,
-- sent to the node through the loopback relay (which admits only so many batches at once), and its answer spliced
-- element by element: numbers are never parsed and printed again.
local text = require "zbi_json_text"

local byte, lower, match, sub = string.byte, string.lower, string.match, string.sub

local RELAY_HOST, RELAY_PORT = "127.0.0.1", __RELAY_PORT__
-- The node's `user:password`, in the Secret the pod mounts.
local UPSTREAM_AUTH = "__UPSTREAM_AUTH__"
local MAX_ANSWER = __MAX_ANSWER__
local WITHHELD_TEXT = '"withheld by the gateway"'
local TOO_LARGE_OR_DOWN = "the node's answers exceed " .. MAX_ANSWER .. " bytes or the node is unavailable: send the " ..
    "refused calls apart, so the rest streams unbuffered, or split the batch"

-- The answer's text with the members `fields` (false: none) of its result replaced (it is the node's JSON).
local function withhold(answer, fields)
    local start = text.skip_space(answer, 1)
    if not fields or byte(answer, start) ~= 123 then
        return answer
    end
    local names = text.members(answer, start)
    local result = names.result
    if not result or byte(answer, result[1]) ~= 123 then
        return answer
    end
    -- Every occurrence of each field (a name given twice in the node's answer is withheld twice).
    local cuts = {}
    for i = 1, #fields do
        local spans = text.member_spans(answer, result[1], fields[i])
        for j = 1, #spans do
            cuts[#cuts + 1] = spans[j]
        end
    end
    table.sort(cuts, function(a, b) return a[1] > b[1] end)
    for i = 1, #cuts do
        answer = sub(answer, 1, cuts[i][1] - 1) .. WITHHELD_TEXT .. sub(answer, cuts[i][2])
    end
    return answer
end

-- Sends `request` (an HTTP/1.0 request's text: its answer ends with the connection and is never chunked) to this
-- nginx's loopback server at `port`: the status, the body and the headers (names in lower case), or nil when the
-- server cannot be reached or the answer's body exceeds `max` bytes (read no further). A cosocket, where a
-- subrequest would do: lua-nginx-module refuses subrequests in HTTP/2 requests.
local function exchange(port, request, max)
    local socket = ngx.socket.tcp()
    socket:settimeouts(2000, 60000, 60000)
    if not socket:connect(RELAY_HOST, port) then
        return nil
    end
    local line = socket:send(request) and socket:receive("*l")
    local status = line and tonumber(match(line, "^HTTP/%d%.%d (%d%d%d)"))
    if not status then
        socket:close()
        return nil
    end
    local headers = {}
    while true do
        local header = socket:receive("*l")
        if header == nil then
            socket:close()
            return nil
        end
        if header == "" then
            break
        end
        local name, value = match(header, "^([^:]+):%s*(.-)%s*$")
        if name then
            headers[lower(name)] = value
        end
    end
    if (tonumber(headers["content-length"]) or 0) > max then
        socket:close()
        return nil
    end
    local parts, size = {}, 0
    while true do
        local data, err, partial = socket:receive(65536)
        data = data or partial
        if data and #data > 0 then
            size = size + #data
            if size > max then
                socket:close()
                return nil
            end
            parts[#parts + 1] = data
        end
        if err == "closed" then
            break
        elseif err then
            socket:close()
            return nil
        end
    end
    socket:close()
    return status, table.concat(parts), headers
end

-- The node's credentials as the relay and the filler take them (basic auth), read when asked: a new Secret takes
-- effect without a restart.
local function node_authorization()
    local file = assert(io.open(UPSTREAM_AUTH, "rb"))
    local credentials = file:read("*a")
    file:close()
    return "Basic " .. ngx.encode_base64(text.trimmed(credentials))
end

-- POSTs `body` to the relay's `path` with the node's credentials: the status and the answer, or nil (exchange()).
local function relay(path, body, max)
    local request = table.concat({"POST ", path, " HTTP/1.0\r\nHost: ", RELAY_HOST, "\r\nAuthorization: ",
        node_authorization(),
        "\r\nContent-Type: application/json\r\nContent-Length: ", #body, "\r\n\r\n", body})
    local status, answer = exchange(RELAY_PORT, request, max)
    return status, answer
end

-- Forwards the allowed calls of `calls` (checked by zbi_gateway.lua; `spans` their text in `body`) and answers
-- with the node's answers, each in its call's place, the refusals in theirs; a notification gets no answer.
-- `withheld[i]`: the members withheld from call i's answer (false: none). `route`: the relay's path for the route.
local function forward_and_splice(body, calls, spans, withheld, batch, route)
    local forwarded = {}
    for i = 1, #calls do
        if not calls[i].refusal then
            forwarded[#forwarded + 1] = text.text_of(body, spans[i])
        end
    end
    local answers = {}
    local status = 200
    if #forwarded > 0 then
        local answer
        status, answer = relay(batch and route .. "batch" or route,
            batch and "[" .. table.concat(forwarded, ",") .. "]" or forwarded[1], MAX_ANSWER)
        if not status then
            return text.refuse_request(502, -32603, TOO_LARGE_OR_DOWN)
        end
        -- Checked without building a value: an answer of many small values would otherwise cost a table each.
        if not text.valid(answer) then
            if status == 502 or status == 504 then
                return text.refuse_request(502, -32603, "the node is unavailable")
            end
            return text.refuse_request(502, -32603, "the node answered with invalid JSON")
        end
        local begin = text.skip_space(answer, 1)
        if not batch then
            return text.reply(status, withhold(answer, withheld[1]))
        end
        if byte(answer, begin) ~= 91 then
            -- The node refused the batch as a whole: its answer is the caller's.
            return text.reply(status, answer)
        end
        -- By id, in the node's order: duplicate ids are answered in turn, as the node answered them.
        local elements = text.elements(answer, begin)
        for i = 1, #elements do
            local span = elements[i]
            local id = byte(answer, span[1]) == 123 and text.members(answer, span[1]).id
            local key = id and text.text_of(answer, id) or "null"
            local queue = answers[key] or {}
            queue[#queue + 1] = text.text_of(answer, span)
            answers[key] = queue
        end
    end
    -- An answer is matched to a call by id, in the node's order: calls sharing an id share what is withheld from
    -- their answers, so an answer the node gives out of order never escapes its method's withholding.
    local withheld_by_id = {}
    for i = 1, #calls do
        local fields = withheld[i]
        if fields and not calls[i].refusal and not calls[i].notification then
            local id = calls[i].id or "null"
            local union = withheld_by_id[id] or {}
            for j = 1, #fields do
                union[#union + 1] = fields[j]
            end
            withheld_by_id[id] = union
        end
    end
    local out = {}
    for i = 1, #calls do
        local call = calls[i]
        if call.notification then
            -- No answer, refused or not.
        elseif call.refusal then
            out[#out + 1] = call.refusal
        else
            local queue = answers[call.id or "null"]
            local answer = queue and table.remove(queue, 1)
            out[#out + 1] = answer and withhold(answer, withheld_by_id[call.id or "null"] or false) or
                text.error_text(call.id, -32603, "the node did not answer this call")
        end
    end
    if #out == 0 then
        return ngx.exit(204)
    end
    return text.reply(status, "[" .. table.concat(out, ",") .. "]")
end

return {
    forward_and_splice = forward_and_splice,
    relay = relay,
    exchange = exchange,
    node_authorization = node_authorization,
}
