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
// Who stores: nginx's proxy cache at /_zbi_cache/<canonical key>, whose upstream is this nginx's loopback "filler"
// server (fill() below). The filler asks the node, decides finality from the node's own answer, and marks an answer
// that must not be kept with X-Accel-Expires: 0, which nginx's proxy cache obeys.
import fs from 'fs';

const ENABLED = __ENABLED__;
const FINAL_DEPTH = __FINAL_DEPTH__;
const MAX_ANSWER = __MAX_ANSWER__;
const UPSTREAM_AUTH = '__UPSTREAM_AUTH__';
const CACHE = '/_zbi_cache/';
const TIP = '/_zbi_tip';
const NODE = '/_zbi_fill_node';
// Placeholders in stored answers: neither can occur in a node's JSON answer (checked before storing).
const ID = '@zbi:id@';
const CONFIRMATIONS = '@zbi:confirmations@';
const HASH = /^[0-9a-fA-F]{64}$/;
// A height as zebra-state parses it, in one spelling only: other spellings (signs, leading zeros) pass uncached.
const HEIGHT = /^(0|[1-9][0-9]{0,9})$/;
const VERSIONS = {'1.0': '1.0', '2.0': '2.0'};

function isCount(v, max) {
    return typeof v === 'number' && Math.floor(v) === v && v >= 0 && v <= max;
}

// A hash-or-height argument: {text, height (a number, or null for a hash)}, or null when not canonical.
function reference(v) {
    if (typeof v !== 'string') {
        return null;
    }
    if (HASH.test(v)) {
        return {text: v.toLowerCase(), height: null};
    }
    return HEIGHT.test(v) && Number(v) <= 0xffffffff ? {text: v, height: Number(v)} : null;
}

// Each cached method: the canonical arguments of its positional params (null: not cacheable as asked), in the
// order the filler sends them, with the node's defaults filled in (zebra-rpc methods.rs at v6.3.0). `settled`
// (the two z_ chain queries, whose answers carry nothing that changes with the tip) says from the node's answer
// whether it is about final blocks only (docs/history-cache.md).
const POOLS = ['sapling', 'orchard', 'ironwood'];
const METHODS = {
    getblock: function (p) {
        const ref = reference(p[0]);
        const verbosity = p.length > 1 ? p[1] : 1;
        if (!ref || p.length > 2 || [0, 1, 2].indexOf(verbosity) < 0) {
            return null;
        }
        return {args: [ref.text, verbosity], height: ref.height, verbose: verbosity > 0};
    },
    getblockheader: function (p) {
        const ref = reference(p[0]);
        const verbose = p.length > 1 ? p[1] : true;
        if (!ref || p.length > 2 || typeof verbose !== 'boolean') {
            return null;
        }
        return {args: [ref.text, verbose], height: ref.height, verbose: verbose};
    },
    getblockhash: function (p) {
        if (p.length !== 1 || !isCount(p[0], 0x7fffffff)) {
            return null;
        }
        return {args: [p[0]], height: p[0], verbose: false};
    },
    getrawtransaction: function (p) {
        const verbose = p.length > 1 ? p[1] : 0;
        if (typeof p[0] !== 'string' || !HASH.test(p[0]) || p.length > 2 || [0, 1].indexOf(verbose) < 0) {
            return null;
        }
        return {args: [p[0].toLowerCase(), verbose], height: null, verbose: verbose === 1};
    },
    z_gettreestate: function (p) {
        const ref = reference(p[0]);
        if (!ref || p.length !== 1) {
            return null;
        }
        return {args: [ref.text], height: ref.height, verbose: false, settled: function (result, tip) {
            return isCount(result.height, 0xffffffff) && tip - result.height >= FINAL_DEPTH &&
                (ref.height === null ? result.hash === ref.text : result.height === ref.height) ? result.height : null;
        }};
    },
    // Only with a limit, and only when that many subtrees came back, each ending in a final block: a shorter list
    // may grow as subtrees complete (or are rebuilt), and a subtree ending near the tip may be reorganised away.
    z_getsubtreesbyindex: function (p) {
        if (p.length !== 3 || POOLS.indexOf(p[0]) < 0 || !isCount(p[1], 0xffff) || !isCount(p[2], 0xffff) || p[2] < 1) {
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
    },
};

// The canonical form of a call: {path, height, verbose} or null (not cacheable as asked: forwarded uncached).
function canonical(call) {
    const shape = METHODS.hasOwnProperty(call.method) ? METHODS[call.method] : null;
    const version = call.jsonrpc === undefined ? 'none' : VERSIONS[call.jsonrpc];
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
    return ENABLED && METHODS.hasOwnProperty(method);
}

function reply(r, status, text) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, text);
}

// The tip this gateway learned at most TIP_SECONDS ago (nginx's micro-cache of the node's getblockcount), or null.
async function tipHeight(r) {
    try {
        const answer = await r.subrequest(TIP, {method: 'GET'});
        const tip = answer.status === 200 ? JSON.parse(answer.responseText).result : null;
        return isCount(tip, 0xffffffff) ? tip : null;
    } catch (e) {
        return null;
    }
}

// Answers the call from the cache and returns true, or returns false: the caller forwards the call as usual.
// `rawId` is the caller's id, as text (null for a notification, which is never served here).
async function serve(r, call, rawId) {
    const key = rawId === null ? null : canonical(call);
    r.variables.zbi_cache = 'pass';
    if (!key) {
        return false;
    }
    const tip = await tipHeight(r);
    if (tip === null || (key.height !== null && tip - key.height < FINAL_DEPTH)) {
        return false;
    }
    const fill = r.variables.request_id;
    let answer;
    try {
        // The request's id goes to the filler, which echoes it: a stored answer carries the id of the request that
        // filled it, so another id means a hit (nginx's add_header, and so $upstream_cache_status, skips subrequests).
        answer = await r.subrequest(CACHE + key.path, {method: 'GET', args: 'tip=' + tip + '&fill=' + fill});
    } catch (e) {
        return false;
    }
    if (answer.status !== 200 || answer.headersOut['X-Zbi-Status'] === undefined) {
        return false;
    }
    let text = answer.responseText.split(ID).join(rawId);
    if (answer.headersOut['X-Zbi-Stored'] === '1') {
        const height = Number(answer.headersOut['X-Zbi-Height']);
        text = text.split(CONFIRMATIONS).join(String(tip - height + 1));
        const hit = answer.headersOut['X-Zbi-Fill'] !== fill;
        r.variables.zbi_cache = hit ? 'hit' : 'miss';
        if (!hit) {
            r.variables.zbi_cache_bytes = String(answer.responseText.length);
        }
    }
    reply(r, Number(answer.headersOut['X-Zbi-Status']), text);
    return true;
}

// --- The filler: the proxy cache's upstream, on a loopback server of this nginx ---

// The span [start, end) of member `name` of the object whose text starts at `start`, or null (valid JSON only).
function member(s, start, name) {
    let i = space(s, start + 1);
    while (s.charCodeAt(i) !== 125) {
        const keyEnd = stringEnd(s, i);
        const key = JSON.parse(s.slice(i, keyEnd));
        i = space(s, space(s, keyEnd) + 1);
        const end = valueEnd(s, i);
        if (key === name) {
            return [i, end];
        }
        i = space(s, end);
        if (s.charCodeAt(i) === 44) {
            i = space(s, i + 1);
        }
    }
    return null;
}

function space(s, i) {
    while (' \t\n\r'.indexOf(s.charAt(i)) >= 0 && i < s.length) {
        i++;
    }
    return i;
}

function stringEnd(s, i) {
    let j = i + 1;
    for (;;) {
        const c = s.charCodeAt(j);
        if (c === 92) {
            j += 2;
        } else if (c === 34) {
            return j + 1;
        } else {
            j++;
        }
    }
}

function valueEnd(s, i) {
    const c = s.charCodeAt(i);
    if (c === 34) {
        return stringEnd(s, i);
    }
    if (c !== 123 && c !== 91) {
        let j = i;
        while (j < s.length && ',]} \t\n\r'.indexOf(s.charAt(j)) < 0) {
            j++;
        }
        return j;
    }
    let depth = 0;
    for (let j = i; ; j++) {
        const d = s.charCodeAt(j);
        if (d === 34) {
            j = stringEnd(s, j) - 1;
        } else if (d === 123 || d === 91) {
            depth++;
        } else if ((d === 125 || d === 93) && --depth === 0) {
            return j + 1;
        }
    }
}

// The spans of the elements of the array whose text starts at `start`.
function items(s, start) {
    const spans = [];
    let i = space(s, start + 1);
    while (s.charCodeAt(i) !== 93) {
        const end = valueEnd(s, i);
        spans.push([i, end]);
        i = space(s, end);
        if (s.charCodeAt(i) === 44) {
            i = space(s, i + 1);
        }
    }
    return spans;
}

// Replaces the given spans of `s` (non-overlapping) with `by`.
function replaceSpans(s, spans, by) {
    spans.sort(function (a, b) { return b[0] - a[0]; });
    spans.forEach(function (span) { s = s.slice(0, span[0]) + by + s.slice(span[1]); });
    return s;
}

async function ask(r, version, method, args) {
    const call = {id: 'zbi-cache', method: method, params: args};
    if (version !== 'none') {
        call.jsonrpc = version;
    }
    const body = JSON.stringify(call);
    const answer = await r.subrequest(NODE, {method: 'POST', body: body});
    let parsed = null;
    try {
        parsed = JSON.parse(answer.responseText);
    } catch (e) {
        parsed = null;
    }
    return {status: answer.status, text: answer.responseText, parsed: parsed, body: body};
}

// Is what the node said about a block or transaction final? Its own `confirmations` (depth + 1, -1 or 0 off the
// best chain) says so: at least FINAL_DEPTH + 1.
function finalByConfirmations(result) {
    return result !== null && typeof result === 'object' && isCount(result.height, 0xffffffff) &&
        isCount(result.confirmations, 0xffffffff) && result.confirmations >= FINAL_DEPTH + 1;
}

function send(r, status, text, stored, height) {
    r.headersOut['X-Zbi-Status'] = String(status);
    r.headersOut['X-Zbi-Stored'] = stored ? '1' : '0';
    r.headersOut['X-Zbi-Height'] = String(height === null ? -1 : height);
    r.headersOut['X-Zbi-Fill'] = r.args.fill || '-';
    if (!stored) {
        r.headersOut['X-Accel-Expires'] = '0';
    }
    reply(r, 200, text);
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
    const shape = METHODS.hasOwnProperty(method) ? METHODS[method](args) : null;
    if (!shape || !isCount(tip, 0xffffffff)) {
        return reply(r, 400, '');
    }
    // Non-verbose answers carry no height: the verbose form of the same call tells whether it is final.
    let height = shape.height;
    let final = height !== null && tip - height >= FINAL_DEPTH;
    if (!shape.verbose && height === null && (method === 'getblock' || method === 'getblockheader' ||
                                              method === 'getrawtransaction')) {
        const probe = method === 'getrawtransaction' ? await ask(r, version, method, [args[0], 1]) :
            await ask(r, version, 'getblockheader', [args[0], true]);
        const result = probe.parsed && !probe.parsed.error ? probe.parsed.result : null;
        final = finalByConfirmations(result);
        height = final ? result.height : null;
    }
    const answer = await ask(r, version, method, args);
    let text = answer.text;
    const start = space(text, 0);
    const idSpan = answer.parsed && text.charCodeAt(start) === 123 ? member(text, start, 'id') : null;
    // Not an answer to one call, or one holding a placeholder: the front forwards the call itself.
    if (idSpan === null || text.indexOf('@zbi:') >= 0) {
        return reply(r, 502, '');
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
        const resultSpan = member(text, start, 'result');
        conf.push(member(text, resultSpan[0], 'confirmations'));
        const txs = method === 'getblock' && shape.args[1] === 2 ? member(text, resultSpan[0], 'tx') : null;
        if (txs) {
            items(text, txs[0]).forEach(function (span) {
                const found = text.charCodeAt(span[0]) === 123 ? member(text, span[0], 'confirmations') : null;
                if (found) {
                    conf.push(found);
                }
            });
        }
    }
    const stored = okay && final && conf.every(function (c) { return c !== null; });
    if (stored && conf.length) {
        text = replaceSpans(text, conf, CONFIRMATIONS);
    }
    text = replaceSpans(text, [idSpan], ID);
    return send(r, answer.status, text, stored, stored ? height : null);
}

// js_content of the filler: any failure (the node down, an answer above MAX_ANSWER) is a 502, and the front then
// forwards the call itself.
// The node's credentials as the relay and the proxy send them; a caller of the filler's loopback port must present
// them, as the node itself would demand (read on the miss path only: a hit never reaches the filler).
function holdsNodeCredentials(r) {
    const credentials = fs.readFileSync(UPSTREAM_AUTH).toString().trim();
    return r.headersIn.Authorization === 'Basic ' + Buffer.from(credentials).toString('base64');
}

async function fill(r) {
    if (!holdsNodeCredentials(r)) {
        return reply(r, 403, '');
    }
    try {
        await fillFrom(r);
    } catch (e) {
        reply(r, 502, '');
    }
}

export default {serves, serve, fill};
