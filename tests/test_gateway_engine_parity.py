"""What a review of the Lua engine found, live on both engines: a caller without a key cannot hold a worker with a
long header; a body with a control character is no JSON (cjson alone would stop at a NUL and forward the rest
unchecked); getinfo's withheld member stays withheld whatever order the node answers a batch in, and however many
times the node gives it; the gateway's own answers name a refused method as njs writes it (whole characters, `/`
unescaped)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway_harness import (
    KEYS,
    Gateway,
    Node,
    gateway_before_a_node,
    nginx_cpu_seconds,
)
from zbi_infra.access_keys import key_hash
from zbi_infra.config.access import parse_access
from zbi_infra.render.gateway_engines import Engine

EXCHANGE = "Basic " + __import__("base64").b64encode(f"exchange:{KEYS['exchange']}".encode()).decode()


@pytest.fixture(scope="module")
def served(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Node]]:
    with gateway_before_a_node(tmp_path_factory.mktemp("parity"), engine=engine) as gateway:
        assert gateway.node is not None
        yield gateway, gateway.node


def post(gateway: Gateway, body: bytes, authorization: str | None = EXCHANGE) -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection("127.0.0.1", gateway.port, timeout=20, context=gateway.context)
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    try:
        connection.request("POST", "/", body, headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_long_header_without_a_key_costs_a_worker_next_to_nothing(served: tuple[Gateway, Node]) -> None:
    """A Bearer value with thousands of spaces inside (within nginx's 8 KiB header line): the Lua engine trimmed it
    with a pattern that took half a second of a worker's CPU each, with nothing else served meanwhile. Twenty of
    them now cost a small fraction of one second, and the key is still trimmed of the spaces around it."""
    gateway, _ = served
    master = int((gateway.config_dir / "nginx.pid").read_text())
    before = nginx_cpu_seconds(master)
    for _ in range(20):
        assert post(gateway, b"{}", "Bearer a" + " " * 8000 + "b")[0] == 401
    assert nginx_cpu_seconds(master) - before < 2.0
    call = json.dumps({"method": "getblockcount", "id": 1}).encode()
    assert post(gateway, call, f"Bearer   {KEYS['exchange']} \t ")[0] == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":1,"method":"getblockcount"}\x00{"method":"stop"}',
        b'[{"id":1,"method":"stop"}]\x00garbage',
        b'{"id":"a\x01b","method":"getblockcount"}',
        b'[{"id":"a\tb","method":"stop"}]',
        b'{"id":1,"method":"getblockcount\n"}',
    ],
    ids=["nul-then-a-second-call", "nul-after-a-batch", "control-byte-in-a-string", "raw-tab-in-a-string",
         "raw-line-feed-in-a-string"],
)  # fmt: skip
def test_a_control_character_makes_the_body_no_json(body: bytes, served: tuple[Gateway, Node]) -> None:
    gateway, node = served
    node.received.clear()
    status, answer = post(gateway, body)
    assert (status, json.loads(answer)["error"]["code"]) == (400, -32700)
    assert node.received == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":"\xff","method":"stop"}',
        b'{"id":1,"method":"get\xe9blockcount"}',
        b'{"id":1,"method":"getblockcount","params":["\xc0\xaf"]}',
        b'{"id":"\xed\xa0\x80","method":"stop"}',
        b'{"id":"\xf4\x90\x80\x80","method":"stop"}',
        b'[{"id":1,"method":"getblockcount"},{"id":"\xf0\x9f\x98","method":"stop"}]',
    ],
    ids=["lone-byte-in-an-id", "latin-1-in-a-method", "overlong-slash-in-params", "surrogate-in-an-id",
         "above-the-last-code-point", "cut-four-byte-sequence-in-a-batch"],
)  # fmt: skip
def test_a_body_that_is_not_utf8_is_no_json(body: bytes, served: tuple[Gateway, Node]) -> None:
    """JSON is UTF-8 (RFC 8259, 8.1), and the node's parser refuses other bytes: the gateway answers a parse error
    and forwards nothing, rather than writing the bytes back (an answer that is no JSON) or, in njs 0.8 and later,
    U+FFFD in their place."""
    gateway, node = served
    node.received.clear()
    status, answer = post(gateway, body)
    assert (status, json.loads(answer)["error"]["code"]) == (400, -32700), answer
    assert node.received == []


def test_utf8_beyond_ascii_is_still_json(served: tuple[Gateway, Node]) -> None:
    gateway, node = served
    node.received.clear()
    body = '[{"id":"é😀\uffff","method":"getblockcount"},{"id":"ü","method":"stop"}]'.encode()
    status, answer = post(gateway, body)
    assert status == 200 and [a["id"] for a in json.loads(answer)] == ["é😀\uffff", "ü"]
    assert len(node.received) == 1


def test_whitespace_between_values_is_still_json(served: tuple[Gateway, Node]) -> None:
    gateway, node = served
    node.received.clear()
    body = b'[\n\t{"id": 1,\r\n "method": "getblockcount"},\n\t{"id": "tab\\tescaped", "method": "stop"}\n]'
    status, answer = post(gateway, body)
    assert status == 200 and [a["id"] for a in json.loads(answer)] == [1, "tab\tescaped"]
    assert len(node.received) == 1


def test_withheld_members_follow_the_id_whatever_order_the_node_answers_in(served: tuple[Gateway, Node]) -> None:
    """Two calls sharing an id, one of them getinfo: the node answering the batch backwards put getinfo's answer,
    log line and all, in the other call's place, where nothing was withheld."""
    gateway, node = served
    node.quirks.add("reversed")
    try:
        batch = [{"method": "getblockcount", "id": 7}, {"method": "getinfo", "id": 7}, {"method": "stop", "id": 8}]
        status, answer = post(gateway, json.dumps(batch).encode())
    finally:
        node.quirks.discard("reversed")
    assert status == 200 and b"misbehaved" not in answer
    infos = [a["result"] for a in json.loads(answer) if isinstance(a.get("result"), dict) and "version" in a["result"]]
    assert infos and all(info["errors"] == "withheld by the gateway" for info in infos)


def test_a_withheld_member_the_node_gives_twice_is_withheld_twice(served: tuple[Gateway, Node]) -> None:
    gateway, node = served
    node.quirks.add("errors twice")
    try:
        status, answer = post(gateway, json.dumps({"method": "getinfo", "id": 1}).encode())
    finally:
        node.quirks.discard("errors twice")
    assert status == 200 and b"WARN" not in answer and answer.count(b'"withheld by the gateway"') == 2


@pytest.mark.parametrize(
    ("method", "named"),
    [("é" * 40, "é" * 40), ("é" * 70, "é" * 64), ("😀" * 70, "😀" * 64), ("a/b\x7f", "a/b\x7f")],
    ids=["forty-two-byte-characters", "seventy-cut-at-sixty-four", "four-byte-characters", "slash-and-delete"],
)
def test_a_refused_method_is_named_as_njs_writes_it(method: str, named: str, served: tuple[Gateway, Node]) -> None:
    """Up to 64 characters (njs's slice counts code points), never half of one; '/' and DEL as they are."""
    gateway, _ = served
    status, answer = post(gateway, json.dumps({"method": method, "id": 1}, ensure_ascii=False).encode())
    expected = json.dumps(f"method {named} is not allowed for this key", ensure_ascii=False).encode()
    assert status == 200 and b'"message":' + expected in answer, answer


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'[{"method":"stop","id":1.},{"method":"getblockcount","id":2}]', 400),
        (b'{"method":"stop","id":-1.}', 400),
        (b'{"method":"stop","id":1.e5}', 400),
        (b'{"method":"stop","id":01}', 400),
        (b'{"method":"stop","id":1.5e3}', 200),
        (b'{"method":"getblockcount","id":1,"params":' + b"[" * 30 + b"]" * 30 + b"}", 200),
        (b'{"method":"getblockcount","id":1,"params":' + b"[" * 31 + b"]" * 31 + b"}", 400),
    ],
    ids=["trailing-point-in-a-batch", "negative-trailing-point", "point-then-exponent", "leading-zero",
         "plain-exponent", "thirty-one-deep", "thirty-two-deep"],
)  # fmt: skip
def test_the_engines_read_the_same_json(body: bytes, status: int, served: tuple[Gateway, Node]) -> None:
    """An id the gateway would write back must be JSON as written ("1." is not, though JSON.parse and cjson take
    it: the gateway's own answer was no JSON); a body nested past 31 levels is refused by both (njs's JSON.parse
    stops there, and cjson is told to)."""
    gateway, _ = served
    answer_status, answer = post(gateway, body)
    assert answer_status == status
    parsed = json.loads(answer)
    if status == 400:
        assert parsed["error"]["code"] == -32700
    elif b'"stop"' in body:
        assert b'"id":1.5e3' in answer and parsed["error"]["code"] == -32601


def test_a_batch_of_thousands_is_charged_whole(engine: Engine, tmp_path: Path) -> None:
    """A profile may allow batches of up to 10,000 calls: a batch of 1,500 is charged call by call and passes. The
    rate meter's connections once ended after 1,000 requests (nginx's default), refusing the Lua engine's batch, and
    njs opened a meter connection per call at once, past a worker's connections."""
    file = parse_access(
        {"jsonRpc": {"methods": ["getblockcount"]},
         "users": [{"name": "exchange", "keySha256": key_hash(KEYS["exchange"]),
                    "rateLimit": {"requestsPerSecond": 100_000, "burst": 100_000, "maxBatch": 2000}}]},
        "access/batches.yaml",
    )  # fmt: skip
    with gateway_before_a_node(tmp_path, engine=engine, access_file=file, max_body_bytes=256 * 1024) as gateway:
        batch = [{"method": "getblockcount", "id": i} for i in range(1500)]
        status, answer = post(gateway, json.dumps(batch).encode())
        assert status == 200 and len(json.loads(answer)) == 1500
        assert "worker_connections are not enough" not in gateway.log.read_text(errors="replace")


def test_locations_answering_alone_log_the_same_and_warn_of_nothing(served: tuple[Gateway, Node]) -> None:
    """`/zcashd` without a sidecar answers 404 in nginx alone: its log line names the caller as on the other paths,
    on both engines (njs computes the caller when the log reads it; the Lua engine logged "-" there), and nginx warns
    of no variable used before it was set (the Lua engine's log read a `$zbi_who` only its handler sets)."""
    gateway, _ = served
    for authorization in (None, EXCHANGE):
        connection = http.client.HTTPSConnection("127.0.0.1", gateway.port, timeout=20, context=gateway.context)
        headers = {"Content-Type": "application/json", **({"Authorization": authorization} if authorization else {})}
        try:
            connection.request("POST", "/zcashd", b"{}", headers)
            response = connection.getresponse()
            assert response.status == 404 and json.loads(response.read())["error"]["code"] == -32601
        finally:
            connection.close()
    deadline = time.monotonic() + 5
    while True:
        lines = gateway.log.read_text().splitlines()
        entries = [json.loads(line) for line in lines if line.startswith('{"') and '"path":"/zcashd"' in line]
        if len(entries) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    logged = [(e["user"], e["status"], e["cache"], e["cache_bytes"]) for e in entries]
    assert logged == [("anonymous", "404", "-", "0"), ("exchange", "404", "-", "0")]
    assert not [line for line in lines if "uninitialized" in line or "[warn]" in line]


def test_a_body_over_the_limit_is_logged_under_its_callers_name(served: tuple[Gateway, Node]) -> None:
    """nginx refuses a Content-Length over the limit (413) before any handler ran: the Lua engine logged "-" where
    njs names the caller (a review found it); both name them now."""
    gateway, _ = served
    status, body = post(gateway, b"[" + b"1," * 10_000 + b"1]")
    assert status == 413 and json.loads(body)["error"]["code"] == -32600
    deadline = time.monotonic() + 5
    while True:
        entries = [
            json.loads(line)
            for line in gateway.log.read_text().splitlines()
            if line.startswith('{"') and '"status":"413"' in line
        ]
        if entries or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [e["user"] for e in entries] == ["exchange"]
