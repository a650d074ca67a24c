"""The history cache at its edges, live (Debian's nginx + njs, the rendered configuration, the model node): a slow
node, a tip too old, a node that goes down or back, conditional headers, and calls written in ways the node would
read differently from their canonical form. Each case was found by an adversarial review of the cache."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_harness import KEYS, Gateway, running_gateway
from tests.history_node import HistoryNode, answer_text, start_history_node
from tests.test_gateway_payloads import post
from tests.test_history_cache_live import history_access
from tests.zcash_blocks import block
from zbi_infra.render.gateway_cache import TIP_SECONDS
from zbi_infra.render.gateway_engines import Engine

TIP = 3_000_000
# Short enough for a test to outwait; the rendered default is 10 s (TIP_MAX_AGE_SECONDS).
TIP_MAX_AGE = 3


@pytest.fixture(scope="module")
def setup(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, HistoryNode]]:
    node = start_history_node(TIP)
    directory = tmp_path_factory.mktemp("history-edges")
    try:
        with running_gateway(directory, node.address, None, history_cache=True, access_file=history_access(),
                             cache_tip_max_age_seconds=TIP_MAX_AGE, engine=engine) as gateway:  # fmt: skip
            yield gateway, node
    finally:
        node.stop()


def call(method: str, params: list[Any], id_: Any = 1, version: str | None = "2.0") -> dict[str, Any]:
    found: dict[str, Any] = {"method": method, "params": params, "id": id_}
    if version:
        found["jsonrpc"] = version
    return found


def ask(gateway: Gateway, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """(status, content type, body) of a raw POST as `exchange`."""
    connection = http.client.HTTPSConnection("127.0.0.1", gateway.port, context=gateway.context, timeout=60)
    auth = "Basic " + base64.b64encode(f"exchange:{KEYS['exchange']}".encode()).decode()
    try:
        connection.request("POST", "/", body=body, headers={"Authorization": auth, **(headers or {})})
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type") or "", answer.read()
    finally:
        connection.close()


def settle(node: HistoryNode) -> None:
    """The node is quick again and the gateway's tip is fresh."""
    node.delay[0] = 0.0
    time.sleep(TIP_MAX_AGE + 1.5)


def test_a_slow_node_is_asked_for_the_tip_once_while_hits_go_on(setup: tuple[Gateway, HistoryNode]) -> None:
    """With the node taking 2.5 s, ten hits after the tip expired: one asks the node for the next tip (and waits for
    it), the nine others are answered at once from the last tip; the node is asked for the tip once, not ten times."""
    gateway, node = setup
    stored = call("getblockhash", [100])
    assert post(gateway, json.dumps(stored).encode()) == (200, answer_text(stored, TIP))
    node.delay[0] = 2.5
    time.sleep(TIP_SECONDS + 1.1)  # nginx counts the tip's second in whole seconds
    tips = node.calls["getblockcount"]

    def timed(_: int) -> tuple[float, tuple[int, bytes]]:
        started = time.monotonic()
        answer = post(gateway, json.dumps(stored).encode())
        return time.monotonic() - started, answer

    try:
        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(timed, range(10)))
        asked = node.calls["getblockcount"] - tips
    finally:
        settle(node)
    assert [answer for _, answer in results] == [(200, answer_text(stored, TIP))] * 10
    assert asked == 1, f"{asked} getblockcount calls for 10 hits"
    durations = sorted(elapsed for elapsed, _ in results)
    assert durations[-2] < 1.5 <= durations[-1] + 1.0, durations


def test_a_tip_older_than_its_bound_sends_calls_to_the_node(setup: tuple[Gateway, HistoryNode]) -> None:
    """The node slower than the tip's age bound: while one call waits for the next tip, the last one is too old to
    use, so a stored call made meanwhile goes to the node (which answers it itself) instead."""
    gateway, node = setup
    stored = call("getblockhash", [101])
    post(gateway, json.dumps(stored).encode())
    node.delay[0] = TIP_MAX_AGE + 3
    try:
        time.sleep(TIP_MAX_AGE + 1.2)  # the last tip is past its bound
        with ThreadPoolExecutor(2) as pool:
            waiting = pool.submit(post, gateway, json.dumps(stored).encode())  # asks for the next tip
            time.sleep(0.5)
            asked = node.calls["getblockhash"]
            meanwhile = pool.submit(post, gateway, json.dumps(stored).encode())
            time.sleep(1.0)
            assert node.calls["getblockhash"] == asked + 1, "the call made meanwhile did not reach the node"
            assert meanwhile.result() == waiting.result() == (200, answer_text(stored, TIP))
    finally:
        settle(node)


def test_conditional_headers_never_turn_an_answer_into_304_or_412(setup: tuple[Gateway, HistoryNode]) -> None:
    gateway, _ = setup
    stored = call("getblockhash", [102])
    body = json.dumps(stored).encode()
    post(gateway, body)
    for header in ({"If-Match": '"x"'}, {"If-None-Match": "*"}, {"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"},
                   {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, {"Range": "bytes=0-3"}):  # fmt: skip
        assert ask(gateway, body, header) == (200, "application/json", answer_text(stored, TIP)), header


@pytest.mark.parametrize("version", ["toString", "constructor", "__proto__", ["2.0"], 2, None])
def test_odd_jsonrpc_members_get_json_never_an_html_page(setup: tuple[Gateway, HistoryNode], version: Any) -> None:
    gateway, _ = setup
    odd = {"jsonrpc": version, "method": "getblockhash", "params": [103], "id": 1}
    status, kind, answer = ask(gateway, json.dumps(odd).encode())
    assert kind == "application/json" and status < 500, (status, answer[:200])
    json.loads(answer)


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"2.0","method":"getblockhash","params":[1000.0],"id":1}',
        b'{"jsonrpc":"2.0","method":"getblockhash","params":[1e3],"id":1}',
        b'{"jsonrpc":"2.0","method":"getblockhash","params":[1000],"id":{"a":1}}',
        b'{"jsonrpc":"2.0","method":"getblockhash","params":[1000],"id":1.5}',
        b'{"jsonrpc":"2.0","method":"getblockhash","params":[1000],"id":-1}',
        b'{"jsonrpc":"2.0","method":"getblockhash","params":[1000],"id":"\\u0041"}',
        b'{"jsonrpc":"2.0","method":"getblockhash","params":[1000],"id":18446744073709551616}',
        b'{"jsonrpc":"2.0","method":"getblock","params":["1000", 1.0],"id":1}',
    ],
)
def test_calls_written_unlike_their_canonical_form_go_to_the_node(
    setup: tuple[Gateway, HistoryNode], body: bytes
) -> None:
    """A float, an exponent, an escaped or non-u64 id: the node might read these otherwise than the canonical call
    the cache would send, so the node answers them, every time."""
    gateway, node = setup
    method = json.loads(body)["method"]
    canonical = call(method, [1000] if method == "getblockhash" else ["1000", 1])
    post(gateway, json.dumps(canonical).encode())  # the canonical call is stored
    for _ in range(2):
        asked = node.calls[method]
        ask(gateway, body)
        assert node.calls[method] == asked + 1, body


def test_a_tip_below_a_stored_block_understates_its_depth_in_valid_json(setup: tuple[Gateway, HistoryNode]) -> None:
    """A node restored from an older state may report a tip below a block already stored by hash: the answer stays
    valid JSON and says `confirmations` 1, never more than the node could know."""
    gateway, node = setup
    real = block("block-main-0-419-201.bin.xz")
    by_hash = call("getblockheader", [real.hash, True])
    assert post(gateway, json.dumps(by_hash).encode())[0] == 200
    node.tip[0] = real.height - 5
    try:
        time.sleep(TIP_SECONDS + 1.1)
        status, answer = post(gateway, json.dumps(by_hash).encode())
        assert status == 200 and json.loads(answer)["result"]["confirmations"] == 1
        node.tip[0] = real.height + 10
        time.sleep(TIP_SECONDS + 1.1)
        status, answer = post(gateway, json.dumps(by_hash).encode())
        assert json.loads(answer)["result"]["confirmations"] == 11
    finally:
        node.tip[0] = TIP
        time.sleep(TIP_SECONDS + 1.1)


def test_a_node_that_goes_down_gets_the_callers_a_json_rpc_502(setup: tuple[Gateway, HistoryNode]) -> None:
    """The tip still fresh, the node failing (502 and a text body, as a proxy in front of a dead node): a cacheable
    call not yet stored is answered 502 with a JSON-RPC error, asking the node once, not again through its proxy."""
    gateway, node = setup
    post(gateway, json.dumps(call("getblockhash", [1])).encode())  # the tip is learned
    node.failing[0] = 502
    try:
        asked = node.calls["getblockhash"]
        status, kind, answer = ask(gateway, json.dumps(call("getblockhash", [2])).encode())
        assert (status, kind) == (502, "application/json") and json.loads(answer)["error"]["code"] == -32603
        assert node.calls["getblockhash"] == asked + 1
    finally:
        node.failing[0] = 0


@pytest.mark.parametrize("status", [200, 401, 503])
def test_a_fill_the_node_answers_without_json_crashes_no_worker(
    status: int, setup: tuple[Gateway, HistoryNode]
) -> None:
    """The node gives its tip but answers the fill with text (a proxy's error page, a 401): the filler says "not
    mine" and the caller's call goes to the node, whose answer the caller gets; nothing is stored. njs 0.7.9 crashed
    the worker there (an await among a call's arguments), and every connection on it dropped."""
    gateway, node = setup
    settle(node)
    crashes = gateway.log.read_text(errors="replace").count("exited on signal")
    unstored = call("getblockhash", [200 + status])
    node.failing_fills[0] = status
    try:
        answer = ask(gateway, json.dumps(unstored).encode())
    finally:
        node.failing_fills[0] = 0
    assert answer[0] == status and answer[2] == b"down"
    assert post(gateway, json.dumps(unstored).encode()) == (200, answer_text(unstored, TIP))
    time.sleep(0.3)
    assert gateway.log.read_text(errors="replace").count("exited on signal") == crashes


def test_a_fill_over_the_callers_rate_is_refused_in_json(engine: Engine, tmp_path: Path) -> None:
    """An answer above the stored size costs the node a second call (the caller's own, forwarded), charged to the
    caller: `slow` (one a second, burst 1) is refused with a JSON-RPC 429 once its bucket is empty. njs once let
    that call through uncharged (its subrequest's buffer overflowing ended the fill first), and the filler's 429
    reached the caller as an empty body."""
    node = start_history_node(TIP)
    try:
        with running_gateway(tmp_path, node.address, None, history_cache=True, access_file=history_access(),
                             cache_max_answer_bytes=64 * 1024, engine=engine) as gateway:  # fmt: skip
            slow = {"Authorization": "Basic " + base64.b64encode(f"slow:{KEYS['slow']}".encode()).decode()}
            # By height, so no verbose probe is charged first; after one cheap call, the bucket has one more.
            big = call("getblock", ["141042", 0])
            connection = http.client.HTTPSConnection("127.0.0.1", gateway.port, context=gateway.context, timeout=60)
            try:
                connection.request("POST", "/", body=json.dumps(call("getblockcount", [])).encode(), headers=slow)
                assert connection.getresponse().read()
                connection.request("POST", "/", body=json.dumps(big).encode(), headers=slow)
                answer = connection.getresponse()
                status, body = answer.status, answer.read()
            finally:
                connection.close()
            assert (status, json.loads(body)["error"]["code"]) == (429, -32005)
            assert node.calls["getblock"] == 1
    finally:
        node.stop()
