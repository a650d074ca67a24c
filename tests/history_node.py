"""A node that answers the history methods as zebrad does at v6.3.0, for the real blocks of tests/zcash_blocks.py, at
a tip the test moves: what changes with the tip changes here exactly as the vendored facts say
(tests/fixtures/upstream/zebra/rpc-immutable-fields.json: `confirmations` is depth + 1, of the block and of every
transaction of a verbosity-2 block, and of a mined transaction), and nothing else does.

Answers are JSON-RPC 2.0 envelopes (jsonrpsee's, as zebrad sends them) with HTTP 200, errors included. Heights that
no vendored block has get deterministic stand-ins (a hash from the height) so that deep-height calls can be
answered; the tests compare the gateway's answer with this node's answer to the same call at the same tip."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.conftest import UPSTREAM
from tests.gateway_harness import NODE_CREDENTIALS
from tests.loopback_server import reply_empty, reply_json, serve_in_background
from tests.zcash_blocks import VECTORS, Block, block, sha256d

FACTS = json.loads((UPSTREAM / "zebra" / "rpc-immutable-fields.json").read_text())
# Zebra's final depth (zebra-state MAX_BLOCK_REORG_HEIGHT + 1), as vendored.
FINAL_DEPTH = FACTS["final_depth"]


def stand_in_hash(height: int) -> str:
    return sha256d(b"zbi-stand-in" + height.to_bytes(4, "little"))[::-1].hex()


@dataclass
class HistoryNode:
    server: ThreadingHTTPServer
    tip: list[int]
    delay: list[float]
    calls: Counter[str] = field(default_factory=Counter)
    # Calls in progress at once: now, and the most seen.
    in_flight: list[int] = field(default_factory=lambda: [0])
    peak: list[int] = field(default_factory=lambda: [0])
    # When set, every call is answered with this HTTP status and a text body, as a proxy in front of a dead node.
    failing: list[int] = field(default_factory=lambda: [0])
    # When set, every call but getblockcount (the tip) is answered so: a node answering the gateway's fills with
    # something other than JSON while it still gives its tip.
    failing_fills: list[int] = field(default_factory=lambda: [0])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()


@cache
def verbose_of(height: int, verbosity: int) -> str:
    """A block's verbose answer without its tip-dependent fields, computed once (the node's own cost is its latency,
    set by the test, not this model's hashing)."""
    found = find_block(str(height))
    assert found is not None
    return json.dumps(found.verbose(verbosity))


def blocks() -> list[Block]:
    return [block(name) for name in sorted(VECTORS)]


def find_block(reference: str) -> Block | None:
    return next((b for b in blocks() if reference in (b.hash, str(b.height))), None)


@cache
def transactions_by_id() -> dict[str, tuple[Block, bytes]]:
    return {sha256d(tx)[::-1].hex(): (b, tx) for b in blocks() for tx in b.transactions()}


def find_transaction(txid: str) -> tuple[Block, bytes] | None:
    return transactions_by_id().get(txid)


def _height_of(reference: Any, tip: int) -> int | None:
    """zebra-state's HashOrHeight::new: a hash, a height, or a negative height counted back from the tip."""
    if not isinstance(reference, str):
        return None
    found = find_block(reference.lower())
    if found is not None:
        return found.height
    try:
        height = int(reference)
    except ValueError:
        return None
    return tip + 1 + height if height < 0 else height


def result_of(method: str, params: list[Any], tip: int) -> tuple[Any, tuple[int, str] | None]:
    """(result, None) or (None, (code, message)) for one call at `tip`."""
    not_found = (-8, "Block not found")
    if method == "getblockcount":
        return tip, None
    if method in ("getblock", "getblockheader"):
        height = _height_of(params[0] if params else None, tip)
        if height is None or height > tip or height < 0:
            return None, not_found
        found = find_block(str(height))
        confirmations = tip - height + 1
        if found is None:
            return None, not_found
        next_hash = {"nextblockhash": stand_in_hash(height + 1)} if height < tip else {}
        if method == "getblockheader":
            verbose = params[1] if len(params) > 1 else True
            if not verbose:
                return found.raw[: found.header_end].hex(), None
            return {**found.header(), "confirmations": confirmations, **next_hash}, None
        verbosity = params[1] if len(params) > 1 else 1
        if verbosity == 0:
            return found.raw.hex(), None
        verbose = json.loads(verbose_of(height, verbosity))
        if verbosity == 2:
            verbose["tx"] = [{**tx, "confirmations": confirmations} for tx in verbose["tx"]]
        return {**verbose, "confirmations": confirmations, **next_hash}, None
    if method == "getblockhash":
        height = params[0]
        if not isinstance(height, int) or height > tip:
            return None, not_found
        height = tip + 1 + height if height < 0 else height
        found = find_block(str(height))
        return (found.hash if found else stand_in_hash(height)), None
    if method == "getrawtransaction":
        located = find_transaction(str(params[0]).lower()) if params else None
        if located is None or located[0].height > tip:
            return None, (-5, "Transaction not found in mempool or best chain")
        mined, tx = located
        if not (params[1] if len(params) > 1 else 0):
            return tx.hex(), None
        return {"hex": tx.hex(), "height": mined.height, "confirmations": tip - mined.height + 1,
                "txid": sha256d(tx)[::-1].hex(), "blockhash": mined.hash, "blocktime": mined.header()["time"]}, None  # fmt: skip
    if method == "z_gettreestate":
        return treestate(params, tip)
    if method == "z_getsubtreesbyindex":
        return subtrees(params, tip)
    return None, (-32601, "Method not found")


def _hex_of(*parts: object) -> str:
    return sha256d(repr(parts).encode()).hex()


def treestate(params: list[Any], tip: int) -> tuple[Any, tuple[int, str] | None]:
    """z_gettreestate as zebra-rpc v6.3.0 shapes it (tests/fixtures/upstream/zebra/rpc-z-chain-queries.json): the
    block's hash, height and time, and its Sapling and Orchard `commitments` (`finalRoot`, `finalState`); nothing
    that depends on the tip. Tree contents are stand-ins, deterministic per height."""
    height = _height_of(params[0] if len(params) == 1 else None, tip)
    if height is None or height < 0 or height > tip:
        return None, (-8, "the requested block is not in the main chain")
    found = find_block(str(height))
    pools = {pool: {"commitments": {"finalRoot": _hex_of(pool, height), "finalState": "01" + _hex_of(pool, "state", height)}}
             for pool in ("sapling", "orchard")}  # fmt: skip
    time_of = found.header()["time"] if found else 1_477_648_033 + 75 * height
    return {"hash": found.hash if found else stand_in_hash(height), "height": height, "time": time_of, **pools}, None


# Where the model's subtrees end: subtree i of a pool completes at SUBTREE_START + i * SUBTREE_SPACING.
SUBTREE_START = 1_000_000
SUBTREE_SPACING = 2_000


def subtrees(params: list[Any], tip: int) -> tuple[Any, tuple[int, str] | None]:
    """z_getsubtreesbyindex: the complete subtrees from `start_index`, at most `limit` of them (every one up to the
    tip without a limit), each with its `root` and `end_height`."""
    pool, start = params[0], params[1]
    limit = params[2] if len(params) > 2 and params[2] is not None else 0xFFFF
    if pool not in ("sapling", "orchard", "ironwood"):
        return None, (-8, f"invalid pool name, must be one of: {['sapling', 'orchard', 'ironwood']}")
    found = []
    for index in range(start, start + limit):
        end = SUBTREE_START + index * SUBTREE_SPACING
        if end > tip:
            break
        found.append({"root": _hex_of(pool, "subtree", index), "end_height": end})
    return {"pool": pool, "start_index": start, "subtrees": found}, None


def answer_text(call: dict[str, Any], tip: int) -> bytes:
    """The node's answer to one call at `tip`, as bytes."""
    result, error = result_of(call["method"], call.get("params") or [], tip)
    envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": call.get("id")}
    if error is None:
        envelope["result"] = result
    else:
        envelope["error"] = {"code": error[0], "message": error[1]}
    return json.dumps(envelope).encode()


def start_history_node(tip: int) -> HistoryNode:
    tips, delay, calls = [tip], [0.0], Counter[str]()
    in_flight, peak, counting, failing, failing_fills = [0], [0], threading.Lock(), [0], [0]
    expected = "Basic " + base64.b64encode(NODE_CREDENTIALS.encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Authorization") != expected:
                reply_empty(self, 401)
                return
            call = json.loads(raw)
            with counting:
                calls[call["method"]] += 1
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            if delay[0]:
                time.sleep(delay[0])
            status = failing[0] or (failing_fills[0] if call["method"] != "getblockcount" else 0)
            if status:
                with counting:
                    in_flight[0] -= 1
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"down")
                return
            data = answer_text(call, tips[0])
            with counting:
                in_flight[0] -= 1
            reply_json(self, 200, data)

        def log_message(self, *args: object) -> None:
            pass

    server = serve_in_background(Handler, backlog=256)
    return HistoryNode(server, tips, delay, calls, in_flight, peak, failing, failing_fills)
