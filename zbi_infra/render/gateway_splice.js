// zBI access gateway, the spliced path (njs, as gateway.js): a batch with refused calls, or a call whose answer has
// members withheld (getinfo). gateway.js checks the calls and hands them over by an internal redirect to the named
// location whose only module this is, so no other request runs this module's top level (njs runs every imported
// module's top level again in each request's VM). Here, in a VM of its own, the allowed calls are rebuilt from
// their own text, sent to the node through the loopback relay, and its answer spliced element by element: numbers
// are never parsed and printed again.
// JSON values found as spans of text (shared with gateway.js and gateway_cache.js).
import json from 'json_text.js';

// The node, for answers njs must read: through this nginx's loopback relay (ngx.fetch takes an address, not a
// DNS name), whose answers above MAX_ANSWER fail the fetch here instead of closing the caller's connection.
const RELAY = 'http://__RELAY__/';
const MAX_ANSWER = __MAX_ANSWER__;
const WITHHELD_TEXT = '"withheld by the gateway"';
// The zcashd sidecar's path: its calls go to the relay's zcashd paths (gateway_zcashd.py).
const ZCASHD_PATH = '__ZCASHD_PATH__';

// The answer's text with the members `fields` (null: none) of its result replaced (it is the node's JSON, so valid).
function withhold(text, fields) {
    const start = json.skipSpace(text, 0);
    if (!fields || text.charCodeAt(start) !== 123) {
        return text;
    }
    const result = json.members(text, start).names.$result;
    if (!result || text.charCodeAt(result[0]) !== 123) {
        return text;
    }
    // Every occurrence of each field (a name given twice in the node's answer is withheld twice).
    const cuts = [];
    fields.forEach(function (f) {
        json.members(text, result[0], f).every.forEach(function (span) { cuts.push(span); });
    });
    cuts.sort(function (a, b) { return b[0] - a[0]; });
    cuts.forEach(function (span) { text = text.slice(0, span[0]) + WITHHELD_TEXT + text.slice(span[1]); });
    return text;
}

// js_content of the spliced path. $zbi_splice holds what gateway.js found: {batch, calls, spans, withheld, auth}, the
// calls checked ({id: raw id text or null, notification, method, refusal: error text or null}), each call's span in
// the body, the members withheld from each call's answer (null: none), and the node's credentials. Only njs sets
// the variable, and only gateway.js redirects here.
// Forwards the allowed calls (their own text) to the node and answers with the node's answers, each in its call's
// place, the refusals in theirs; a notification gets no answer.
async function forwardAndSplice(r) {
    const handed = JSON.parse(r.variables.zbi_splice);
    // The request's body, in memory as gateway.js read it (nginx keeps it across the internal redirect).
    const text = r.requestText;
    const calls = handed.calls;
    const spans = handed.spans;
    const batch = handed.batch;
    const forwarded = [];
    calls.forEach(function (c, i) {
        if (!c.refusal) {
            forwarded.push(i);
        }
    });
    const answers = {};
    let status = 200;
    if (forwarded.length > 0) {
        const parts = forwarded.map(function (i) { return text.slice(spans[i][0], spans[i][1]); });
        let upstream;
        let answer;
        try {
            // A batch's answer is held whole: the relay's /batch admits only so many at once per replica.
            const relay = r.uri === ZCASHD_PATH ? RELAY + 'zcashd/' : RELAY;
            upstream = await ngx.fetch(batch ? relay + 'batch' : relay, {
                method: 'POST',
                body: batch ? '[' + parts.join(',') + ']' : parts[0],
                headers: {'Authorization': handed.auth, 'Content-Type': 'application/json'},
                max_response_body_size: MAX_ANSWER,
            });
            answer = await upstream.text();
        } catch (e) {
            return json.refuseRequest(r, 502, -32603, 'the node\'s answers exceed ' + MAX_ANSWER + ' bytes or the ' +
                'node is unavailable: send the refused calls apart, so the rest streams unbuffered, or split the ' +
                'batch');
        }
        let valid = true;
        try {
            JSON.parse(answer);
        } catch (e) {
            valid = false;
        }
        if (!valid) {
            if (upstream.status === 502 || upstream.status === 504) {
                return json.refuseRequest(r, 502, -32603, 'the node is unavailable');
            }
            return json.refuseRequest(r, 502, -32603, 'the node answered with invalid JSON');
        }
        status = upstream.status;
        const begin = json.skipSpace(answer, 0);
        if (!batch) {
            return json.replyText(r, status, withhold(answer, handed.withheld[0]));
        }
        if (answer.charCodeAt(begin) !== 91) {
            // The node refused the batch as a whole: its answer is the caller's.
            return json.replyText(r, status, answer);
        }
        // By id, in the node's order: duplicate ids are answered in turn, as the node answered them.
        json.elements(answer, begin).forEach(function (span) {
            const id = json.members(answer, span[0]).names.$id;
            const key = '$' + (id ? answer.slice(id[0], id[1]) : 'null');
            (answers[key] = answers[key] || []).push(answer.slice(span[0], span[1]));
        });
    }
    // An answer is matched to a call by id, in the node's order: calls sharing an id share what is withheld from
    // their answers, so an answer the node gives out of order never escapes its method's withholding.
    const withheldById = {};
    calls.forEach(function (c, i) {
        if (handed.withheld[i] && !c.refusal && !c.notification) {
            const key = '$' + c.id;
            withheldById[key] = (withheldById[key] || []).concat(handed.withheld[i]);
        }
    });
    const out = [];
    calls.forEach(function (c, i) {
        if (c.notification) {
            return;
        }
        if (c.refusal) {
            out.push(c.refusal);
            return;
        }
        const queue = answers['$' + c.id];
        const answer = queue && queue.shift();
        out.push(answer ? withhold(answer, withheldById['$' + c.id] || null) :
            json.errorText(c.id, -32603, 'the node did not answer this call'));
    });
    if (out.length === 0) {
        return r.return(204);
    }
    return json.replyText(r, status, '[' + out.join(',') + ']');
}

export default {forwardAndSplice};
