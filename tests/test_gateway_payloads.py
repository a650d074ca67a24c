"""The gateway at real payloads, live: real blocks (Zebra's test vectors, up to the ~1.9 MB Testnet block 141042)
answered by the tests' node at every `getblock` verbosity and passed whole; what was checked forwarded byte for byte;
batches answered call by call as JSON-RPC says; the node's own errors passed through; bodies near the limit read
whatever their framing. Rendered nginx.conf and njs in Debian's nginx on loopback, as in test_gateway_live."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.gateway_harness import KEYS, Gateway, gateway_before_a_node, node_answer, running_gateway
from tests.nginx_builds import njs_version
from tests.zcash_blocks import LARGEST, VECTORS, block
from zbi_infra.config.access import parse_access
from zbi_infra.config.instance import GatewayConfig
from zbi_infra.config.resources import ResourcesConfig, memory_mib
from zbi_infra.render.gateway import (
    DEFAULT_MEMORY_LIMIT_MIB,
    SPLICED_ANSWER_COST_BYTES,
    GatewayUpstreams,
    spliced_batches_cap,
)
from zbi_infra.render.gateway_engines import Engine
from zbi_infra.render.gateway_nginx import pod_files


@pytest.fixture(scope="module")
def gateway(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with gateway_before_a_node(tmp_path_factory.mktemp("gateway"), engine=engine) as running:
        yield running


def post(gateway: Gateway, body: bytes, user: str | None = "exchange", chunks: int = 0) -> tuple[int, bytes]:
    """The raw answer to a raw body (in `chunks` chunks of chunked transfer encoding when given)."""
    connection = http.client.HTTPSConnection("127.0.0.1", gateway.port, context=gateway.context, timeout=30)
    headers = {"Content-Type": "application/json"}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{KEYS[user]}".encode()).decode()
    try:
        if chunks:
            size = -(-len(body) // chunks)
            parts = iter([body[i : i + size] for i in range(0, len(body), size)])
            connection.request("POST", "/", body=parts, headers=headers, encode_chunked=True)
        else:
            connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_real_blocks_pass_whole_at_every_verbosity(gateway: Gateway, name: str) -> None:
    """Verbosity 0 is the block's hex (3.9 MB for the largest), 2 its transactions with their hex: what the node
    sends is what the caller gets, byte for byte (the old gateway dropped any answer over 4 KiB)."""
    real = block(name)
    for verbosity in (0, 1, 2):
        call = {"jsonrpc": "1.0", "method": "getblock", "params": [real.hash, verbosity], "id": verbosity}
        status, answer = post(gateway, json.dumps(call).encode())
        assert status == 200, answer[:300]
        assert answer == node_answer(call)[0], (name, verbosity)
    by_height = json.loads(
        post(gateway, json.dumps({"method": "getblock", "params": [str(real.height), 0]}).encode())[1]
    )
    assert bytes.fromhex(by_height["result"]) == real.raw


def test_a_batch_of_the_largest_blocks_streams_through(gateway: Gateway) -> None:
    """Three copies of the largest block at verbosity 2 and one at 0: about 15.5 MB in one answer."""
    largest = block(LARGEST)
    batch = [{"method": "getblock", "params": [largest.hash, v], "id": i} for i, v in enumerate((2, 2, 2, 0))]
    status, answer = post(gateway, json.dumps(batch).encode())
    assert status == 200 and len(answer) > 15_000_000
    assert answer == node_answer(batch)[0]


def test_a_batch_with_a_refused_call_is_spliced_from_the_nodes_text(gateway: Gateway) -> None:
    largest = block(LARGEST)
    batch = [
        {"method": "stop", "id": "refused"},
        {"method": "getblock", "params": [largest.hash, 2], "id": "big"},
        {"method": "getblockcount", "id": 7},
    ]
    status, answer = post(gateway, json.dumps(batch).encode())
    assert status == 200
    answers = json.loads(answer)
    assert [a["id"] for a in answers] == ["refused", "big", 7]
    assert answers[0]["error"]["code"] == -32601
    assert answers[1] == json.loads(node_answer(batch[1])[0]) and answers[2]["result"] == {"answered": "getblockcount"}
    # Beyond what the gateway holds in memory for a splice: one clean JSON-RPC error, never a closed connection.
    too_big = [{"method": "stop", "id": 0}] + [
        {"method": "getblock", "params": [largest.hash, 2], "id": i} for i in (1, 2, 3)
    ]
    status, answer = post(gateway, json.dumps(too_big).encode())
    assert status == 502 and "send the refused calls apart" in json.loads(answer)["error"]["message"]


def test_what_was_checked_is_forwarded_byte_for_byte(gateway: Gateway) -> None:
    """Numbers beyond a double (2^53 + 1, a 20-digit id, 1e400) reach the node as sent, and the id comes back."""
    raw = b'{"jsonrpc":"1.0","id":12345678901234567890,"method":"getblock","params":[9007199254740993, 1e400]}'
    status, answer = post(gateway, raw)
    assert gateway.node.received[-1] == raw
    # An unknown block: the node's own error, its HTTP 500 included, reaches the caller (not "node unavailable").
    assert status == 500 and json.loads(answer) == {
        "result": None,
        "error": {"code": -8, "message": "Block not found"},
        "id": 12345678901234567890,
    }
    # In a batch the gateway rebuilds (a call refused), the allowed call's own text is what is forwarded.
    element = b'{"method":"getblockcount","params":[9007199254740993,1e400, 0.1000000000000000055511151231257827],"id":12345678901234567890}'
    status, answer = post(gateway, b'[{"method":"stop","id":1},' + element + b"]")
    assert status == 200 and gateway.node.received[-1] == b"[" + element + b"]"
    assert b'"id": 12345678901234567890' in answer and json.loads(answer)[1]["id"] == 12345678901234567890


def test_batch_answers_are_matched_call_by_call(gateway: Gateway) -> None:
    batch = [
        {"method": "getblockcount", "id": 1},
        {"method": "stop", "id": 2},
        {"method": "getblockchaininfo", "id": 1},  # the same id twice: each call its own answer
        {"method": "getblockcount"},  # a notification: no answer
        {"method": "setban", "params": ["1.2.3.4"]},  # a refused notification: no answer either
        {"method": "getinfo", "id": 3},
    ]
    status, answer = post(gateway, json.dumps(batch).encode())
    answers = json.loads(answer)
    assert status == 200
    assert [a["id"] for a in answers] == [1, 2, 1, 3]
    assert answers[0]["result"] == {"answered": "getblockcount"}
    assert answers[1]["error"]["code"] == -32601
    assert answers[2]["result"] == {"answered": "getblockchaininfo"}
    assert answers[3]["result"]["errors"] == "withheld by the gateway"  # zebrad's last log line stays here
    # Only notifications: nothing to answer.
    status, answer = post(gateway, json.dumps([{"method": "getblockcount"}, {"method": "stop"}]).encode())
    assert (status, answer) == (204, b"")


def test_every_call_of_a_batch_counts_against_the_rate(gateway: Gateway) -> None:
    """`batcher` may make 1 call a second with a burst of 5: a batch of 5 spends the burst, the next is refused."""
    batch = json.dumps([{"method": "getblockcount", "id": i} for i in range(5)]).encode()
    assert post(gateway, batch, user="batcher")[0] == 200
    status, answer = post(gateway, batch, user="batcher")
    assert status == 429 and json.loads(answer)["error"]["code"] == -32005
    time.sleep(6.5)
    # A batch larger than the burst could never pass: it is refused at once, with one error.
    status, answer = post(
        gateway, json.dumps([{"method": "getblockcount", "id": i} for i in range(6)]).encode(), user="batcher"
    )
    assert status == 400 and "at most 5 calls" in json.loads(answer)["error"]["message"]


def test_an_oversized_or_malformed_batch_gets_one_error(gateway: Gateway) -> None:
    before = len(gateway.node.received)
    for body in (
        b"[" + b",".join([b"1"] * 5000) + b"]",
        json.dumps([{"method": "stop", "id": i} for i in range(101)]).encode(),
    ):
        status, answer = post(gateway, body, user=None)
        assert status == 400 and len(answer) < 200 and json.loads(answer)["error"]["code"] == -32600
    assert post(gateway, b"[]")[0] == 400
    assert len(gateway.node.received) == before


def test_a_chunked_body_near_the_limit_is_read(gateway: Gateway) -> None:
    """The harness's limit is 16 KiB: a chunked body just under it is read (not spilled where njs cannot read it)."""
    call = {"method": "getblockcount", "params": ["x" * (16 * 1024 - 100)], "id": 1}
    body = json.dumps(call).encode()
    assert len(body) < 16 * 1024
    status, answer = post(gateway, body, chunks=7)
    assert status == 200 and json.loads(answer)["result"] == {"answered": "getblockcount"}
    assert gateway.node.received[-1] == body


FRAMING_REFUSAL = "the body is framed larger than the gateway buffers: send it with Content-Length"


def framed_post(gateway: Gateway, body: bytes, chunk_line: bytes, size: int) -> tuple[int, bytes]:
    """`body` in chunks of `size` bytes whose size lines are `chunk_line % size`: valid HTTP/1.1 chunking."""
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    framed = b"".join(chunk_line % len(part) + b"\r\n" + part + b"\r\n" for part in parts) + b"0\r\n\r\n"
    authorization = base64.b64encode(f"exchange:{KEYS['exchange']}".encode())
    head = (b"POST / HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\nAuthorization: Basic " + authorization + b"\r\n\r\n")  # fmt: skip
    raw = socket.create_connection(("127.0.0.1", gateway.port), timeout=30)
    with gateway.context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(head + framed)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def test_a_chunked_body_is_read_in_small_chunks_and_refused_in_json_when_its_framing_outgrows_the_buffer(
    engine: Engine, gateway: Gateway
) -> None:
    """nginx's body buffer (twice the limit) holds a chunked body as framed: chunks of 5 bytes with plain sizes fit,
    and are read; padded sizes or chunk extensions can outgrow it, and nginx writes the body to a file it has already
    unlinked. njs 0.8.10 and later read that file (the pods' njs is 1.0.0): the call is answered as any other. Lua
    and older njs cannot: a JSON-RPC 413 that says how to send it, never nginx's HTML 500, and the node is not asked."""
    call = {"method": "getblockcount", "params": ["x" * (16 * 1024 - 100)], "id": 1}
    body = json.dumps(call).encode()
    assert len(body) < 16 * 1024
    status, answer = framed_post(gateway, body, b"%x", size=5)
    assert status == 200 and json.loads(answer)["result"] == {"answered": "getblockcount"}, answer[:300]
    assert gateway.node.received[-1] == body
    before = len(gateway.node.received)
    reads_spilled_bodies = engine == "njs" and njs_version() >= (0, 8, 10)
    for padded in (b"0" * 300 + b"%x", b"%x;extension=" + b"x" * 300):
        status, answer = framed_post(gateway, body, padded, size=129)
        if reads_spilled_bodies:
            assert status == 200 and json.loads(answer)["result"] == {"answered": "getblockcount"}, answer[:300]
            assert gateway.node.received[-1] == body
        else:
            assert status == 413, answer[:300]
            assert json.loads(answer)["error"] == {"code": -32600, "message": FRAMING_REFUSAL}
    assert len(gateway.node.received) == before + (2 if reads_spilled_bodies else 0)


def test_the_node_down_is_still_502(engine: Engine, tmp_path: Path) -> None:
    from tests.gateway_harness import free_port

    with running_gateway(tmp_path, f"127.0.0.1:{free_port()}", None, engine=engine) as down:
        for body in (b'{"method":"getblockcount","id":1}', b'[{"method":"stop","id":1},{"method":"getinfo","id":2}]'):
            status, answer = post(down, body)
            assert status == 502 and json.loads(answer)["error"]["message"] == "the node is unavailable", answer


def test_batches_with_refused_calls_are_spliced_only_so_many_at_once(gateway: Gateway) -> None:
    """Their answers are held in memory: past the replica's cap (from the pod's memory limit), a batch gets one
    JSON-RPC error (429), the others their answers; once they are done, the next passes again."""
    cap = spliced_batches_cap(DEFAULT_MEMORY_LIMIT_MIB)
    batch = json.dumps([{"method": "stop", "id": 1}, {"method": "getblockcount", "id": 2}]).encode()
    gateway.node.delay[0] = 1.5
    try:
        with ThreadPoolExecutor(cap + 4) as pool:
            outcomes = list(pool.map(lambda _: post(gateway, batch, user="bench"), range(cap + 4)))
    finally:
        gateway.node.delay[0] = 0.0
    spliced = [json.loads(answer) for status, answer in outcomes if status == 200]
    busy = [json.loads(answer) for status, answer in outcomes if status == 429]
    assert len(spliced) == cap and len(busy) == 4, [status for status, _ in outcomes]
    assert all(answers[1]["result"] == {"answered": "getblockcount"} for answers in spliced)
    assert all(answer["error"]["code"] == -32005 and "refused calls apart" in answer["error"]["message"]
               for answer in busy)  # fmt: skip
    status, answer = post(gateway, batch, user="bench")
    assert status == 200 and json.loads(answer)[1]["result"] == {"answered": "getblockcount"}


def test_the_splice_cap_follows_the_pods_memory_limit() -> None:
    """One source of truth: the gateway's memory limit in the instance's configuration sizes the cap nginx.conf
    enforces; twice the memory, twice the batches, and N x cost stays within a quarter of the limit."""
    caps = {}
    for limit in ("128Mi", "256Mi", "512Mi", "1Gi"):
        resources = ResourcesConfig(cpu="100m", memory="128Mi", memory_limit=limit)
        mib = memory_mib(resources.limits()["memory"])
        conf = pod_files(parse_access({"users": []}, "a.yaml"), GatewayUpstreams(rpc="node:8232"),
                         max_body_bytes=256 * 1024, metrics_syslog="127.0.0.1:514", memory_limit_mib=mib)["nginx.conf"]  # fmt: skip
        (caps[limit],) = (int(n) for n in re.findall(r"limit_conn zbi_spliced (\d+);", conf))
        assert caps[limit] * SPLICED_ANSWER_COST_BYTES <= mib * 1024 * 1024 // 4
    assert caps == {"128Mi": 2, "256Mi": 4, "512Mi": 8, "1Gi": 16}
    assert DEFAULT_MEMORY_LIMIT_MIB == memory_mib(GatewayConfig().resources.limits()["memory"]) == 256


def test_a_single_call_with_a_name_given_twice_is_refused_however_written(gateway: Gateway) -> None:
    """gateway.js passes a single call unscanned only when its text holds no more ':' than the call has members;
    any other is scanned. A name given twice is refused whatever else the text holds (an escape, a ':' in a string, a
    nested member, spaces around ':'), and a call that gives each name once passes as sent, whatever its ':'s."""
    for body in (
        b'{"method":"getblockcount","\\u006dethod":"stop","id":1}',
        b'{"method":"stop","params":["' + b":" * 10_000 + b'"],"method":"getblockcount"}',
        b'{"method":"stop","params":["a:b"],"method":"getblockcount","id":1}',
        b'{"method":"stop","params":[{"x":1}],"method":"getblockcount"}',
        b'{"method" : "stop", "method": "getblockcount"}',
    ):
        status, answer = post(gateway, body)
        assert status == 400 and b"twice" in answer, body
    for body in (
        b'{"method":"getblockcount","params":["a:b"],"id":1}',
        b'{"method":"getblockcount","params":[{"x":1,"x":2}],"id":"a:b"}',
        b'{ "jsonrpc" : "2.0" , "method" : "getblockcount" , "id" : 7 }',
        b'{"method":"getblockcount","params":["' + b":" * 10_000 + b'"],"id":1}',
    ):
        before = len(gateway.node.received)
        status, _ = post(gateway, body)
        assert status == 200 and gateway.node.received[before:] == [body], body
