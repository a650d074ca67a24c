// zBI access gateway (njs 0.7.9 in the tests, 0.8.9 in the pod: ES5 plus let/const/async only).
// Reads the caller's entry of the user table from its file at request time, so a new ConfigMap takes effect without
// restarting anything: one small file per key, named by the key's SHA-256, so a request reads and parses only its
// own entry, whatever the number of users (njs keeps nothing across requests to cache a whole table in).
// Identity: HTTP basic auth, the user's name and their key as the password; the table holds SHA-256 of keys only.
//
// What reaches the node is the caller's own bytes: a single call or a wholly allowed batch is handed to nginx's
// proxy (internal redirect), which forwards the body as received and streams the node's answer, whatever its size
// and status. Only a batch with refused calls, or a call whose answer has members withheld, is rebuilt and its answer
// spliced: by gateway_splice.js, in a VM of its own, to which this module hands the checked calls (splice()).
import fs from 'fs';
import crypto from 'crypto';
// JSON values found as spans of text (shared with gateway_cache.js and gateway_splice.js).
import json from 'json_text.js';
// Answers about final blocks, from the gateway's cache (history.cache): rendered as an import of gateway_cache.js
// when the instance caches, else as null (serves nothing), since njs runs every imported module's top level again
// for each request (gateway.py's gateway_js).
__HISTORY__

// The user table's directory: `<KEY_FILE_PREFIX><sha256 of the key>.json` per key, ANONYMOUS_FILE for callers without.
const TABLE_DIR = '__TABLE_DIR__/';
const KEY_FILE_PREFIX = '__KEY_FILE_PREFIX__';
const ANONYMOUS_FILE = '__ANONYMOUS_FILE__';
const UPSTREAM_AUTH = '__UPSTREAM_AUTH__';
const METER = '/_zbi_meter';
const METER_AT_ONCE = 16;
const PROXY = '@zbi_rpc';
// The named location whose module (gateway_splice.js) rebuilds and splices.
const SPLICE = '@zbi_splice';
const MAX_BATCH = __MAX_BATCH__;
// gRPC calls' paths start with the light-wallet service's name.
const GRPC_PREFIX = '/__GRPC_SERVICE__/';

// The sets of names are switches, rendered from Python's lists (gateway.py): njs runs this module's top level again
// for every request, where an array literal is built element by element, and its indexOf compares at every offset;
// a switch costs nothing until called, then a comparison per name.

// Never forwarded, whatever the user table says (zbi_infra.config.access.NEVER_EXPOSED and its prefixes).
function neverListed(method) {
    switch (method) {
    __NEVER__
    }
    return false;
}

function neverPrefixed(method) {
    return __NEVER_PREFIXES__;
}

// Excepted from the prefixes: zebrad's read-only z_ chain queries (zbi_infra.config.access.Z_CHAIN_QUERIES).
function prefixException(method) {
    switch (method) {
    __PREFIX_EXCEPTIONS__
    }
    return false;
}

// The gRPC metadata a call may carry (zbi_infra.render.gateway: forwarded, or blanked by nginx.conf); any other
// name refuses the call, since nginx's gRPC proxy would pass it on.
function grpcHeader(name) {
    switch (name) {
    __GRPC_HEADERS__
    }
    return false;
}

// The members of a method's answers withheld from callers (null: none; gateway_splice.js replaces them): zebrad's
// getinfo `errors` is its last WARN/ERROR log line, verbatim.
function withheldFields(method) {
    switch (method) {
    __WITHHELD__
    }
    return null;
}

function neverExposed(method) {
    return neverListed(method) || (neverPrefixed(method) && !prefixException(method));
}

// The zcashd sidecar's JSON-RPC (Zakura's zcashd-compatibility mode) at its own path: its own method lists in the
// user table, its own never-forwarded list (zbi_infra.config.zcashd_methods: the never class, and the wallet class
// unless the instance's wallet is on), its own upstream. Everything else (keys, rates, batches) is shared.
function zcashdNever(method) {
    switch (method) {
    __ZCASHD_NEVER__
    }
    return false;
}

// Built for the request's own route only: objects at the top level would be built for every request.
function route(r) {
    if (r.uri === '__ZCASHD_PATH__') {
        return {node: false, methods: 'zcashdRpc', never: zcashdNever, proxy: '@zbi_zcashd'};
    }
    return {node: true, methods: 'jsonRpc', never: neverExposed, proxy: PROXY};
}

// The entry in `name` of the table's directory, or null when there is none (an unknown key, no anonymous access).
// Looked for without an exception: njs holds a thrown error's memory (tens of KiB) until the request ends, and a
// refused request lingers up to lingering_timeout, so a key guesser would cost a replica twice the memory.
function entryIn(name) {
    if (!fs.statSync(TABLE_DIR + name, {throwIfNoEntry: false})) {
        return null;
    }
    return JSON.parse(fs.readFileSync(TABLE_DIR + name, 'utf8'));
}

function today() {
    return new Date().toISOString().slice(0, 10);
}

function refused() {
    return {user: '-', profile: null, anonymous: false};
}
const REFUSED_LABEL = '(refused)';
const BATCH_LABEL = '(batch)';

function sha256(text) {
    return crypto.createHash('sha256').update(text).digest('hex');
}

// {user, profile, anonymous} for the request: profile null means refused (bad, empty, revoked or expired key, or no
// anonymous access). JSON-RPC clients send basic auth (user name, key as password); gRPC clients `Bearer <key>`.
function lookup(r) {
    const header = r.headersIn['Authorization'] || '';
    if (!header) {
        const anonymous = entryIn(ANONYMOUS_FILE);
        return anonymous ? {user: 'anonymous', profile: anonymous, anonymous: true} : refused();
    }
    let key;
    let name = null;
    if (header.startsWith('Bearer ')) {
        key = header.slice(7).trim();
    } else if (header.startsWith('Basic ')) {
        const decoded = Buffer.from(header.slice(6), 'base64').toString();
        const colon = decoded.indexOf(':');
        if (colon < 0) {
            return refused();
        }
        name = decoded.slice(0, colon);
        key = decoded.slice(colon + 1);
    } else {
        return refused();
    }
    // An empty key is no key: never hash it (the SHA-256 of "" must not match a user, whatever the table says).
    if (!key) {
        return refused();
    }
    // The name is hex digits only: no path can be made of a key.
    const entry = entryIn(KEY_FILE_PREFIX + sha256(key) + '.json');
    if (!entry || (name !== null && entry.name !== name) || (entry.expires && today() >= entry.expires)) {
        return refused();
    }
    return {user: entry.name, profile: entry, anonymous: false};
}

// The VM (and so this module's state) lives for one request: the table is read and the key hashed once per request,
// by the js_set below, and jsonRpc, in the same VM, reuses the answer.
let caller = null;

function identify(r) {
    if (caller === null) {
        caller = lookup(r);
    }
    return caller;
}

// The gRPC verdict of an identified caller: "ok", "denied" or "metadata" (the method is the path's last segment).
function grpcVerdict(r, who) {
    const method = r.uri.split('/')[2] || '';
    const allowed = who.profile.grpc.indexOf(method) >= 0;
    r.variables.zbi_method = allowed ? method : REFUSED_LABEL;
    if (!allowed) {
        return 'denied';
    }
    const unlisted = r.rawHeadersIn.some(function (h) { return !grpcHeader(h[0].toLowerCase()); });
    return unlisted ? 'metadata' : 'ok';
}

// js_set $zbi_who, the one njs call of a request before its body: "<verdict> <rate key> <bucket> <user>", which
// nginx's maps split into the variables its rate limits, caps and log read. The verdict is "ok" or
// "unauthenticated", and for gRPC calls "denied" or "metadata" too; a refused caller has no rate key ("-").
// User names are [a-z0-9._-] (zbi_infra.config.access), so a space never occurs inside a field.
function who(r) {
    const id = identify(r);
    if (!id.profile) {
        return 'unauthenticated - - -';
    }
    const verdict = r.uri.startsWith(GRPC_PREFIX) ? grpcVerdict(r, id) : 'ok';
    const rateKey = id.anonymous ? 'anon:' + r.remoteAddress : 'user:' + id.user;
    return verdict + ' ' + rateKey + ' ' + id.profile.bucket + ' ' + id.user;
}

// The node's credentials for the spliced path's ngx.fetch, read here and handed over with the calls, so that every
// file the gateway reads is named in this module.
function upstreamAuth(r) {
    return 'Basic ' + Buffer.from(fs.readFileSync(UPSTREAM_AUTH).toString().trim()).toString('base64');
}

// --- Answers ---

// A call, checked: {id: raw id text or null (a notification has none), method, refusal: error text or null,
// params: the span of its params member (undefined: none), which gateway_cache.js reads without a second scan}.
function check(text, span, parsed, allowed, never) {
    const call = {id: null, notification: true, method: null, refusal: null, invalid: true};
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        call.notification = false;
        call.refusal = json.errorText(null, -32600, 'Invalid Request: a call is an object');
        return call;
    }
    const found = json.members(text, span[0]);
    const id = found.names.$id;
    call.params = found.names.$params;
    if (id !== undefined) {
        call.notification = false;
        call.id = text.slice(id[0], id[1]);
        // The gateway writes the id back in its own answers: it must be JSON, which numbers njs's JSON.parse takes
        // ("1.", "01") are not. Such a body is no JSON.
        call.notJson = !strictId(call.id);
    }
    const method = parsed.method;
    if (found.duplicated) {
        call.refusal = json.errorText(call.id, -32600, 'Invalid Request: a member is given twice');
    } else if (typeof method !== 'string') {
        call.refusal = json.errorText(call.id, -32600, 'Invalid Request: the method is not a string');
    } else if (never(method) || allowed.indexOf(method) < 0) {
        call.invalid = false;
        call.refusal = json.errorText(call.id, -32601,
            'method ' + method.slice(0, 64) + ' is not allowed for this key');
    } else {
        call.method = method;
    }
    return call;
}

// Whether an id's text is JSON as the gateway may write it back: a number in JSON's own spelling; anything else
// JSON.parse accepted is (strings, literals).
function strictId(id) {
    const c = id.charCodeAt(0);
    return !(c === 45 || (c >= 48 && c <= 57)) || /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(id);
}

// A single call that passes, found without scanning its text: an object whose method is allowed and whose every
// member name occurs once. Each member of a JSON text, at any depth, has one ':' outside strings, so a text holding
// no more ':' than the call has members gives each name once (and holds no nested member, no ':' in a string).
// Anything else (a name given twice, or merely a ':' elsewhere) is left to check(), which scans; one split, where
// an indexOf per name would compare at every offset of the text (njs's indexOf). The split stops one part past a
// text with one ':' per member, so a body full of ':' costs no more parts than that.
// The id's text is not needed: the call goes to the node as it is.
function allowedAsIs(text, parsed, allowed, never) {
    if (parsed === null || typeof parsed !== 'object' || typeof parsed.method !== 'string' ||
        allowed.indexOf(parsed.method) < 0 || never(parsed.method)) {
        return null;
    }
    const count = Object.keys(parsed).length;
    if (text.split(':', count + 2).length !== count + 1) {
        return null;
    }
    return {id: null, notification: false, method: parsed.method, refusal: null, invalid: false};
}

// Charges `count` more calls to the caller's rate bucket (nginx counted the HTTP request itself as one).
// At most METER_AT_ONCE meter subrequests in flight: each holds a connection to the meter, and a batch of thousands
// at once took a worker past its worker_connections (a review's batch of 1,500: 481 connections refused, other
// clients' with them). The first refusal ends it.
async function charge(r, count) {
    for (let done = 0; done < count; done += METER_AT_ONCE) {
        const charges = [];
        for (let i = done; i < count && i < done + METER_AT_ONCE; i++) {
            charges.push(r.subrequest(METER, {method: 'GET'}));
        }
        const answers = await Promise.all(charges);
        if (!answers.every(function (a) { return a.status === 204; })) {
            return false;
        }
    }
    return true;
}

// Not async: a single call the proxy serves runs no promise machinery; what awaits (the cache, a batch's charges,
// splicing) is in the async functions it returns from.
function jsonRpc(r) {
    const who = identify(r);
    if (r.method !== 'POST') {
        return json.refuseRequest(r, 405, -32600, 'JSON-RPC requests are POSTs');
    }
    // The body, in memory: nginx.conf's client_body_buffer_size is twice the largest body it accepts. That buffer
    // holds a chunked body as framed, so one under the limit whose framing outgrows it (chunks under 5 bytes,
    // padded sizes, chunk extensions) is written to a file nginx has already unlinked. njs 0.8.10 and later (the
    // pods' 1.0.0) read it; earlier njs throws (undefined is no body): refused, saying how to send it.
    let text;
    try {
        text = r.requestText;
    } catch (e) {
        return json.refuseRequest(r, 413, -32600,
            'the body is framed larger than the gateway buffers: send it with Content-Length');
    }
    let request;
    try {
        // JSON is UTF-8 (RFC 8259, 8.1): a body that is not is no JSON, as the node's parser finds it. njs 0.7 keeps
        // its bytes, 0.8 and later put U+FFFD in their place, an id written back wrongly either way: a body with
        // more than ASCII is decoded strictly, which throws on such bytes (lengths tell nothing on 0.7's strings).
        if (text && /[^\x00-\x7f]/.test(text)) {
            new TextDecoder('utf-8', {fatal: true}).decode(r.requestBuffer);
        }
        request = JSON.parse(text || '');
    } catch (e) {
        return json.refuseRequest(r, 400, -32700, 'Parse error');
    }
    const api = route(r);
    const allowed = who.profile[api.methods] || [];
    const maxBatch = who.profile.maxBatch || MAX_BATCH;
    const start = json.skipSpace(text, 0);
    if (!Array.isArray(request)) {
        const method = request !== null && typeof request === 'object' ? request.method : undefined;
        // The cache holds the node's answers only, never the zcashd sidecar's (another program, other answers).
        const cacheable = api.node && history !== null && history.serves(method);
        // The fast path gives no id, which a cached answer needs: cacheable calls take the full check.
        const quick = cacheable ? null : allowedAsIs(text, request, allowed, api.never);
        const call = quick || check(text, [start, text.length], request, allowed, api.never);
        if (call.notJson) {
            return json.refuseRequest(r, 400, -32700, 'Parse error');
        }
        r.variables.zbi_methods = typeof method === 'string' ? method.slice(0, 200) : '';
        // The metrics' method label takes only names from the allowlists, so clients cannot grow its cardinality.
        r.variables.zbi_method = call.refusal ? REFUSED_LABEL : call.method;
        if (call.refusal) {
            return json.replyText(r, call.invalid ? 400 : 200, call.refusal);
        }
        if (cacheable) {
            return fromCache(r, api, text, request, call, start);
        }
        return forward(r, api, text, call, start);
    }
    r.variables.zbi_method = BATCH_LABEL;
    if (request.length === 0) {
        return json.refuseRequest(r, 400, -32600, 'Invalid Request: an empty batch');
    }
    if (request.length > maxBatch) {
        return json.refuseRequest(r, 400, -32600, 'Invalid Request: a batch holds at most ' + maxBatch + ' calls');
    }
    r.variables.zbi_methods = request.map(function (c) {
        return c && typeof c.method === 'string' ? c.method.slice(0, 64) : '?';
    }).join(',').slice(0, 200);
    const spans = json.elements(text, start);
    const calls = request.map(function (parsed, i) { return check(text, spans[i], parsed, allowed, api.never); });
    if (calls.some(function (c) { return c.notJson; })) {
        return json.refuseRequest(r, 400, -32700, 'Parse error');
    }
    return chargedBatch(r, api, calls, spans);
}

// A single call, checked, from the cache when it answers, else as any other.
async function fromCache(r, api, text, request, call, start) {
    if (await history.serve(r, request, call.id, text, call.params)) {
        return;
    }
    return forward(r, api, text, call, start);
}

// A single call, checked, to the node: as received, or through the splice when its answer has withheld members.
function forward(r, api, text, call, start) {
    if (withheldFields(call.method)) {
        return splice(r, [call], [[start, text.length]], false);
    }
    return toNode(r, api);
}

// A batch, checked: every call counts against the rate limit, forwarded or refused.
async function chargedBatch(r, api, calls, spans) {
    if (!(await charge(r, calls.length - 1))) {
        return json.refuseRequest(r, 429, -32005, 'rate limit reached');
    }
    const refused = calls.some(function (c) { return c.refusal; });
    const withheld = calls.some(function (c) { return withheldFields(c.method); });
    if (!refused && !withheld) {
        return toNode(r, api);
    }
    return splice(r, calls, spans, true);
}

// Hands the request, as received, to nginx's proxy, which adds the node's credentials itself (nginx.conf includes
// them from the Secret): nothing more runs in njs for it.
function toNode(r, api) {
    return r.internalRedirect(api.proxy);
}

// Hands the checked calls, their spans in the body, the members withheld from each call's answer and the node's
// credentials to gateway_splice.js, which reads
// the body again in its own VM, forwards the allowed calls and splices the node's answer with the refusals.
function splice(r, calls, spans, batch) {
    const withheld = calls.map(function (c) { return withheldFields(c.method); });
    r.variables.zbi_splice = JSON.stringify({batch: batch, calls: calls, spans: spans, withheld: withheld,
                                             auth: upstreamAuth(r)});
    return r.internalRedirect(SPLICE);
}

export default {jsonRpc, who};
