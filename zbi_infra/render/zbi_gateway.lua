-- zBI access gateway, Lua engine: what gateway.js does for the njs engine, with the same answers (the live tests run
-- both). LuaJIT keeps this module for a worker's life, so its tables are built once, and a worker keeps each user
-- table entry it read, checking per request with one statx(2) that its file is the one it read (the kubelet swaps
-- a ConfigMap's files through a new directory: new inodes), so a new, rotated or revoked key takes effect at once.
-- Identity: HTTP basic auth (the user's name, their key as the password) or `Bearer <key>`; the table holds SHA-256
-- of keys only. A single call or a wholly allowed batch goes to nginx's proxy as received (ngx.exec); a batch with
-- refused calls, or a call whose answer has members withheld, is spliced by zbi_splice.lua in the same handler.
local ffi = require "ffi"
local cjson = require "cjson.safe"
local text = require "zbi_json_text"
local splice = require "zbi_splice"
-- The history cache (its ENABLED is false where the instance has none: it then serves nothing).
local cache = require "zbi_cache"
-- The callers' rate buckets (nginx.conf configures them).
local rate = require "zbi_rate"

local C = ffi.C
local byte, find, lower, sub = string.byte, string.find, string.lower, string.sub
local ngx_var = ngx.var

local TABLE_DIR = "__TABLE_DIR__/"
local KEY_FILE_PREFIX = "__KEY_FILE_PREFIX__"
local ANONYMOUS_FILE = "__ANONYMOUS_FILE__"
local PROXY = "@zbi_rpc"
local MAX_BATCH = __MAX_BATCH__
local GRPC_PREFIX = "/__GRPC_SERVICE__/"
local ZCASHD_PATH = "__ZCASHD_PATH__"
local REFUSED_LABEL = "(refused)"
local BATCH_LABEL = "(batch)"

-- Never forwarded, whatever the user table says (zbi_infra.config.access.NEVER_EXPOSED and its prefixes), except
-- zebrad's read-only z_ chain queries (Z_CHAIN_QUERIES).
local NEVER = __NEVER__
local NEVER_PREFIXES = __NEVER_PREFIXES__
local PREFIX_EXCEPTIONS = __PREFIX_EXCEPTIONS__
-- The gRPC metadata a call may carry (forwarded, or blanked by nginx.conf); any other name refuses the call.
local GRPC_HEADERS = __GRPC_HEADERS__
-- The members of a method's answers withheld from callers (zebrad's getinfo `errors`: its last log line).
local WITHHELD = __WITHHELD__
-- The zcashd sidecar's never-forwarded methods (zbi_infra.config.zcashd_methods).
local ZCASHD_NEVER = __ZCASHD_NEVER__

ffi.cdef [[
int SHA256_Init(void *context);
int SHA256_Update(void *context, const void *data, size_t count);
int SHA256_Final(unsigned char *digest, void *context);
struct zbi_statx_timestamp { int64_t tv_sec; uint32_t tv_nsec; int32_t reserved; };
struct zbi_statx {
    uint32_t mask, blksize; uint64_t attributes; uint32_t nlink, uid, gid; uint16_t mode, spare0;
    uint64_t ino, size, blocks, attributes_mask;
    struct zbi_statx_timestamp atime, btime, ctime, mtime;
    uint32_t rdev_major, rdev_minor, dev_major, dev_minor; uint64_t spare2[14];
};
int statx(int directory, const char *path, int flags, unsigned int mask, struct zbi_statx *buffer);
unsigned char *ngx_hex_dump(unsigned char *destination, const unsigned char *source, size_t length);
]]
-- statx's layout is the same on every architecture (unlike stat's); without it (an old C library) every request
-- reads its entry, as the njs engine does.
local AT_FDCWD, STATX_BASIC_STATS = -100, 0x7ff
local HAS_STATX = pcall(function() return C.statx end)

local sha256_context = ffi.new("unsigned char[?]", 128)
local digest = ffi.new("unsigned char[32]")
local hex = ffi.new("unsigned char[64]")
local status = ffi.new("struct zbi_statx")

-- OpenSSL's SHA-256 as lua-resty-string's resty.sha256 calls it, in hex by nginx's own ngx_hex_dump (as its
-- resty.string does): both are in the nginx binary's address space, in OpenResty and in Debian's nginx alike.
local function sha256_hex(key)
    C.SHA256_Init(sha256_context)
    C.SHA256_Update(sha256_context, key, #key)
    C.SHA256_Final(digest, sha256_context)
    C.ngx_hex_dump(hex, digest, 32)
    return ffi.string(hex, 64)
end

-- A list as a set, made once per entry read.
local function set_of(list)
    local set = {}
    if type(list) == "table" then
        for i = 1, #list do
            set[list[i]] = true
        end
    end
    return set
end

local function read_entry(path)
    local file = io.open(path, "rb")
    if not file then
        return nil
    end
    local body = file:read("*a")
    file:close()
    local entry = cjson.decode(body)
    if type(entry) ~= "table" then
        return nil
    end
    entry.sets = {jsonRpc = set_of(entry.jsonRpc), zcashdRpc = set_of(entry.zcashdRpc), grpc = set_of(entry.grpc)}
    return entry
end

-- name -> {entry, identity of the file it was read from}; only entries whose file exists, so at most one per key
-- the table ever held, for the worker's life.
local kept = {}

-- What identifies the file statx last described: device, inode, size, and modification and change times to the
-- nanosecond (as Lua numbers: an inode or size past 2^53 does not occur).
local function same_file(seen)
    return seen.ino == tonumber(status.ino) and seen.dev_major == status.dev_major and
        seen.dev_minor == status.dev_minor and seen.size == tonumber(status.size) and
        seen.mtime == tonumber(status.mtime.tv_sec) and seen.mtime_ns == status.mtime.tv_nsec and
        seen.ctime == tonumber(status.ctime.tv_sec) and seen.ctime_ns == status.ctime.tv_nsec
end

local function file_identity(entry)
    return {entry = entry, ino = tonumber(status.ino), dev_major = status.dev_major, dev_minor = status.dev_minor,
        size = tonumber(status.size), mtime = tonumber(status.mtime.tv_sec), mtime_ns = status.mtime.tv_nsec,
        ctime = tonumber(status.ctime.tv_sec), ctime_ns = status.ctime.tv_nsec}
end

-- The entry in `name` of the table's directory, or nil (an unknown key, no anonymous access).
local function entry_in(name)
    local path = TABLE_DIR .. name
    if not HAS_STATX then
        return read_entry(path)
    end
    if C.statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, status) ~= 0 then
        kept[name] = nil
        return nil
    end
    local seen = kept[name]
    if seen and same_file(seen) then
        return seen.entry
    end
    local entry = read_entry(path)
    kept[name] = entry and file_identity(entry) or nil
    return entry
end

local function refused()
    return {user = "-", profile = nil, anonymous = false}
end

-- The entry file and the user's name (nil for a Bearer key) an Authorization header names, or nil.
local function named_by(header)
    local key, name
    if sub(header, 1, 7) == "Bearer " then
        key = text.trimmed(sub(header, 8))
    elseif sub(header, 1, 6) == "Basic " then
        local decoded = ngx.decode_base64(sub(header, 7))
        local colon = decoded and find(decoded, ":", 1, true)
        if not colon then
            return nil
        end
        name, key = sub(decoded, 1, colon - 1), sub(decoded, colon + 1)
    else
        return nil
    end
    -- An empty key is no key: never hashed (the SHA-256 of "" must not match a user, whatever the table says).
    if key == "" then
        return nil
    end
    -- The file's name is hex digits only: no path can be made of a key.
    return KEY_FILE_PREFIX .. sha256_hex(key) .. ".json", name
end

-- What named_by() made of headers this worker has seen, by header: worked out once (base64, SHA-256 and the file's
-- name were a twentieth of a request's instructions, benchmarks/gateway_instructions.py). Only headers whose key
-- has a usable entry, and short ones, are kept: a caller cannot grow the table with made-up or expired keys, and
-- what one with a key can add by spelling it many ways (base64 decoding stops at "=", Bearer keys are trimmed) is
-- bounded: KNOWN_MAX entries of KNOWN_MAX_BYTES, then it starts afresh (a review measured about 6 MiB more per
-- worker at most; others' headers are then worked out again, as before any was kept). The entry itself is still
-- checked per request: a revoked or rotated key is refused at once.
local KNOWN_MAX, KNOWN_MAX_BYTES = 4096, 256
local known, known_count = {}, 0

local function remember(header, file, name)
    if #header > KNOWN_MAX_BYTES then
        return
    end
    if known_count >= KNOWN_MAX then
        known, known_count = {}, 0
    end
    known[header] = {file = file, name = name}
    known_count = known_count + 1
end

-- {user, profile, anonymous}: profile nil means refused (bad, empty, revoked or expired key, or no anonymous access).
local function lookup()
    local header = ngx_var.http_authorization
    if not header or header == "" then
        local anonymous = entry_in(ANONYMOUS_FILE)
        return anonymous and {user = "anonymous", profile = anonymous, anonymous = true} or refused()
    end
    local seen = known[header]
    local file, name
    if seen then
        file, name = seen.file, seen.name
    else
        file, name = named_by(header)
        if not file then
            return refused()
        end
    end
    local entry = entry_in(file)
    if not entry or (name ~= nil and entry.name ~= name) then
        return refused()
    end
    local expires = entry.expires
    if type(expires) == "string" and sub(ngx.utctime(), 1, 10) >= expires then
        return refused()
    end
    -- Kept once the key is found usable: an expired key's holder cannot fill the table either.
    if not seen then
        remember(header, file, name)
    end
    return {user = entry.name, profile = entry, anonymous = false}
end

-- The gRPC verdict of an identified caller for `uri`: "ok", "denied" or "metadata" (the method is the path's second
-- segment, its first the service's name).
local function grpc_verdict(caller, uri)
    local method = sub(uri, #GRPC_PREFIX + 1)
    local slash = find(method, "/", 1, true)
    if slash then
        method = sub(method, 1, slash - 1)
    end
    local allowed = caller.profile.sets.grpc[method] == true
    ngx_var.zbi_method = allowed and method or REFUSED_LABEL
    if not allowed then
        return "denied"
    end
    for name in pairs(ngx.req.get_headers(0, true)) do
        if not GRPC_HEADERS[lower(name)] then
            return "metadata"
        end
    end
    return "ok"
end

-- set_by_lua $zbi_verdict, before the body: "ok", "denied", "metadata", "unauthenticated" (gateway.js's who()) or,
-- where `charged` (the locations that forward calls), "limited" when the caller's rate bucket has no room for this
-- request (nginx answers 429). A gRPC call is charged only once it passes as nginx's limit_req would see it: a POST,
-- its method and metadata allowed (the location refuses the others before its limits). The variables the caps and
-- the log read are set here too, where njs's "<verdict> <rate key> <bucket> <user>" is split by nginx's maps: each
-- map is a regular expression run per request, and a set variable is never computed by its map. The caller is kept
-- for json_rpc().
local function who(charged)
    local caller = lookup()
    ngx.ctx.zbi_caller = caller
    if not caller.profile then
        -- Counted in no bucket and no cap of callers (an empty key is not counted): only in the refused keys' zone.
        ngx_var.zbi_rate_key = ""
        ngx_var.zbi_bucket = ""
        ngx_var.zbi_user = "-"
        ngx_var.zbi_anonymous_caller = ""
        return "unauthenticated"
    end
    local uri = ngx_var.uri
    local grpc = sub(uri, 1, #GRPC_PREFIX) == GRPC_PREFIX
    local verdict = grpc and grpc_verdict(caller, uri) or "ok"
    local rate_key = caller.anonymous and ("anon:" .. ngx_var.remote_addr) or ("user:" .. caller.user)
    local bucket = tostring(caller.profile.bucket)
    caller.rate_key = rate_key
    ngx_var.zbi_rate_key = rate_key
    ngx_var.zbi_bucket = bucket
    ngx_var.zbi_user = caller.user
    ngx_var.zbi_anonymous_caller = caller.anonymous and "anonymous" or ""
    if charged and verdict == "ok" and not (grpc and ngx.req.get_method() ~= "POST") and
        not rate.take(rate_key, bucket, 1) then
        return "limited"
    end
    return verdict
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

local NODE_ROUTE = {methods = "jsonRpc", never = never_exposed, proxy = PROXY, relay = "/"}
local ZCASHD_ROUTE = {methods = "zcashdRpc", never = zcashd_never, proxy = "@zbi_zcashd", relay = ZCASHD_PATH .. "/"}

-- A call, checked (gateway.js's check()): {id: raw id text or nil, notification, method, refusal: error text or nil,
-- invalid}. `span` is its text's; `parsed` what cjson made of it.
local function check(body, span, parsed, allowed, never)
    local call = {notification = true, invalid = true}
    if type(parsed) ~= "table" or byte(body, span[1]) ~= 123 then
        call.notification = false
        call.refusal = text.error_text(nil, -32600, "Invalid Request: a call is an object")
        return call
    end
    local names, duplicated = text.members(body, span[1])
    -- The params' span, which the cache reads without a second scan.
    call.params = names.params
    if names.id then
        call.notification = false
        call.id = text.text_of(body, names.id)
        -- The gateway writes the id back in its own answers: it must be JSON, which cjson's laxer numbers ("1.")
        -- are not. Such a body is no JSON.
        call.not_json = not text.valid(call.id)
    end
    local method = parsed.method
    if duplicated then
        call.refusal = text.error_text(call.id, -32600, "Invalid Request: a member is given twice")
    elseif type(method) ~= "string" then
        call.refusal = text.error_text(call.id, -32600, "Invalid Request: the method is not a string")
    elseif never(method) or not allowed[method] then
        call.invalid = false
        call.refusal = text.error_text(call.id, -32601, "method " .. text.prefix(method, 64) ..
            " is not allowed for this key")
    else
        call.method = method
    end
    return call
end

-- The members of a decoded object: table.nkeys where LuaJIT has it (OpenResty's branch, Debian's libluajit2 too),
-- compiled, else pairs (which LuaJIT does not compile).
local has_nkeys, nkeys = pcall(require, "table.nkeys")
local member_count = has_nkeys and nkeys or function(object)
    local count = 0
    for _ in pairs(object) do
        count = count + 1
    end
    return count
end

-- A single call that passes without a scan (gateway.js's allowedAsIs()): an object whose method is allowed and
-- whose text holds no more ':' than the call has members (each member has one ':' outside strings, so no name can
-- occur twice). Anything else is left to check().
local function allowed_as_is(body, parsed, allowed, never)
    if type(parsed) ~= "table" or byte(body, text.skip_space(body, 1)) ~= 123 then
        return nil
    end
    local method = parsed.method
    if type(method) ~= "string" or not allowed[method] or never(method) then
        return nil
    end
    local count = member_count(parsed)
    local colons, at = 0, 0
    while colons <= count do
        at = find(body, ":", at + 1, true)
        if not at then
            break
        end
        colons = colons + 1
    end
    if colons ~= count then
        return nil
    end
    return {notification = false, method = method, invalid = false}
end

-- Charges `count` more calls to the caller's rate bucket (who() charged the request itself as one), in this
-- process: the first call without room refuses the batch.
local function charge(count)
    local caller = ngx.ctx.zbi_caller
    return rate.take(caller.rate_key, tostring(caller.profile.bucket), count)
end

local function spliced(api, body, calls, spans, batch)
    local withheld = {}
    for i = 1, #calls do
        withheld[i] = calls[i].method and WITHHELD[calls[i].method] or false
    end
    return splice.forward_and_splice(body, calls, spans, withheld, batch, api.relay)
end

local function single(api, body, parsed, allowed, start)
    local method = type(parsed) == "table" and parsed.method or nil
    -- The cache holds the node's answers only, never the zcashd sidecar's (another program, other answers).
    local cacheable = api == NODE_ROUTE and cache.serves(method)
    -- The fast path gives no id, which a cached answer needs: cacheable calls take the full check.
    local call = not cacheable and allowed_as_is(body, parsed, allowed, api.never) or
        check(body, {start, #body + 1}, parsed, allowed, api.never)
    if call.not_json then
        return text.refuse_request(400, -32700, "Parse error")
    end
    ngx_var.zbi_methods = type(method) == "string" and text.prefix(method, 200) or ""
    -- The metrics' method label takes only names from the allowlists, so clients cannot grow its cardinality.
    ngx_var.zbi_method = call.refusal and REFUSED_LABEL or call.method
    if call.refusal then
        return text.reply(call.invalid and 400 or 200, call.refusal)
    end
    if cacheable then
        -- Hands the call to the cache and returns nothing, or returns false: forwarded as any other.
        cache.serve(parsed, call.id, body, call.params)
    end
    if WITHHELD[call.method] then
        return spliced(api, body, {call}, {{start, #body + 1}}, false)
    end
    return ngx.exec(api.proxy)
end

local function batch(api, body, request, allowed, max_batch, start)
    ngx_var.zbi_method = BATCH_LABEL
    if #request == 0 then
        return text.refuse_request(400, -32600, "Invalid Request: an empty batch")
    end
    if #request > max_batch then
        return text.refuse_request(400, -32600, "Invalid Request: a batch holds at most " .. max_batch .. " calls")
    end
    local names = {}
    for i = 1, #request do
        local call = request[i]
        names[i] = type(call) == "table" and type(call.method) == "string" and text.prefix(call.method, 64) or "?"
    end
    ngx_var.zbi_methods = text.prefix(table.concat(names, ","), 200)
    local spans = text.elements(body, start)
    local calls, refused, withheld = {}, false, false
    for i = 1, #spans do
        calls[i] = check(body, spans[i], request[i], allowed, api.never)
        if calls[i].not_json then
            return text.refuse_request(400, -32700, "Parse error")
        end
        refused = refused or calls[i].refusal ~= nil
        withheld = withheld or (calls[i].method ~= nil and WITHHELD[calls[i].method] ~= nil)
    end
    if not charge(#calls - 1) then
        return text.refuse_request(429, -32005, "rate limit reached")
    end
    if not refused and not withheld then
        return ngx.exec(api.proxy)
    end
    return spliced(api, body, calls, spans, true)
end

-- content_by_lua: the body checked (gateway.js's jsonRpc()).
local function json_rpc()
    local caller = ngx.ctx.zbi_caller
    if ngx.req.get_method() ~= "POST" then
        return text.refuse_request(405, -32600, "JSON-RPC requests are POSTs")
    end
    -- lua-nginx-module 0.10.26 and later refuse to read an HTTP/2 body sent without a Content-Length (an error
    -- here, not an answer): told so in JSON-RPC rather than with nginx's HTML 500.
    if not pcall(ngx.req.read_body) then
        return text.refuse_request(411, -32600, "the body could not be read: send it with a Content-Length")
    end
    -- The body, in memory: nginx.conf's client_body_buffer_size is twice the largest body it accepts. A chunked
    -- body whose framing outgrows that buffer is written to a file nginx has already unlinked: refused, saying how
    -- to send it.
    local body = ngx.req.get_body_data()
    if body == nil and ngx.req.get_body_file() ~= nil then
        return text.refuse_request(413, -32600,
            "the body is framed larger than the gateway buffers: send it with Content-Length")
    end
    body = body or ""
    -- JSON is UTF-8 (RFC 8259, 8.1): a body that is not is no JSON, as the node's parser finds it; cjson takes its
    -- bytes, which the gateway would write back in an answer that is no JSON either.
    local request = text.utf8(body) and text.decode(body) or nil
    if request == nil then
        return text.refuse_request(400, -32700, "Parse error")
    end
    local api = ngx_var.uri == ZCASHD_PATH and ZCASHD_ROUTE or NODE_ROUTE
    local allowed = caller.profile.sets[api.methods]
    local start = text.skip_space(body, 1)
    if byte(body, start) == 91 then
        return batch(api, body, request, allowed, tonumber(caller.profile.maxBatch) or MAX_BATCH, start)
    end
    return single(api, body, request, allowed, start)
end

return {who = who, json_rpc = json_rpc}
