-- A SKETCH of the access gateway's hot path for lua-nginx-module (LuaJIT), for benchmarks/gateway_lua_hot_path.py
-- only: not a gateway zBI ships. It does per request what gateway.js does for one authenticated JSON-RPC call
-- (who() before the body, jsonRpc() after it). Not sketched: batches and answers with withheld members (the
-- splice), answered 501; gRPC calls' method and metadata check (their verdict is "denied", nothing more); the
-- history cache (the measured instance has none). Placeholders (__NAME__) are filled by the
-- benchmark from the same Python lists gateway.js is rendered from.
--
-- Unlike njs, LuaJIT keeps this module (and everything its top level builds) for the worker's life: the sets of
-- names below are tables built once, not per request.
local ffi = require "ffi"
local json = require "cjson.safe"

local C = ffi.C
local byte, find, sub = string.byte, string.find, string.sub
local ngx_var = ngx.var

-- JSON.parse refuses NaN, Infinity and hex numbers; cjson accepts them unless told not to.
json.decode_invalid_numbers(false)

-- OpenSSL's SHA-256 as lua-resty-string's resty.sha256 calls it (the one-shot SHA256() of OpenSSL 3 goes through
-- its EVP layer, about 3,500 instructions more per call, measured); the context is opaque here, 112 bytes.
ffi.cdef [[
int SHA256_Init(void *context);
int SHA256_Update(void *context, const void *data, size_t count);
int SHA256_Final(unsigned char *digest, void *context);
unsigned char *ngx_hex_dump(unsigned char *dst, const unsigned char *src, size_t len);
struct zbi_stat {
    unsigned long st_dev, st_ino, st_nlink;
    unsigned int st_mode, st_uid, st_gid;
    int pad;
    unsigned long st_rdev;
    long st_size, st_blksize, st_blocks;
    long st_atime, st_atime_nsec, st_mtime, st_mtime_nsec, st_ctime, st_ctime_nsec;
    long reserved[3];
};
int stat(const char *path, struct zbi_stat *buffer);
]]

local TABLE_DIR = "__TABLE_DIR__/"
local KEY_FILE_PREFIX = "__KEY_FILE_PREFIX__"
local ANONYMOUS_FILE = "__ANONYMOUS_FILE__"
local GRPC_PREFIX = "/__GRPC_SERVICE__/"
local ZCASHD_PATH = "__ZCASHD_PATH__"
local PROXY = "@zbi_rpc"
-- true: a worker keeps each entry it read, and stats its file per request to see whether it changed.
local CACHE_ENTRIES = __CACHE_ENTRIES__

local NEVER = __NEVER__
local NEVER_PREFIXES = __NEVER_PREFIXES__
local PREFIX_EXCEPTIONS = __PREFIX_EXCEPTIONS__
local ZCASHD_NEVER = __ZCASHD_NEVER__
local WITHHELD = __WITHHELD__

local REFUSED_LABEL = "(refused)"
local NO_METHODS = {}

local sha256_context = ffi.new("unsigned char[?]", 112)
local digest = ffi.new("unsigned char[32]")
local hex = ffi.new("unsigned char[64]")
local status = ffi.new("struct zbi_stat")

local function sha256(text)
    C.SHA256_Init(sha256_context)
    C.SHA256_Update(sha256_context, text, #text)
    C.SHA256_Final(digest, sha256_context)
    C.ngx_hex_dump(hex, digest, 32)
    return ffi.string(hex, 64)
end

local function read_entry(path)
    local file = io.open(path, "rb")
    if not file then
        return nil
    end
    local text = file:read("*a")
    file:close()
    return json.decode(text)
end

-- name -> {entry, and the stat fields that identify the file it was read from}. Only entries whose file exists
-- are kept, so the cache holds at most one entry per key of the table.
local cache = {}

-- The entry in `name` of the table's directory, or nil. Cached: a new file (the kubelet's ConfigMap swap makes a
-- new inode) or a rewritten one (mtime, ctime, size) is read again; a removed one is forgotten.
local function cached_entry(name)
    local path = TABLE_DIR .. name
    if C.stat(path, status) ~= 0 then
        cache[name] = nil
        return nil
    end
    local seen = cache[name]
    local ino, size = tonumber(status.st_ino), tonumber(status.st_size)
    local mtime, mtime_ns = tonumber(status.st_mtime), tonumber(status.st_mtime_nsec)
    local ctime, ctime_ns = tonumber(status.st_ctime), tonumber(status.st_ctime_nsec)
    local dev = tonumber(status.st_dev)
    if seen and seen.ino == ino and seen.dev == dev and seen.size == size and seen.mtime == mtime and
        seen.mtime_ns == mtime_ns and seen.ctime == ctime and seen.ctime_ns == ctime_ns then
        return seen.entry
    end
    local entry = read_entry(path)
    if entry then
        cache[name] = {entry = entry, ino = ino, dev = dev, size = size, mtime = mtime, mtime_ns = mtime_ns,
                       ctime = ctime, ctime_ns = ctime_ns}
    end
    return entry
end

local function entry_in(name)
    if CACHE_ENTRIES then
        return cached_entry(name)
    end
    return read_entry(TABLE_DIR .. name)
end

local function refused()
    return {user = "-", profile = nil, anonymous = false}
end

-- gateway.js's lookup(): basic auth (user name, key as password) or `Bearer <key>`; the key's SHA-256 names its
-- entry's file; an empty key, another user's name or an expired entry is refused.
local function lookup()
    local header = ngx_var.http_authorization
    if not header or header == "" then
        local anonymous = entry_in(ANONYMOUS_FILE)
        if anonymous then
            return {user = "anonymous", profile = anonymous, anonymous = true}
        end
        return refused()
    end
    local key, name
    if sub(header, 1, 7) == "Bearer " then
        key = sub(header, 8):match("^%s*(.-)%s*$")
    elseif sub(header, 1, 6) == "Basic " then
        local decoded = ngx.decode_base64(sub(header, 7))
        local colon = decoded and find(decoded, ":", 1, true)
        if not colon then
            return refused()
        end
        name = sub(decoded, 1, colon - 1)
        key = sub(decoded, colon + 1)
    else
        return refused()
    end
    if key == "" then
        return refused()
    end
    local entry = entry_in(KEY_FILE_PREFIX .. sha256(key) .. ".json")
    if not entry or (name ~= nil and entry.name ~= name) then
        return refused()
    end
    local expires = entry.expires
    if expires and expires ~= json.null and sub(ngx.utctime(), 1, 10) >= expires then
        return refused()
    end
    return {user = entry.name, profile = entry, anonymous = false}
end

-- set_by_lua $zbi_who: "<verdict> <rate key> <bucket> <user>", as gateway.js's who(), which nginx's maps split.
local function who()
    local id = lookup()
    ngx.ctx.zbi_caller = id
    if not id.profile then
        return "unauthenticated - - -"
    end
    -- gRPC's method and metadata check is not sketched: a gRPC path's verdict is "denied", nothing more.
    local verdict = sub(ngx_var.uri, 1, #GRPC_PREFIX) == GRPC_PREFIX and "denied" or "ok"
    local rate_key = id.anonymous and ("anon:" .. ngx_var.remote_addr) or ("user:" .. id.user)
    return verdict .. " " .. rate_key .. " " .. id.profile.bucket .. " " .. id.user
end

-- --- The body (json_text.js's scanner, for a call that is not allowed as it is) ---

local function skip_space(s, i)
    while true do
        local c = byte(s, i)
        if c ~= 32 and c ~= 9 and c ~= 10 and c ~= 13 then
            return i
        end
        i = i + 1
    end
end

-- The position after the string starting at `i`.
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
    while i <= #s do
        c = byte(s, i)
        if c == 44 or c == 93 or c == 125 or c == 32 or c == 9 or c == 10 or c == 13 then
            return i
        end
        i = i + 1
    end
    return i
end

-- The member names of the object starting at `start` (decoded, as JSON.parse reads them): the id's text, and
-- whether a name is given twice.
local function members(s, start)
    local names = {}
    local duplicated = false
    local id
    local i = skip_space(s, start + 1)
    while byte(s, i) ~= 125 do
        local key_end = string_end(s, i)
        local name = json.decode(sub(s, i, key_end - 1))
        i = skip_space(s, skip_space(s, key_end) + 1)
        local value_stop = value_end(s, i)
        duplicated = duplicated or names[name] ~= nil
        names[name] = true
        if name == "id" then
            id = sub(s, i, value_stop - 1)
        end
        i = skip_space(s, value_stop)
        if byte(s, i) == 44 then
            i = skip_space(s, i + 1)
        end
    end
    return id, duplicated
end

-- --- Answers ---

local function error_text(raw_id, code, message)
    return '{"result":null,"error":{"code":' .. code .. ',"message":' .. json.encode(message) .. '},"id":' ..
        (raw_id or "null") .. "}"
end

local function reply(code, text)
    ngx.status = code
    ngx.header["Content-Type"] = "application/json"
    ngx.print(text)
    return ngx.exit(ngx.HTTP_OK)
end

local function refuse_request(code, rpc_code, message)
    return reply(code, error_text(nil, rpc_code, message))
end

local function listed(list, name)
    for i = 1, #list do
        if list[i] == name then
            return true
        end
    end
    return false
end

local function never_exposed(method)
    if NEVER[method] then
        return true
    end
    for i = 1, #NEVER_PREFIXES do
        local prefix = NEVER_PREFIXES[i]
        if sub(method, 1, #prefix) == prefix then
            return not PREFIX_EXCEPTIONS[method]
        end
    end
    return false
end

local function zcashd_never(method)
    return ZCASHD_NEVER[method] == true
end

local NODE_ROUTE = {methods = "jsonRpc", never = never_exposed, proxy = PROXY}
local ZCASHD_ROUTE = {methods = "zcashdRpc", never = zcashd_never, proxy = "@zbi_zcashd"}

-- At most `limit` ':' of the text, counted.
local function colons(text, limit)
    local count, at = 0, 0
    while count < limit do
        at = find(text, ":", at + 1, true)
        if not at then
            break
        end
        count = count + 1
    end
    return count
end

-- gateway.js's allowedAsIs(): an allowed method, and no more ':' in the text than the call has members (each
-- member has one ':' outside strings, so no name can occur twice); nil leaves the call to check().
local function allowed_as_is(text, call, allowed, never)
    local method = call.method
    if type(method) ~= "string" or not listed(allowed, method) or never(method) then
        return nil
    end
    local count = 0
    for _ in pairs(call) do
        count = count + 1
    end
    if colons(text, count + 1) ~= count then
        return nil
    end
    return method
end

-- gateway.js's check() for a single call: the method, or nil and the refusal's status and text.
local function check(text, start, call, allowed, never)
    if type(call) ~= "table" or byte(text, start) ~= 123 then
        return nil, 400, error_text(nil, -32600, "Invalid Request: a call is an object")
    end
    local id, duplicated = members(text, start)
    local method = call.method
    if duplicated then
        return nil, 400, error_text(id, -32600, "Invalid Request: a member is given twice")
    elseif type(method) ~= "string" then
        return nil, 400, error_text(id, -32600, "Invalid Request: the method is not a string")
    elseif never(method) or not listed(allowed, method) then
        return nil, 200, error_text(id, -32601, "method " .. sub(method, 1, 64) .. " is not allowed for this key")
    end
    return method
end

-- content_by_lua: gateway.js's jsonRpc() for a single call; the checked call goes to the proxy as received.
local function json_rpc()
    local caller = ngx.ctx.zbi_caller
    if ngx.req.get_method() ~= "POST" then
        return refuse_request(405, -32600, "JSON-RPC requests are POSTs")
    end
    ngx.req.read_body()
    local text = ngx.req.get_body_data()
    if text == nil and ngx.req.get_body_file() then
        local file = io.open(ngx.req.get_body_file(), "rb")
        text = file:read("*a")
        file:close()
    end
    text = text or ""
    local request = json.decode(text)
    if request == nil then
        return refuse_request(400, -32700, "Parse error")
    end
    local api = ngx_var.uri == ZCASHD_PATH and ZCASHD_ROUTE or NODE_ROUTE
    local allowed = caller.profile[api.methods] or NO_METHODS
    local start = skip_space(text, 1)
    if byte(text, start) == 91 then
        ngx_var.zbi_method = "(batch)"
        return refuse_request(501, -32600, "batches are not in this sketch")
    end
    local method = type(request) == "table" and request.method or nil
    ngx_var.zbi_methods = type(method) == "string" and sub(method, 1, 200) or ""
    local checked, code, refusal
    if type(request) == "table" then
        checked = allowed_as_is(text, request, allowed, api.never)
    end
    if not checked then
        checked, code, refusal = check(text, start, request, allowed, api.never)
    end
    ngx_var.zbi_method = checked or REFUSED_LABEL
    if not checked then
        return reply(code, refusal)
    end
    if WITHHELD[checked] then
        return refuse_request(501, -32603, "answers with withheld members are not in this sketch")
    end
    return ngx.exec(api.proxy)
end

return {who = who, json_rpc = json_rpc}
