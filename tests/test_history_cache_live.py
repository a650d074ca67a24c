"""The gateway's cache of final-block answers, live: the rendered nginx.conf, gateway.js and gateway_cache.js in
Debian's nginx on loopback, in front of a node that answers like zebrad v6.3.0 for real blocks at a tip the test
moves (tests/history_node.py). A cached answer is the node's answer at the later tip, byte for byte; nothing near
the tip, no error, nothing but the cached methods is stored; keys are canonical; keys, allowlists and rate limits
apply to hits; hits are labelled in the mtail metrics."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_harness import KEYS, NODE_CREDENTIALS, Gateway, Metrics, running_gateway, running_mtail
from tests.history_node import FINAL_DEPTH, HistoryNode, answer_text, start_history_node
from tests.test_gateway_payloads import post
from tests.zcash_blocks import LARGEST, VECTORS, block, sha256d
from zbi_infra.access_keys import key_hash
from zbi_infra.config.access import AccessFile, parse_access
from zbi_infra.config.history import FINAL_DEPTH as CONFIGURED_FINAL_DEPTH
from zbi_infra.render.gateway_cache import TIP_SECONDS
from zbi_infra.render.gateway_engines import Engine

HISTORY = ["getblockcount", "getblock", "getblockheader", "getblockhash", "getrawtransaction"]
TIP = 3_000_000


def history_access() -> AccessFile:
    return parse_access(
        {
            "jsonRpc": {"methods": HISTORY},
            "users": [
                {"name": "exchange", "keySha256": key_hash(KEYS["exchange"]), "rateLimit": {"requestsPerSecond": 1000}},
                {"name": "analytics", "keySha256": key_hash(KEYS["analytics"]), "jsonRpc": ["getblockcount"]},
                {"name": "bench", "keySha256": key_hash(KEYS["bench"]),
                 "rateLimit": {"requestsPerSecond": 100_000, "burst": 100_000}},
                {"name": "slow", "keySha256": key_hash(KEYS["slow"]),
                 "rateLimit": {"requestsPerSecond": 1, "burst": 1}},
            ],
        },
        "access/history.yaml",
    )  # fmt: skip


@pytest.fixture(scope="module")
def setup(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, HistoryNode, Metrics]]:
    node = start_history_node(TIP)
    directory = tmp_path_factory.mktemp("history-cache")
    try:
        with running_mtail(directory / "mtail") as metrics, running_gateway(
            directory / "gateway", node.address, None, metrics_syslog=metrics.syslog, history_cache=True,
            access_file=history_access(), engine=engine,
        ) as gateway:  # fmt: skip
            yield gateway, node, metrics
    finally:
        node.stop()


def move_tip(node: HistoryNode, tip: int) -> None:
    """The node's tip moves; the gateway learns it once its micro-cached tip expires (TIP_SECONDS, counted by nginx
    in whole seconds)."""
    if node.tip[0] != tip:
        node.tip[0] = tip
        time.sleep(TIP_SECONDS + 1.1)


def ask(gateway: Gateway, call: dict[str, Any], user: str = "exchange") -> tuple[int, bytes]:
    return post(gateway, json.dumps(call).encode(), user=user)


def txid(tx: bytes) -> str:
    return sha256d(tx)[::-1].hex()


def calls_for(name: str) -> list[dict[str, Any]]:
    real = block(name)
    tx = real.transactions()[-1]
    found = [
        {"jsonrpc": "2.0", "method": "getblock", "params": [reference, verbosity], "id": f"{reference}-{verbosity}"}
        for reference in (real.hash, str(real.height))
        for verbosity in (0, 1, 2)
    ]
    found += [
        {"jsonrpc": "2.0", "method": "getblockheader", "params": [real.hash, verbose], "id": 7}
        for verbose in (True, False)
    ]
    found += [{"jsonrpc": "2.0", "method": "getrawtransaction", "params": [txid(tx), v], "id": 8} for v in (0, 1)]
    return found


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_a_hit_is_the_nodes_answer_at_the_later_tip(setup: tuple[Gateway, HistoryNode, Metrics], name: str) -> None:
    """Filled at one tip, served from the cache at a tip 500 blocks later: the answer is what the node itself says
    at that tip, byte for byte (confirmations of the block and of each transaction included), and the node is not
    asked again."""
    gateway, node, _ = setup
    calls = calls_for(name)
    start = node.tip[0]  # the tip the gateway last learned: each case starts where the previous one left it
    for call in calls:
        status, answer = ask(gateway, call)
        assert (status, answer) == (200, answer_text(call, start)), call
    asked = {k: v for k, v in node.calls.items() if k != "getblockcount"}
    move_tip(node, start + 500)
    for call in calls:
        status, answer = ask(gateway, call)
        assert status == 200 and answer == answer_text(call, start + 500), call
        if isinstance(json.loads(answer)["result"], dict) and "confirmations" in json.loads(answer)["result"]:
            assert json.loads(answer)["result"]["confirmations"] == start + 500 - block(name).height + 1
    # Only the getblockcount calls that taught the gateway the new tip reached the node.
    assert {k: v for k, v in node.calls.items() if k != "getblockcount"} == asked


def test_nothing_but_getblockcount_reaches_the_node_on_hits(setup: tuple[Gateway, HistoryNode, Metrics]) -> None:
    gateway, node, _ = setup
    real = block("block-main-0-419-201.bin.xz")
    call = {"jsonrpc": "2.0", "method": "getblock", "params": [real.hash, 1], "id": 1}
    ask(gateway, call)
    before = {k: v for k, v in node.calls.items() if k != "getblockcount"}
    for tip in (node.tip[0] + 1,):
        move_tip(node, tip)
        for _ in range(3):
            assert ask(gateway, call)[1] == answer_text(call, tip)
    assert {k: v for k, v in node.calls.items() if k != "getblockcount"} == before


def test_nothing_near_the_tip_is_cached(setup: tuple[Gateway, HistoryNode, Metrics]) -> None:
    """A block less than FINAL_DEPTH below the tip is asked of the node every time, by height or by hash (the
    hash's depth is learned from the node's answer); once the tip has moved past FINAL_DEPTH it is cached."""
    gateway, node, _ = setup
    assert FINAL_DEPTH == CONFIGURED_FINAL_DEPTH == 1000
    real = block("block-main-1-046-401.bin.xz")
    # Without a "jsonrpc" member: keys no other test fills (once final, an answer stays cached whatever the tip).
    by_height = {"method": "getblock", "params": [str(real.height), 1], "id": 1}
    by_hash = {"method": "getblockheader", "params": [real.hash.upper()], "id": 2}
    hashes = {"method": "getblockhash", "params": [real.height + 5], "id": 3}
    shallow_tip = real.height + FINAL_DEPTH - 1
    move_tip(node, shallow_tip)
    for call, method in ((by_height, "getblock"), (by_hash, "getblockheader"), (hashes, "getblockhash")):
        before = node.calls[method]
        for _ in range(3):
            assert ask(gateway, call)[1] == answer_text(call, shallow_tip)
        assert node.calls[method] - before == 3, method
    # One block later the block is final (getblockhash's height is still 5 blocks short).
    move_tip(node, shallow_tip + 1)
    before = dict(node.calls)
    for _ in range(3):
        for call in (by_height, by_hash, hashes):
            assert ask(gateway, call)[1] == answer_text(call, shallow_tip + 1)
    assert node.calls["getblock"] - before["getblock"] == 1
    assert node.calls["getblockheader"] - before["getblockheader"] == 1
    assert node.calls["getblockhash"] - before["getblockhash"] == 3
    # A height counted back from the tip is never cached, however deep.
    relative = {"jsonrpc": "2.0", "method": "getblock", "params": ["-2000", 0], "id": 4}
    before_get = node.calls["getblock"]
    for _ in range(2):
        ask(gateway, relative)
    assert node.calls["getblock"] - before_get == 2


def test_errors_and_unknown_methods_are_not_cached(setup: tuple[Gateway, HistoryNode, Metrics]) -> None:
    gateway, node, _ = setup
    tip = node.tip[0]
    unknown = {"jsonrpc": "2.0", "method": "getblock", "params": ["00" * 32, 1], "id": 1}
    missing_tx = {"jsonrpc": "2.0", "method": "getrawtransaction", "params": ["11" * 32, 1], "id": 2}
    count = {"jsonrpc": "2.0", "method": "getblockcount", "id": 3}
    before = dict(node.calls)
    for _ in range(2):
        for call in (unknown, missing_tx):
            status, answer = ask(gateway, call)
            assert status == 200 and answer == answer_text(call, tip) and b'"error"' in answer
    assert node.calls["getblock"] - before.get("getblock", 0) == 2
    # getrawtransaction: each call asks the node once (its verbose answer is the call itself).
    assert node.calls["getrawtransaction"] - before.get("getrawtransaction", 0) == 2
    # getblockcount is no cached method: it goes to the node, and follows its tip at once.
    for moved in (tip + 1, tip):
        node.tip[0] = moved
        assert json.loads(ask(gateway, count)[1])["result"] == moved


def test_keys_are_canonical(setup: tuple[Gateway, HistoryNode, Metrics]) -> None:
    """Member order, whitespace, a hash's case and the node's defaults (verbosity 1, verbose true) make one key;
    the id is the caller's own, as text (a 20-digit id survives)."""
    gateway, node, _ = setup
    tip = node.tip[0]
    real = block("block-main-0-000-002.bin.xz")
    spellings = [
        b'{"jsonrpc":"2.0","method":"getblock","params":["%s"],"id":1}' % real.hash.encode(),
        b'{ "id" : 12345678901234567890 ,\n "params" : [ "%s" , 1 ], "method":"getblock", "jsonrpc":"2.0"}'
        % real.hash.upper().encode(),
        b'{"params":["%s",1],"jsonrpc":"2.0","id":"x","method":"getblock"}' % real.hash.encode(),
    ]
    before = node.calls["getblock"]
    answers = [post(gateway, body) for body in spellings]
    assert node.calls["getblock"] - before <= 1
    for body, (status, answer) in zip(spellings, answers, strict=True):
        call = json.loads(body)
        assert status == 200 and answer == answer_text({**call, "params": [real.hash, 1]}, tip)
    assert b'"id": 12345678901234567890' in answers[1][1]
    # Another JSON-RPC version is another key (the node's envelope may differ).
    before = node.calls["getblock"]
    other = {"jsonrpc": "1.0", "method": "getblock", "params": [real.hash], "id": 1}
    for _ in range(2):
        assert ask(gateway, other)[1] == answer_text(other, tip)
    assert node.calls["getblock"] - before == 1


def test_keys_allowlists_and_rates_apply_to_hits(setup: tuple[Gateway, HistoryNode, Metrics]) -> None:
    gateway, _, _ = setup
    call = {"jsonrpc": "2.0", "method": "getblockhash", "params": [2], "id": 1}
    assert ask(gateway, call)[0] == 200  # cached now
    # No key, a wrong key, a method outside the caller's allowlist: refused as before.
    assert post(gateway, json.dumps(call).encode(), user=None)[0] == 401
    assert gateway.call(call, user="exchange", key="wrong-key")[0] == 401
    status, answer = ask(gateway, call, user="analytics")
    assert status == 200 and json.loads(answer)["error"]["code"] == -32601
    # `slow` may make one call a second with a burst of one: the third hit in a row is refused.
    outcomes = [ask(gateway, call, user="slow")[0] for _ in range(3)]
    assert outcomes == [200, 200, 429]


def test_hits_are_labelled_in_the_metrics(setup: tuple[Gateway, HistoryNode, Metrics]) -> None:
    gateway, node, metrics = setup

    def sample(outcome: str, method: str) -> float:
        key = (("__name__", "zbi_gateway_cache_requests_total"), ("method", method), ("outcome", outcome),
               ("user", "exchange"))  # fmt: skip
        return metrics.scrape().get(key, 0.0)

    def stored() -> float:
        return metrics.scrape().get((("__name__", "zbi_gateway_cache_stored_bytes_total"),), 0.0)

    # What earlier tests logged has arrived: two scrapes a second apart agree (bounded; syslog is slow under load).
    # Only the gateway's own series: mtail's self-metrics (lines read, timings) move on every scrape.
    def gateway_series() -> dict:
        return {key: value for key, value in metrics.scrape().items() if dict(key)["__name__"].startswith("zbi_")}

    settle = time.monotonic() + 20
    previous = gateway_series()
    while time.monotonic() < settle:
        time.sleep(1)
        current = gateway_series()
        if current == previous:
            break
        previous = current
    before = {o: sample(o, m) for o, m in (("hit", "getblockheader"), ("miss", "getblockheader"),
                                           ("pass", "getblockhash"))}  # fmt: skip
    stored_before = stored()
    real = block("block-main-0-419-201.bin.xz")
    call = {"jsonrpc": "2.0", "method": "getblockheader", "params": [str(real.height), False], "id": 1}
    for _ in range(4):
        ask(gateway, call)
    ask(gateway, {"jsonrpc": "2.0", "method": "getblockhash", "params": [node.tip[0] - 1], "id": 2})
    expected = {"hit": 3, "miss": 1, "pass": 1}
    deadline = time.monotonic() + 30  # mtail reads the log by syslog: slow on a loaded machine
    while time.monotonic() < deadline and any(
        sample(o, m) - before[o] < expected[o]
        for o, m in (("hit", "getblockheader"), ("miss", "getblockheader"), ("pass", "getblockhash"))
    ):
        time.sleep(0.2)
    seen = {o: sample(o, m) - before[o] for o, m in (("hit", "getblockheader"), ("miss", "getblockheader"),
                                                      ("pass", "getblockhash"))}  # fmt: skip
    assert seen == expected
    # The miss stored the header's hex, in its envelope.
    assert stored() - stored_before > 2 * real.header_end


def test_answers_above_the_cached_size_pass_whole(engine: Engine, tmp_path: Path) -> None:
    """With a 64 KiB ceiling: the largest real block's hex (3.9 MB) is answered whole, every time by the node; a
    small block's is cached."""
    node = start_history_node(TIP)
    try:
        with running_gateway(tmp_path, node.address, None, history_cache=True, cache_max_answer_bytes=64 * 1024,
                             access_file=history_access(), engine=engine) as gateway:  # fmt: skip
            large = {"jsonrpc": "2.0", "method": "getblock", "params": [block(LARGEST).hash, 0], "id": 1}
            small = {"jsonrpc": "2.0", "method": "getblock", "params": [block("block-main-0-000-002.bin.xz").hash, 0],
                     "id": 2}  # fmt: skip
            for _ in range(2):
                for call in (large, small):
                    status, answer = ask(gateway, call)
                    assert status == 200 and answer == answer_text(call, TIP)
            # The large one: asked by the filler and again by the proxy each time; the small one once.
            assert node.calls["getblock"] == 2 * 2 + 1
    finally:
        node.stop()


def test_the_filler_answers_only_the_nodes_credentials(setup: tuple[Gateway, HistoryNode, Metrics]) -> None:
    """The loopback server behind the cache asks the node with the node's credentials: like the relay, it
    refuses a caller that does not hold them."""
    gateway, _, _ = setup
    conf = (gateway.config_dir / "nginx.conf").read_text()
    (port,) = re.findall(
        r"listen 127\.0\.0\.1:(\d+);\n        access_log off;\n        location / \{\n            #", conf
    )
    path = f"http://127.0.0.1:{port}/2.0/getblockhash/2?tip={TIP}&fill=x"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(path, timeout=5)
    assert refused.value.code == 403
    request = urllib.request.Request(path, headers={"Authorization": "Basic " + base64.b64encode(b"a:b").decode()})
    with pytest.raises(urllib.error.HTTPError) as wrong:
        urllib.request.urlopen(request, timeout=5)
    assert wrong.value.code == 403
    good = "Basic " + base64.b64encode(NODE_CREDENTIALS.encode()).decode()
    with urllib.request.urlopen(urllib.request.Request(path, headers={"Authorization": good}), timeout=5) as answer:
        assert answer.status == 200 and answer.headers["X-Zbi-Stored"] == "1"
