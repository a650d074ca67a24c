// zBI access gateway: the cache of answers about final blocks (history.cache), njs 0.7.9 / 0.8.x.
// gateway.js hands it single calls the caller may make; it answers them from nginx's proxy cache (a volume) when
// the answer can never change, and otherwise says "not mine" so gateway.js forwards the call as usual.
//
// Zebra v6.3.0 finalizes a block FINAL_DEPTH (1000) below its tip (zebra-state). An answer is stored only when it
// is about final data, was a success, and came from a call in canonical form; the fields that change with the tip
// (`confirmations`, of the block and of each transaction in it) are stored as a placeholder and computed again at
// serving time from the tip the gateway learned at most TIP_SECONDS ago (tests/fixtures/upstream/zebra/
// rpc-immutable-fields.json lists what changes, read at the tag).
//
// How a call is served: serve() learns the tip, sets the key, the tip and the caller's id in variables and hands the
// request to nginx's location @zbi_history, whose proxy cache answers from the volume, streamed, with sub_filter
// writing the caller's id and `confirmations()` into the placeholders as the answer passes (never read into njs,
// so a hit costs a replica nginx's buffers, not the answer's size). A miss goes to this nginx's loopback "filler"
// server (fill() below): it asks the node, decides finality from the node's own answer, and marks an answer that
// must not be kept with X-Accel-Expires: 0, which nginx's proxy cache obeys. The filler answers 555 when the
// call is not its to answer (the node down, an answer above MAX_ANSWER, the replica's fills at their cap); nginx's
// error_page then forwards the caller's own call to the node, as if there were no cache.
import fs from 'fs';
import json from 'json_text.js';

// Only numbers and strings are set at this module's top level: njs 0.7.9 runs it again in every request of an
// instance with the cache (gateway.js imports it), so the regular expressions, lists and the methods' table are made
// in the functions that use them, when called (docs/gateway-limits.md, "Nothing is built at the module's top level").
const ENABLED = __ENABLED__;
const FINAL_DEPTH = __FINAL_DEPTH__;
const MAX_ANSWER = __MAX_ANSWER__;
const UPSTREAM_AUTH = '__UPSTREAM_AUTH__';
const HISTORY = '@zbi_history';
const TIP = '/_zbi_tip';
// The loopback relay to the node (nginx.conf's), and what the filler reads of an answer at most: a little above
// what it stores, so an answer just over the bound still passes (unstored) without a second call.
const RELAY = 'http://127.0.0.1:__RELAY_PORT__/';
const MAX_READ = MAX_ANSWER + 64 * 1024;
const METER = '/_zbi_fill_meter';
// The filler's "not mine": the front forwards the caller's call to the node (nginx.conf's error_page).
const NOT_MINE = 555;
// The filler's "the node is down or timed out": the front answers as for any call the node cannot answer.
const NODE_DOWN = 556;
// Placeholders in stored answers: neither can occur in a node's JSON answer (checked before storing).
const ID = '@zbi:id@';
const CONFIRMATIONS = '@zbi:confirmations@';
// The tip is used while at most this old (nginx serves the last one while a slow node is asked for the next).
const TIP_MAX_AGE = __TIP_MAX_AGE__;

function isCount(v, max) {
    return typeof v === 'number' && Math.floor(v) === v && v >= 0 && v <= max;
}

// A block's or transaction's hash: 64 hex digits, in either case.
function isHash(v) {
    return typeof v === 'string' && /^[0-9a-fA-F]{64}$/.test(v);
}

// A hash-or-height argument: {text, height (a number, or null for a hash)}, or null when not canonical.
function reference(v) {
    if (typeof v !== 'string') {
        return null;
    }
    if (isHash(v)) {
        return {text: v.toLowerCase(), height: null};
    }
    // A height as zebra-state parses it, in one spelling only: other spellings (signs, leading zeros) pass uncached.
    return /^(0|[1-9][0-9]{0,9})$/.test(v) && Number(v) <= 0xffffffff ? {text: v, height: Number(v)} : null;
}

// A cached method's reader of its positional params (null: the method is not cached), which gives their canonical
// arguments (null: not cacheable as asked), in the order the filler sends them, with the node's defaults filled in
// (zebra-rpc methods.rs at v6.3.0). `settled` (the two z_ chain queries, whose answers carry nothing that changes
// with the tip) says from the node's answer whether it is about final blocks only (docs/history-cache.md).
function paramsReader(method) {
    switch (method) {
    case 'getblock':
        return function (p) {
            const ref = reference(p[0]);
            const verbosity = p.length > 1 ? p[1] : 1;
            if (!ref || p.length > 2 || [0, 1, 2].indexOf(verbosity) < 0) {
                return null;
            }
            return {args: [ref.text, verbosity], height: ref.height, verbose: verbosity > 0};
        };
    case 'getblockheader':
        return function (p) {
            const ref = reference(p[0]);
            const verbose = p.length > 1 ? p[1] : true;
            if (!ref || p.length > 2 || typeof verbose !== 'boolean') {
                return null;
            }
            return {args: [ref.text, verbose], height: ref.height, verbose: verbose};
        };
    case 'getblockhash':
        return function (p) {
            if (p.length !== 1 || !isCount(p[0], 0x7fffffff)) {
                return null;
            }
            return {args: [p[0]], height: p[0], verbose: false};
        };
    case 'getrawtransaction':
        return function (p) {
            const verbose = p.length > 1 ? p[1] : 0;
            if (!isHash(p[0]) || p.length > 2 || [0, 1].indexOf(verbose) < 0) {
                return null;
            }
            return {args: [p[0].toLowerCase(), verbose], height: null, verbose: verbose === 1};
        };
    case 'z_gettreestate':
        return function (p) {
            const ref = reference(p[0]);
            if (!ref || p.length !== 1) {
                return null;
            }
            return {args: [ref.text], height: ref.height, verbose: false, settled: function (result, tip) {
                return isCount(result.height, 0xffffffff) && tip - result.height >= FINAL_DEPTH &&
                    (ref.height === null ? result.hash === ref.text : result.height === ref.height) ?
                    result.height : null;
            }};
        };
    // Only with a limit, and only when that many subtrees came back, each ending in a final block: a shorter list
    // may grow as subtrees complete (or are rebuilt), and a subtree ending near the tip may be reorganised away.
    case 'z_getsubtreesbyindex':
        return function (p) {
            if (p.length !== 3 || ['sapling', 'orchard', 'ironwood'].indexOf(p[0]) < 0 || !isCount(p[1], 0xffff) ||
                !isCount(p[2], 0xffff) || p[2] < 1) {
                return null;
            }
            return {args: [p[0], p[1], p[2]], height: null, verbose: false, settled: function (result, tip) {
                const subtrees = result.subtrees;
                const full = result.pool === p[0] && result.start_index === p[1] && Array.isArray(subtrees) &&
                    subtrees.length === p[2];
                return full && subtrees.every(function (t) {
                    return t !== null && typeof t === 'object' && isCount(t.end_height, 0xffffffff) &&
                        tip - t.end_height >= FINAL_DEPTH;
                }) ? subtrees[subtrees.length - 1].end_height : null;
            }};
        };
    }
    return null;
}

// The canonical form of a call: {path, height, verbose} or null (not cacheable as asked: forwarded uncached).
function canonical(call) {
    const shape = paramsReader(call.method);
    const version = call.jsonrpc === undefined ? 'none' : (call.jsonrpc === '1.0' || call.jsonrpc === '2.0') &&
        call.jsonrpc;
    const params = call.params === undefined || call.params === null ? [] : call.params;
    if (!shape || !version || !Array.isArray(params)) {
        return null;
    }
    const found = shape(params);
    if (!found) {
        return null;
    }
    const path = [version, call.method].concat(found.args.map(function (a) { return encodeURIComponent(String(a)); }));
    return {path: path.join('/'), height: found.height, verbose: found.verbose};
}

// True when gateway.js should hand this allowed single call to serve().
function serves(method) {
    return ENABLED && paramsReader(method) !== null;
}

// The tip this gateway learned at most TIP_SECONDS ago (nginx's micro-cache of the node's getblockcount), or null.
async function tipHeight(r) {
    try {
        const answer = await r.subrequest(TIP, {method: 'GET'});
        // When the filler asked the node for it, by this nginx's clock.
        const age = Date.now() / 1000 - Number(answer.headersOut['X-Zbi-Tip-At']);
        const tip = answer.status === 200 && age <= TIP_MAX_AGE ? JSON.parse(answer.responseText).result : null;
        return isCount(tip, 0xffffffff) ? tip : null;
    } catch (e) {
        return null;
    }
}

// True when the call's id and params are written as the node would read the canonical call it sends (plain digits,
// true or false, strings without escapes; an id the node echoes as written: a string or a u64, jsonrpsee's Id;
// digits without a leading zero, which njs 0.7.9's JSON.parse would take and the answer would echo as no JSON).
// Anything else (1e3, 1000.0, an escaped or object id) goes to the node, which decides.
function plainlyWritten(text, params, rawId) {
    if (!/^(?:0|[1-9][0-9]{0,19}|"[^"\\]*")$/.test(rawId) || (rawId.length === 20 && rawId > '18446744073709551615')) {
        return false;
    }
    if (params === undefined || text.slice(params[0], params[1]) === 'null') {
        return true;
    }
    const plainParam = /^(?:0|[1-9][0-9]*|true|false|"[^"\\]*")$/;
    return text.charCodeAt(params[0]) === 91 && json.elements(text, params[0]).every(function (span) {
        return plainParam.test(text.slice(span[0], span[1]));
    });
}

// Hands the call to the cache (and returns true), or returns false: the caller forwards the call as usual.
// `rawId` is the caller's id, as text (null for a notification, which is never served here); `text` the body, and
// `params` the span of the call's params member in it (undefined: none), as gateway.js's check found it.
async function serve(r, call, rawId, text, params) {
    const key = rawId === null ? null : canonical(call);
    r.variables.zbi_cache = 'pass';
    // Request headers that would make nginx answer a cached response with 304 or 412 (or a part of it): such calls
    // go to the node, which ignores them, as they would with no cache.
    const conditional = ['If-Match', 'If-None-Match', 'If-Modified-Since', 'If-Unmodified-Since', 'If-Range', 'Range'];
    if (!key || !plainlyWritten(text, params, rawId) ||
        conditional.some(function (h) { return r.headersIn[h] !== undefined; })) {
        return false;
    }
    const tip = await tipHeight(r);
    if (tip === null || (key.height !== null && tip - key.height < FINAL_DEPTH)) {
        return false;
    }
    // nginx.conf's map turns "lookup" into hit, miss (stored now) or pass from the proxy cache's own status.
    r.variables.zbi_cache = 'lookup';
    r.variables.zbi_cache_key = '/' + key.path;
    r.variables.zbi_cache_tip = String(tip);
    r.variables.zbi_cache_id = rawId;
    r.internalRedirect(HISTORY);
    return true;
}

// js_set $zbi_confirmations, read by sub_filter as a stored answer streams out: the depth + 1 of the block it is
// about, at the tip serve() learned (the height is the stored answer's X-Zbi-Height header). A node whose tip fell
// below a block already final (restored from an older state) would not know the block: the answer then says 1,
// understating its depth as a stale tip does, never overstating it.
function confirmations(r) {
    const height = Number(r.variables.upstream_http_x_zbi_height);
    const tip = Number(r.variables.zbi_cache_tip);
    return isCount(height, 0xffffffff) && isCount(tip, 0xffffffff) ? String(Math.max(1, tip - height + 1)) :
        CONFIRMATIONS;
}

// --- The filler: the proxy cache's upstream, on a loopback server of this nginx ---

// Replaces the given spans of `s` (non-overlapping) with `by`, in one pass: njs frees nothing before the request
// ends, so a copy of the whole answer per span would cost a verbosity-2 block its size times its transactions.
function replaceSpans(s, spans, by) {
    spans.sort(function (a, b) { return a[0] - b[0]; });
    const pieces = [];
    let from = 0;
    spans.forEach(function (span) {
        pieces.push(s.slice(from, span[0]), by);
        from = span[1];
    });
    pieces.push(s.slice(from));
    return pieces.join('');
}

async function ask(r, version, method, args) {
    const call = {id: 'zbi-cache', method: method, params: args};
    if (version !== 'none') {
        call.jsonrpc = version;
    }
    const body = JSON.stringify(call);
    // Through the loopback relay, read up to MAX_READ: a larger answer fails this fetch (caught by the caller),
    // where a subrequest's buffer overflowing would end the filler's request before it could charge the caller.
    const answer = await ngx.fetch(RELAY, {method: 'POST', body: body, max_response_body_size: MAX_READ,
                                          headers: {'Authorization': nodeAuthorization(),
                                                    'Content-Type': 'application/json'}});
    const text = await answer.text();
    let parsed = null;
    try {
        parsed = JSON.parse(text);
    } catch (e) {
        parsed = null;
    }
    return {status: answer.status, text: text, parsed: parsed, body: body};
}

// Is what the node said about a block or transaction final? Its own `confirmations` (depth + 1, -1 or 0 off the
// best chain) says so: at least FINAL_DEPTH + 1.
function finalByConfirmations(result) {
    return result !== null && typeof result === 'object' && isCount(result.height, 0xffffffff) &&
        isCount(result.confirmations, 0xffffffff) && result.confirmations >= FINAL_DEPTH + 1;
}

// The node's status and answer (its id and tip-dependent fields as placeholders), and what the cache may keep.
function send(r, status, text, stored, height) {
    r.headersOut['X-Zbi-Stored'] = stored ? '1' : '0';
    r.headersOut['X-Zbi-Height'] = String(height === null ? -1 : height);
    if (!stored) {
        r.headersOut['X-Accel-Expires'] = '0';
    }
    json.replyText(r, status, text);
}

// One more call to the node charged to the caller's rate (the rate key and bucket the front sent): the
// finality check of a by-hash call, or a call asked again because its answer was above MAX_ANSWER.
async function charged(r) {
    try {
        return (await r.subrequest(METER, {method: 'GET'})).status === 204;
    } catch (e) {
        return false;
    }
}

// The filler's work for /<version>/<method>/<args...>?tip=N, reached only through the cache location.
async function fillFrom(r) {
    const parts = r.uri.split('/').slice(1).map(decodeURIComponent);
    const version = parts[0];
    const method = parts[1];
    const tip = Number(r.args.tip);
    const raw = parts.slice(2);
    const args = raw.map(function (a, i) {
        if (method === 'getblockheader' && i === 1) {
            return a === 'true';
        }
        const numeric = (method === 'getblock' || method === 'getrawtransaction') ? i === 1 :
            method === 'getblockhash' || (method === 'z_getsubtreesbyindex' && i > 0);
        return numeric ? Number(a) : a;
    });
    const reader = paramsReader(method);
    const shape = reader ? reader(args) : null;
    if (!shape || !isCount(tip, 0xffffffff)) {
        return json.replyText(r, 400, '');
    }
    // Non-verbose answers carry no height: the verbose form of the same call tells whether it is final.
    let height = shape.height;
    let final = height !== null && tip - height >= FINAL_DEPTH;
    // That costs the node one more call, charged to the caller: without room, the answer passes unstored.
    const byHash = !shape.verbose && height === null && (method === 'getblock' || method === 'getblockheader' ||
                                                         method === 'getrawtransaction');
    if (byHash && await charged(r)) {
        const probe = method === 'getrawtransaction' ? await ask(r, version, method, [args[0], 1]) :
            await ask(r, version, 'getblockheader', [args[0], true]);
        const result = probe.parsed && !probe.parsed.error ? probe.parsed.result : null;
        final = finalByConfirmations(result);
        height = final ? result.height : null;
    }
    let answer = null;
    try {
        answer = await ask(r, version, method, args);
    } catch (e) {
        answer = null;
    }
    // Unread here (above MAX_ANSWER, or the node down or not answering JSON): the front asks the node again, one
    // more call charged to the caller (over its rate: refused, as any call over it).
    if (answer !== null && answer.parsed === null && (answer.status === 502 || answer.status === 504)) {
        return json.replyText(r, NODE_DOWN, '');
    }
    if (answer === null || answer.parsed === null) {
        // Awaited on a line of its own: njs 0.7.9 takes an await among a call's arguments inside a block and then
        // crashes the worker running it (a review's node answering 503 to a fill took every connection with it).
        const room = await charged(r);
        return json.replyText(r, room ? NOT_MINE : 429, '');
    }
    let text = answer.text;
    const start = json.skipSpace(text, 0);
    const idSpan = text.charCodeAt(start) === 123 ? json.member(text, start, 'id') : undefined;
    // Not an answer to one call, or one holding a placeholder's text (anything sub_filter would take for one: it
    // matches without regard to case): the front forwards the call itself.
    if (!idSpan || /@zbi:/i.test(text)) {
        return json.replyText(r, NOT_MINE, '');
    }
    const okay = answer.status === 200 && !answer.parsed.error && answer.parsed.result !== null &&
        answer.parsed.result !== undefined && text.length <= MAX_ANSWER;
    const result = okay ? answer.parsed.result : null;
    const conf = [];
    if (okay && shape.verbose) {
        final = finalByConfirmations(result) && (shape.height === null || result.height === shape.height);
        height = final ? result.height : null;
    }
    if (okay && shape.settled) {
        height = typeof result === 'object' ? shape.settled(result, tip) : null;
        final = height !== null;
    }
    // The spans of the tip-dependent fields, in an answer already known to be a final block's (or transaction's)
    // object: its `confirmations`, and each transaction object's in a verbosity-2 block.
    if (okay && shape.verbose && final) {
        const fields = json.members(text, json.members(text, start).names.$result[0]).names;
        conf.push(fields.$confirmations);
        if (method === 'getblock' && shape.args[1] === 2 && fields.$tx) {
            json.elements(text, fields.$tx[0]).forEach(function (span) {
                const found = text.charCodeAt(span[0]) === 123 ? json.member(text, span[0], 'confirmations') : null;
                if (found) {
                    conf.push(found);
                }
            });
        }
    }
    const stored = okay && final && conf.every(function (c) { return c !== undefined; });
    if (stored && conf.length) {
        text = replaceSpans(text, conf, CONFIRMATIONS);
    }
    text = replaceSpans(text, [idSpan], ID);
    return send(r, answer.status, text, stored, stored ? height : null);
}

// The node's credentials as the relay and the proxy send them; a caller of the filler's loopback port must present
// them, as the node itself would demand (read on the miss path only: a hit never reaches the filler).
function nodeAuthorization() {
    const credentials = fs.readFileSync(UPSTREAM_AUTH).toString().trim();
    return 'Basic ' + Buffer.from(credentials).toString('base64');
}

function holdsNodeCredentials(r) {
    return r.headersIn.Authorization === nodeAuthorization();
}

// js_content of the filler: any other failure is "not mine", and the front forwards the call itself.
async function fill(r) {
    if (!holdsNodeCredentials(r)) {
        return json.replyText(r, 403, '');
    }
    try {
        await fillFrom(r);
    } catch (e) {
        json.replyText(r, NOT_MINE, '');
    }
}

export default {serves, serve, confirmations, fill};
