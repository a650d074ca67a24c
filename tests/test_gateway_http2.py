"""JSON-RPC over HTTP/2, live on both engines: the public listener offers h2 (gRPC needs it), and clients such as
curl and Go's net/http take it for JSON-RPC too. Single calls, batches (every call charged to the caller's rate)
with and without refused calls, and the history cache's calls answer as over HTTP/1.1; lua-nginx-module refuses
subrequests in HTTP/2 requests, which the Lua engine's batch charge and tip once made (nginx's HTML 500)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.debian import debian_tool
from tests.gateway_harness import KEYS, Gateway, gateway_before_a_node, running_gateway
from tests.history_node import start_history_node
from tests.test_history_cache_live import TIP, history_access
from zbi_infra.render.gateway_engines import Engine


def over_http2(gateway: Gateway, body: Any, user: str = "exchange") -> tuple[int, Any]:
    """POSTs `body` with curl over HTTP/2 (refusing any other version): the status and the decoded answer."""
    curl = debian_tool("curl", ["curl"])
    result = subprocess.run(
        [curl, "--http2", "--silent", "--show-error", "--max-time", "20", "--cacert", str(gateway.certificate),
         "--user", f"{user}:{KEYS[user]}", "--header", "Content-Type: application/json", "--data-binary", "@-",
         "--write-out", "\n%{http_code} %{http_version}", gateway.url],
        input=json.dumps(body).encode(), capture_output=True, timeout=30, check=True,
    )  # fmt: skip
    text, _, trailer = result.stdout.rpartition(b"\n")
    status, version = trailer.decode().split()
    assert version == "2", trailer
    return int(status), json.loads(text) if text.strip() else None


@pytest.fixture(scope="module")
def gateway(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with gateway_before_a_node(tmp_path_factory.mktemp("h2"), engine=engine) as gw:
        yield gw


def test_a_single_call_and_batches_answer_over_http2(gateway: Gateway) -> None:
    status, answer = over_http2(gateway, {"method": "getblockcount", "id": 1})
    assert (status, answer["result"]) == (200, {"answered": "getblockcount"})
    calls = [{"method": "getblockcount", "id": i} for i in range(3)]
    status, answer = over_http2(gateway, calls)
    assert status == 200 and [a["id"] for a in answer] == [0, 1, 2]
    status, answer = over_http2(gateway, [*calls, {"method": "stop", "id": 9}])
    assert status == 200 and [a["id"] for a in answer] == [0, 1, 2, 9] and answer[3]["error"]["code"] == -32601


def test_every_call_of_a_batch_is_charged_over_http2(gateway: Gateway) -> None:
    """`batcher` may make one call a second, five more at once: a batch of five passes, the next is refused, as over
    HTTP/1.1 (its four extra calls are charged through the meter)."""
    batch = [{"method": "getblockcount", "id": i} for i in range(5)]
    assert over_http2(gateway, batch, user="batcher")[0] == 200
    status, answer = over_http2(gateway, batch, user="batcher")
    assert status == 429 and answer["error"]["code"] == -32005


def test_the_history_cache_answers_over_http2(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> None:
    node = start_history_node(TIP)
    try:
        with running_gateway(
            tmp_path_factory.mktemp("h2-history"), node.address, None, history_cache=True,
            access_file=history_access(), engine=engine,
        ) as gateway:  # fmt: skip
            call = {"jsonrpc": "2.0", "method": "getblockhash", "params": [5], "id": 7}
            first, second = over_http2(gateway, call), over_http2(gateway, call)
            assert first == second and first[0] == 200 and first[1]["id"] == 7 and first[1]["result"]
            # nginx logs a request once it has answered it: the last line may come after curl is done.
            deadline = time.monotonic() + 5
            while True:
                lines = gateway.log.read_text().splitlines()
                outcomes = [
                    json.loads(line)["cache"] for line in lines if line.startswith('{"') and "getblockhash" in line
                ]
                if len(outcomes) >= 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert outcomes == ["miss", "hit"]
    finally:
        node.stop()
