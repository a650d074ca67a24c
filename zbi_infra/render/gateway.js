// zBI access gateway, JSON-RPC side (njs 0.7+). Reads the user table and the node's credentials from files at
// request time, so a new ConfigMap or Secret takes effect without restarting anything.
// Identity: HTTP basic auth, the user's name and their key as the password; the table holds SHA-256 of keys only.
import fs from 'fs';
import crypto from 'crypto';

const TABLE = '__TABLE__';
const UPSTREAM_AUTH = '__UPSTREAM_AUTH__';
const UPSTREAM = '/_zbi_rpc_upstream';
// Never forwarded, whatever the user table says (zbi_infra.config.access.NEVER_EXPOSED and its prefixes).
const NEVER = __NEVER__;
const NEVER_PREFIXES = __NEVER_PREFIXES__;

function neverExposed(method) {
    return NEVER.indexOf(method) >= 0 || NEVER_PREFIXES.some(function (p) { return method.startsWith(p); });
}

function table() {
    return JSON.parse(fs.readFileSync(TABLE));
}

function today() {
    return new Date().toISOString().slice(0, 10);
}

const REFUSED = {user: '-', profile: null};
const REFUSED_LABEL = '(refused)';
const BATCH_LABEL = '(batch)';

function sha256(text) {
    return crypto.createHash('sha256').update(text).digest('hex');
}

// {user, profile} for the request: profile null means refused (bad, revoked or expired key, or no anonymous access).
// JSON-RPC clients send basic auth (user name, key as password); gRPC clients `authorization: Bearer <key>`.
function lookup(r) {
    const users = table();
    const header = r.headersIn['Authorization'] || '';
    if (!header) {
        return users.anonymous ? {user: 'anonymous', profile: users.anonymous} : REFUSED;
    }
    let key;
    let name = null;
    if (header.startsWith('Bearer ')) {
        key = header.slice(7).trim();
    } else if (header.startsWith('Basic ')) {
        const decoded = Buffer.from(header.slice(6), 'base64').toString();
        const colon = decoded.indexOf(':');
        if (colon < 0) {
            return REFUSED;
        }
        name = decoded.slice(0, colon);
        key = decoded.slice(colon + 1);
    } else {
        return REFUSED;
    }
    // An empty key is no key: never hash it (the SHA-256 of "" must not match a user, whatever the table says).
    if (!key) {
        return REFUSED;
    }
    const entry = users.users[sha256(key)];
    if (!entry || (name !== null && entry.name !== name) || (entry.expires && today() >= entry.expires)) {
        return REFUSED;
    }
    return {user: entry.name, profile: entry};
}

// Several variables of one request ask who made it: the table is read and the key hashed once per request.
function identify(r) {
    const known = r.variables.zbi_identity;
    if (known) {
        return JSON.parse(known);
    }
    const who = lookup(r);
    r.variables.zbi_identity = JSON.stringify(who);
    return who;
}

// js_set: the rate-limit key and bucket of the request ("" when refused: nothing to count).
function rateKey(r) {
    const who = identify(r);
    if (!who.profile) {
        return '';
    }
    return who.user === 'anonymous' ? 'anon:' + r.remoteAddress : 'user:' + who.user;
}

// js_set, read when the access log is written: who made the request, whatever its outcome.
function userName(r) {
    return identify(r).user;
}

function rateBucket(r) {
    const who = identify(r);
    return who.profile ? who.profile.bucket : '';
}

// js_set for gRPC calls: "ok", "unauthenticated" or "denied" (the method is the path's last segment).
function grpcVerdict(r) {
    const who = identify(r);
    if (!who.profile) {
        return 'unauthenticated';
    }
    const method = r.uri.split('/')[2] || '';
    const allowed = who.profile.grpc.indexOf(method) >= 0;
    r.variables.zbi_method = allowed ? method : REFUSED_LABEL;
    return allowed ? 'ok' : 'denied';
}

function upstreamAuth(r) {
    return 'Basic ' + Buffer.from(fs.readFileSync(UPSTREAM_AUTH).toString().trim()).toString('base64');
}

function rpcError(id, code, message) {
    return {result: null, error: {code: code, message: message}, id: id === undefined ? null : id};
}

function reply(r, status, value) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify(value));
}

async function forward(r, body) {
    const upstream = await r.subrequest(UPSTREAM, {method: 'POST', body: body});
    return upstream;
}

async function jsonRpc(r) {
    const who = identify(r);
    if (!who.profile) {
        r.headersOut['WWW-Authenticate'] = 'Basic realm="zbi"';
        return reply(r, 401, rpcError(null, -32600, 'a valid key is required: basic auth, user name and key'));
    }
    if (r.method !== 'POST') {
        return reply(r, 405, rpcError(null, -32600, 'JSON-RPC requests are POSTs'));
    }
    let request;
    try {
        request = JSON.parse(r.requestText || '');
    } catch (e) {
        return reply(r, 400, rpcError(null, -32700, 'Parse error'));
    }
    const allowed = who.profile.jsonRpc;
    const batch = Array.isArray(request);
    const calls = batch ? request : [request];
    if (calls.length === 0) {
        return reply(r, 400, rpcError(null, -32600, 'empty batch'));
    }
    const refused = calls.map(function (call) {
        const method = call && typeof call === 'object' ? call.method : undefined;
        return typeof method !== 'string' || neverExposed(method) || allowed.indexOf(method) < 0;
    });
    r.variables.zbi_methods = calls.map(function (c) { return c && c.method; }).join(',').slice(0, 200);
    // The metrics' method label takes only names from the allowlists, so clients cannot grow its cardinality.
    r.variables.zbi_method = batch ? BATCH_LABEL : (refused[0] ? REFUSED_LABEL : request.method);
    const refusal = function (call) {
        const method = call && typeof call === 'object' ? String(call.method) : '';
        return rpcError(call && call.id, -32601, 'method ' + method.slice(0, 64) + ' is not allowed for this key');
    };
    if (!batch && refused[0]) {
        return reply(r, 200, refusal(request));
    }
    const passed = calls.filter(function (c, i) { return !refused[i]; });
    let answers = [];
    if (passed.length > 0) {
        const upstream = await forward(r, JSON.stringify(batch ? passed : request));
        if (upstream.status >= 500 || upstream.status === 0) {
            return reply(r, 502, rpcError(batch ? null : request.id, -32603, 'the node is unavailable'));
        }
        if (!batch) {
            r.headersOut['Content-Type'] = 'application/json';
            return r.return(upstream.status, upstream.responseText);
        }
        try {
            answers = JSON.parse(upstream.responseText);
        } catch (e) {
            return reply(r, 502, rpcError(null, -32603, 'the node answered with invalid JSON'));
        }
        if (!Array.isArray(answers)) {
            return reply(r, 502, rpcError(null, -32603, 'the node did not answer the batch'));
        }
    }
    // Answers in the order of the request: forwarded calls matched by id, refused ones answered here.
    const byId = {};
    answers.forEach(function (a) { byId[JSON.stringify(a.id)] = a; });
    let next = 0;
    const merged = calls.map(function (call, i) {
        if (refused[i]) {
            return refusal(call);
        }
        const match = byId[JSON.stringify(call.id)];
        return match !== undefined ? match : answers[next++];
    });
    return reply(r, 200, merged);
}

export default {jsonRpc, grpcVerdict, rateKey, rateBucket, upstreamAuth, userName};
