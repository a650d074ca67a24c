"""zebrad's two read-only z_ chain queries through the rendered gateway (Debian's nginx + njs on loopback), in front
of the model node (tests/history_node.py): an access file may allow exactly these two; their answers about final
blocks are cached and served as the node would answer at a later tip; nothing near the tip and no subtree list that
may still grow is cached; every other z_ method stays refused, even if the user table lists it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.gateway_harness import KEYS, Gateway, running_gateway
from tests.history_node import FINAL_DEPTH, SUBTREE_SPACING, SUBTREE_START, HistoryNode, answer_text, start_history_node
from tests.test_gateway_payloads import post
from tests.zcash_blocks import VECTORS, block
from zbi_infra.access_keys import key_hash
from zbi_infra.config.access import AccessFile, parse_access
from zbi_infra.render.gateway_cache import TIP_SECONDS
from zbi_infra.render.gateway_engines import Engine

Z_QUERIES = ["z_gettreestate", "z_getsubtreesbyindex"]
TIP = 3_000_000


def z_access() -> AccessFile:
    parsed = parse_access(
        {
            "jsonRpc": {"methods": ["getblockcount", *Z_QUERIES]},
            "users": [
                {"name": "exchange", "keySha256": key_hash(KEYS["exchange"]), "rateLimit": {"requestsPerSecond": 1000}},
                {"name": "analytics", "keySha256": key_hash(KEYS["analytics"]), "jsonRpc": ["getblockcount"]},
            ],
        },
        "access/z.yaml",
    )
    # A table that lists a wallet z_ method anyway (validation bypassed): the gateway itself must still refuse it.
    tampered = parsed.json_rpc.model_copy(update={"methods": [*parsed.json_rpc.methods, "z_validateaddress"]})
    return parsed.model_copy(update={"json_rpc": tampered})


@pytest.fixture(scope="module")
def setup(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, HistoryNode]]:
    node = start_history_node(TIP)
    directory = tmp_path_factory.mktemp("history-cache-z")
    try:
        with running_gateway(
            directory / "gateway", node.address, None, history_cache=True, access_file=z_access(), engine=engine
        ) as gateway:
            yield gateway, node
    finally:
        node.stop()


def move_tip(node: HistoryNode, tip: int) -> None:
    node.tip[0] = tip
    time.sleep(TIP_SECONDS + 1.1)


def ask(gateway: Gateway, call: dict[str, Any], user: str = "exchange") -> tuple[int, bytes]:
    return post(gateway, json.dumps(call).encode(), user=user)


def call(method: str, *params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": list(params), "id": f"{method}-{params}"}


def z_calls(node: HistoryNode) -> int:
    return sum(node.calls[m] for m in Z_QUERIES)


def test_a_cached_z_answer_is_the_nodes_at_a_later_tip(setup: tuple[Gateway, HistoryNode]) -> None:
    gateway, node = setup
    start = node.tip[0]
    deep = (start - FINAL_DEPTH - SUBTREE_START) // SUBTREE_SPACING  # the last subtree ending in a final block
    calls = [
        call("z_gettreestate", ref) for name in sorted(VECTORS) for ref in (block(name).hash, str(block(name).height))
    ]
    calls += [call("z_getsubtreesbyindex", "sapling", 0, 10), call("z_getsubtreesbyindex", "orchard", deep - 2, 3)]
    for each in calls:
        assert ask(gateway, each) == (200, answer_text(each, start)), each
    asked = z_calls(node)
    move_tip(node, start + 500)
    for each in calls:
        status, answer = ask(gateway, each)
        assert (status, answer) == (200, answer_text(each, start + 500)), each
        assert "error" not in json.loads(answer)
    assert z_calls(node) == asked  # every one a hit


def test_nothing_near_the_tip_and_no_list_that_may_grow_is_cached(setup: tuple[Gateway, HistoryNode]) -> None:
    gateway, node = setup
    tip = node.tip[0]
    last = (tip - SUBTREE_START) // SUBTREE_SPACING  # the newest complete subtree
    calls = [
        call("z_gettreestate", str(tip - FINAL_DEPTH + 1)),  # one block short of final
        call("z_getsubtreesbyindex", "sapling", last - 2, 10),  # fewer than the limit: the list may grow
        call("z_getsubtreesbyindex", "sapling", last - 1, 2),  # the limit reached, but the last ends near the tip
        call("z_getsubtreesbyindex", "orchard", 0),  # no limit: the list grows with the chain
    ]
    assert len(json.loads(answer_text(calls[2], tip))["result"]["subtrees"]) == 2
    for each in calls:
        before = z_calls(node)
        for _ in range(2):
            assert ask(gateway, each) == (200, answer_text(each, tip)), each
        assert z_calls(node) == before + 2, each  # both reached the node
    # The chain moves on: the list that was short now has its ten, and the gateway says what the node says.
    move_tip(node, tip + 10 * SUBTREE_SPACING)
    status, answer = ask(gateway, calls[1])
    assert (status, answer) == (200, answer_text(calls[1], tip + 10 * SUBTREE_SPACING))
    assert len(json.loads(answer)["result"]["subtrees"]) == 10


def test_other_z_methods_stay_refused_and_the_allowlist_applies(setup: tuple[Gateway, HistoryNode]) -> None:
    gateway, node = setup
    status, answer = ask(gateway, call("z_validateaddress", "t1Hsc1LR8yKnbbe3twRp88p6vFfC5t7DLbs"))
    assert status == 200 and json.loads(answer)["error"]["code"] == -32601
    assert node.calls["z_validateaddress"] == 0  # refused by the gateway, not the node
    # A cached answer is still only for users whose allowlist names the method.
    cached = call("z_gettreestate", str(block(sorted(VECTORS)[0]).height))
    assert ask(gateway, cached)[0] == 200
    before = z_calls(node)
    status, answer = ask(gateway, cached, user="analytics")
    assert status == 200 and json.loads(answer)["error"]["code"] == -32601
    assert z_calls(node) == before
