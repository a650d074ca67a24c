// zBI access gateway: JSON text (njs 0.7.9 / 0.8.x), for gateway.js, gateway_cache.js and gateway_splice.js, which
// all import it (so what they share costs no import of its own). Values are found without parsing numbers: each
// scanning function takes a text already known to be valid JSON (JSON.parse accepted it, or it is the node's
// answer) and returns spans [start, end) of its values, so that the gateway can forward or rewrite a value as the
// caller or the node wrote it. JSON-RPC answers the gateway writes itself are made here too.
//
// Written for njs, which frees nothing before the request ends: no binding is made per character (a `let` or
// `const` inside a loop over the text costs memory per iteration, ~17 bytes a character measured on a 3.9 MB
// answer), strings are skipped with indexOf, and nothing is copied but member names.

function skipSpace(s, i) {
    for (;;) {
        const c = s.charCodeAt(i);
        if (c !== 32 && c !== 9 && c !== 10 && c !== 13) {
            return i;
        }
        i++;
    }
}

function stringEnd(s, i) {
    let from = i + 1;
    for (;;) {
        const quote = s.indexOf('"', from);
        let slashes = 0;
        while (s.charCodeAt(quote - 1 - slashes) === 92) {
            slashes++;
        }
        if (slashes % 2 === 0) {
            return quote + 1;
        }
        from = quote + 1;
    }
}

function valueEnd(s, i) {
    let c = s.charCodeAt(i);
    if (c === 34) {
        return stringEnd(s, i);
    }
    if (c === 123 || c === 91) {
        let depth = 0;
        for (;;) {
            c = s.charCodeAt(i);
            if (c === 34) {
                i = stringEnd(s, i);
                continue;
            }
            if (c === 123 || c === 91) {
                depth++;
            } else if (c === 125 || c === 93) {
                depth--;
                if (depth === 0) {
                    return i + 1;
                }
            }
            i++;
        }
    }
    while (i < s.length) {
        c = s.charCodeAt(i);
        if (c === 44 || c === 93 || c === 125 || c === 32 || c === 9 || c === 10 || c === 13) {
            return i;
        }
        i++;
    }
    return i;
}

// The elements of the array whose text starts at `start`, as spans.
function elements(s, start) {
    const spans = [];
    let i = skipSpace(s, start + 1);
    if (s.charCodeAt(i) === 93) {
        return spans;
    }
    for (;;) {
        i = skipSpace(s, i);
        const end = valueEnd(s, i);
        spans.push([i, end]);
        i = skipSpace(s, end);
        if (s.charCodeAt(i) !== 44) {
            return spans;
        }
        i++;
    }
}

// The members of the object whose text starts at `start`: {names: {'$' + name: span}, duplicated, every: [every
// span of member `spansOf`, in order]} (a node's answer may give a name twice, and names keeps its last span).
function members(s, start, spansOf) {
    const names = {};
    const every = [];
    const gathered = spansOf === undefined ? null : '$' + spansOf;
    let duplicated = false;
    let i = skipSpace(s, start + 1);
    while (s.charCodeAt(i) !== 125) {
        const keyEnd = stringEnd(s, i);
        const name = '$' + JSON.parse(s.slice(i, keyEnd));
        i = skipSpace(s, skipSpace(s, keyEnd) + 1);
        const end = valueEnd(s, i);
        duplicated = duplicated || names[name] !== undefined;
        names[name] = [i, end];
        if (name === gathered) {
            every.push(names[name]);
        }
        i = skipSpace(s, end);
        if (s.charCodeAt(i) === 44) {
            i = skipSpace(s, i + 1);
        }
    }
    return {names: names, duplicated: duplicated, every: every};
}

// The span of member `name` of the object whose text starts at `start`, or undefined.
function member(s, start, name) {
    return members(s, start).names['$' + name];
}

// A JSON-RPC error answer; `rawId` is the caller's id as text (null: none).
function errorText(rawId, code, message) {
    return '{"result":null,"error":{"code":' + code + ',"message":' + JSON.stringify(message) + '},"id":' +
        (rawId === null ? 'null' : rawId) + '}';
}

function replyText(r, status, text) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, text);
}

function refuseRequest(r, status, code, message) {
    return replyText(r, status, errorText(null, code, message));
}

export default {skipSpace, elements, members, member, errorText, replyText, refuseRequest};
