"""What the gateway's cache costs a replica and the node, live (Debian's nginx + njs on loopback, the rendered
configuration, a node answering like zebrad v6.3.0 for real blocks): hits of the largest real block stream from the
volume in bounded memory whatever the number of callers; no caller waits for another's unstorable call; the extra
node call of a by-hash check is charged to the caller; fills past the replica's cap go to the node uncached."""

from __future__ import annotations

import base64
import json
import socket
import ssl
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
from tests.zcash_blocks import LARGEST, block
from zbi_infra.access_keys import key_hash
from zbi_infra.config.access import parse_access
from zbi_infra.config.instance import GATEWAY_MAX_CALLS_PER_CALLER
from zbi_infra.render.gateway_engines import Engine

TIP = 3_000_000
# Callers holding hits of the largest block open at once: two keys at their concurrency cap. Before hits streamed,
# each hit was read whole into njs, and these took the workers past 400 MiB.
HOLDERS = 2 * GATEWAY_MAX_CALLS_PER_CALLER
# What those holders may add to the workers' memory, streamed: nginx's buffers per request, not the answer.
STREAMED_GROWTH_MIB = 48


def nginx_rss_mib(directory: Path) -> float:
    """The resident memory of the nginx started with `directory`'s nginx.conf: master and workers."""
    conf = str(directory / "nginx.conf").encode()
    masters = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if conf in (entry / "cmdline").read_bytes():
                    masters.add(entry.name)
            except OSError:
                continue
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                if entry.name in masters or parent in masters:
                    status = (entry / "status").read_text()
                    total += int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
            except (OSError, StopIteration):
                continue
    return total / 1024


def held_request(gateway: Gateway, user: str, body: bytes) -> ssl.SSLSocket:
    """A TLS connection that sent `body` and read only the first bytes of the answer: the rest is held in flight."""
    context = ssl.create_default_context(cafile=str(gateway.certificate))
    raw = socket.create_connection(("127.0.0.1", gateway.port), timeout=20)
    connection = context.wrap_socket(raw, server_hostname="127.0.0.1")
    credentials = base64.b64encode(f"{user}:{KEYS[user]}".encode()).decode()
    connection.sendall(
        b"POST / HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        + f"Authorization: Basic {credentials}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert b" 200 " in connection.recv(16 * 1024).split(b"\r\n", 1)[0]
    return connection


def bounds_access() -> Any:
    base = history_access()
    users = [u.model_dump(by_alias=True, exclude_none=True) for u in base.users]
    users.append({"name": "metered", "keySha256": key_hash(KEYS["metered"]),
                  "rateLimit": {"requestsPerSecond": 1, "burst": 1}})  # fmt: skip
    return parse_access({"jsonRpc": {"methods": base.json_rpc.methods}, "users": users}, "access/history.yaml")


@pytest.fixture(scope="module")
def setup(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, HistoryNode]]:
    node = start_history_node(TIP)
    directory = tmp_path_factory.mktemp("history-bounds")
    try:
        with running_gateway(
            directory, node.address, None, history_cache=True, access_file=bounds_access(), engine=engine
        ) as gateway:
            yield gateway, node
    finally:
        node.stop()


def test_hits_of_the_largest_block_stream_in_bounded_memory(setup: tuple[Gateway, HistoryNode]) -> None:
    """Two keys, each at its cap of calls in progress, hold hits of the 3.87 MB block (verbosity 0) open: the
    workers grow by nginx's buffers, not by the answers (64 of them would be 247 MB)."""
    gateway, node = setup
    largest = block(LARGEST)
    call = {"jsonrpc": "2.0", "method": "getblock", "params": [largest.hash, 0], "id": "held"}
    body = json.dumps(call).encode()
    status, answer = post(gateway, body)  # filled now
    assert status == 200 and answer == answer_text(call, TIP) and len(answer) > 3_800_000
    asked = node.calls["getblock"]
    before = nginx_rss_mib(gateway.config_dir)
    held: list[ssl.SSLSocket] = []
    try:
        with ThreadPoolExecutor(16) as pool:
            held = list(pool.map(lambda i: held_request(gateway, ("exchange", "bench")[i % 2], body), range(HOLDERS)))
        time.sleep(1)
        grown = nginx_rss_mib(gateway.config_dir) - before
    finally:
        for connection in held:
            connection.close()
    assert node.calls["getblock"] == asked, "every held call was a hit"
    assert grown < STREAMED_GROWTH_MIB, f"{HOLDERS} held hits grew nginx by {grown:.0f} MiB"
    # Each hit, read to the end, is the node's answer with the caller's id (written as it streamed).
    status, answer = post(gateway, body.replace(b'"held"', b"12345678901234567890"))
    assert status == 200 and answer == answer_text({**call, "id": 12345678901234567890}, TIP)


def test_no_caller_waits_for_another_callers_unstorable_call(setup: tuple[Gateway, HistoryNode]) -> None:
    """Eight callers of a block by hash 11 below the tip (not final: never stored), at a node taking 0.4 s: the node
    answers them side by side, not one after another behind a cache lock."""
    gateway, node = setup
    recent = block("block-main-0-419-201.bin.xz")
    call = {"jsonrpc": "2.0", "method": "getblock", "params": [recent.hash, 1], "id": 1}
    node.tip[0] = recent.height + 10
    time.sleep(2.2)  # the gateway's micro-cached tip follows
    node.delay[0] = 0.4
    node.peak[0] = 0
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: post(gateway, json.dumps(call).encode()), range(8)))
    finally:
        node.delay[0] = 0.0
        node.tip[0] = TIP
        time.sleep(2.2)
    assert all(a == (200, answer_text(call, recent.height + 10)) for a in answers)
    assert node.peak[0] >= 4, f"the node saw at most {node.peak[0]} of the 8 calls at once"


def test_the_finality_check_of_a_by_hash_call_is_charged_to_the_caller(setup: tuple[Gateway, HistoryNode]) -> None:
    """`metered` may make one call a second, with a burst of one. A raw block by hash costs the node two calls on a
    miss (where the block is, then the block): the second is charged, so a second such call at once is refused; a
    verbose call (one node call) leaves room for the next. A hit costs the node nothing and is charged once."""
    gateway, node = setup
    first, second = block("block-main-0-000-002.bin.xz"), block("block-main-1-046-401.bin.xz")

    def raw(b: Any, version: str) -> bytes:
        return json.dumps({"jsonrpc": version, "method": "getblock", "params": [b.hash, 0], "id": 1}).encode()

    def verbose(b: Any) -> bytes:
        return json.dumps({"jsonrpc": "1.0", "method": "getblock", "params": [b.hash, 1], "id": 1}).encode()

    time.sleep(2.1)
    checks = node.calls["getblockheader"]
    assert [post(gateway, raw(b, "1.0"), user="metered")[0] for b in (first, second)] == [200, 429]
    assert node.calls["getblockheader"] == checks + 1
    time.sleep(2.1)
    assert [post(gateway, verbose(b), user="metered")[0] for b in (first, second)] == [200, 200]
    time.sleep(2.1)
    # Stored by the first miss: hits now, one call each, as any call.
    assert [post(gateway, raw(first, "1.0"), user="metered")[0] for _ in range(3)] == [200, 200, 429]
    # Without room for the check (a hit took the bucket's other call) the call is answered, once, and not stored.
    time.sleep(2.1)
    assert post(gateway, verbose(first), user="metered")[0] == 200
    checks, asked = node.calls["getblockheader"], node.calls["getblock"]
    call = json.loads(raw(second, "2.0"))
    assert post(gateway, raw(second, "2.0"), user="metered") == (200, answer_text(call, TIP))
    assert (node.calls["getblockheader"], node.calls["getblock"]) == (checks, asked + 1)
    time.sleep(2.1)
    assert post(gateway, raw(second, "2.0"), user="metered") == (200, answer_text(call, TIP))
    assert (node.calls["getblockheader"], node.calls["getblock"]) == (checks + 1, asked + 2)


def test_fills_past_the_replicas_cap_go_to_the_node_uncached(engine: Engine, tmp_path: Path) -> None:
    """A replica fills only `fillsAtOnce` misses at once (one here): the others are forwarded to the node as if there
    were no cache, answered in full, and stored by a later call."""
    node = start_history_node(TIP)
    try:
        with running_gateway(tmp_path, node.address, None, history_cache=True, cache_fills_at_once=1,
                             access_file=history_access(), engine=engine) as gateway:  # fmt: skip
            calls = [{"jsonrpc": "2.0", "method": "getblockhash", "params": [h], "id": h} for h in range(10, 14)]
            node.delay[0] = 0.5
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda c: post(gateway, json.dumps(c).encode()), calls))
            node.delay[0] = 0.0
            assert answers == [(200, answer_text(c, TIP)) for c in calls]
            first_round = node.calls["getblockhash"]
            assert first_round == 4
            for c in calls:
                post(gateway, json.dumps(c).encode())
            # The four overlapped: one was filled and stored, three went to the node uncached and fill now.
            assert node.calls["getblockhash"] - first_round == 3
            for c in calls:
                assert post(gateway, json.dumps(c).encode()) == (200, answer_text(c, TIP))
            assert node.calls["getblockhash"] - first_round == 3
    finally:
        node.stop()


def test_held_hits_leave_the_replica_serving(setup: tuple[Gateway, HistoryNode]) -> None:
    """While callers hold hits open, another call is answered at once (nothing waits on the held answers)."""
    gateway, _ = setup
    call = {"jsonrpc": "2.0", "method": "getblockhash", "params": [5], "id": 5}
    largest = json.dumps({"jsonrpc": "2.0", "method": "getblock", "params": [block(LARGEST).hash, 0], "id": 1})
    post(gateway, largest.encode())
    held = [held_request(gateway, "bench", largest.encode()) for _ in range(8)]
    try:
        assert post(gateway, json.dumps(call).encode()) == (200, answer_text(call, TIP))
    finally:
        for connection in held:
            connection.close()
