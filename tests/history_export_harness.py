"""What the history-export tests run against: real blocks (Zebra v6.3.0 vectors, vendored under
tests/fixtures/upstream/zebra/blocks/, SOURCES.json), a JSON-RPC server on loopback answering `getblockchaininfo`
and `getblock` for them as zebrad does, and moto's S3 server on loopback."""

from __future__ import annotations

import json
import logging
import lzma
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.conftest import UPSTREAM
from tests.loopback_server import reply_json, serving

BLOCKS = UPSTREAM / "zebra" / "blocks"

# Linked runs of real blocks (each block's parent is the one before), at their real heights.
SEGMENTS: dict[str, dict[int, str]] = {
    # Mainnet's first blocks: v1 transactions, P2PK and P2SH (founders' reward) outputs.
    "genesis": {1: "block-main-0-000-001.bin.xz", 2: "block-main-0-000-002.bin.xz"},
    # Sapling activates at 419,200: v3 (Overwinter) transactions with Sprout JoinSplits, then v4.
    "sapling": {h: f"block-main-0-{h // 1000:03d}-{h % 1000:03d}.bin.xz" for h in range(419_199, 419_203)},
    # NU5 at 1,687,104: v4 and v5 transactions, Sapling spends and outputs, the first Orchard actions.
    "nu5": {h: f"block-main-1-{(h // 1000) % 1000:03d}-{h % 1000:03d}.bin.xz" for h in range(1_687_106, 1_687_109)},
}


def raw_block(name: str) -> bytes:
    return lzma.decompress((BLOCKS / name).read_bytes())


def segment(name: str) -> dict[int, bytes]:
    return {height: raw_block(file) for height, file in SEGMENTS[name].items()}


@dataclass
class FakeZebra:
    """zebrad's answers to the methods the exporter calls, for a set of blocks and a tip."""

    blocks: dict[int, bytes]
    tip: int
    requests: list[tuple[str, list[Any]]] = field(default_factory=list)
    txids: dict[int, list[str]] = field(default_factory=dict)
    network: str = "mainnet"

    def answer(self, method: str, params: list[Any]) -> tuple[int, dict[str, Any]]:
        self.requests.append((method, params))
        if method == "getblockchaininfo":
            # zebrad's own answer (vendored snapshot), at this node's tip.
            info = json.loads((UPSTREAM / "zebra" / "rpc" / f"getblockchaininfo-{self.network}.json").read_text())
            return 200, {"result": {**info, "blocks": self.tip, "headers": self.tip}}
        if method == "getblock":
            height = int(params[0])
            if height not in self.blocks or height > self.tip:
                # zebrad's answer for a height it does not have (RPC error -8, "block height not in best chain").
                return 200, {"error": {"code": -8, "message": "block height not in best chain"}}
            if params[1] == 0:
                return 200, {"result": self.blocks[height].hex()}
            return 200, {"result": {"height": height, "tx": self.txids[height]}}
        return 200, {"error": {"code": -32601, "message": "Method not found"}}


@contextmanager
def serve_rpc(node: FakeZebra) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, body = node.answer(request["method"], request.get("params", []))
            data = json.dumps({"jsonrpc": "2.0", "id": request.get("id"), **body}).encode()
            reply_json(self, status, data)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on an ephemeral loopback port; the AWS environment credentials it accepts."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    saved = {key: os.environ.get(key) for key in S3_ENV}
    os.environ.update(S3_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
