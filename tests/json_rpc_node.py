"""A JSON-RPC server on loopback that answers like zebrad (basic auth with the node's own credentials, zcashd's HTTP
statuses for failing calls), and records what each request brought, for the live gateway tests and benchmarks."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.loopback_server import reply_empty, reply_json, serve_in_background
from tests.zcash_blocks import getblock_result

NODE_CREDENTIALS = "zebra-rpc:node-only-password"
# The chain tip the node reports; the light-wallet server (tests/light_wallet_server.py) reports the same.
TIP = 3_000_000


@dataclass
class Node:
    """A JSON-RPC server that answers like zebrad, and records the credentials each request came with."""

    server: ThreadingHTTPServer
    seen_auth: list[str] = field(default_factory=list)
    # The bodies as they arrived, byte for byte.
    received: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    # Seconds the node waits before answering (a node busy with a large answer), set by a test.
    delay: list[float] = field(default_factory=lambda: [0.0])
    # How the node misbehaves within JSON-RPC, set by a test: "reversed" answers a batch in reverse order (the
    # specification lets a server answer in any order), "errors twice" gives getinfo's `errors` member twice.
    quirks: set[str] = field(default_factory=set)
    # Set by stop(): connections still open (an upstream's kept-alive ones) are closed unanswered, as by a dead node.
    down: list[bool] = field(default_factory=lambda: [False])

    def stop(self) -> None:
        """The node gone: no new connection is accepted, and one kept alive gets no answer (a server's shutdown
        alone stops accepting, while its handler threads go on serving the connections they hold)."""
        self.down[0] = True
        self.server.shutdown()
        self.server.server_close()


def node_answer(body: Any) -> tuple[bytes, int]:
    """The node's answer to a call or a batch: `getblock` of a vendored real block (an unknown one is a JSON-RPC
    error, answered alone with HTTP 500 as zcashd does), `getinfo` with an `errors` log line as zebrad gives it;
    `{"answered": method}` for anything else."""

    def answer(call: dict[str, Any]) -> dict[str, Any]:
        method, params = call.get("method"), call.get("params") or []
        result: Any = {"answered": method}
        if method == "getblock":
            result = getblock_result(params)
            if result is None:
                return {"result": None, "error": {"code": -8, "message": "Block not found"}, "id": call.get("id")}
        elif method == "getinfo":
            result = {"version": 6030000, "blocks": TIP, "errors": "WARN: peer 203.0.113.7:8233 misbehaved",
                      "errorstimestamp": 1764500000}  # fmt: skip
        return {"result": result, "error": None, "id": call.get("id")}

    if isinstance(body, list):
        return json.dumps([answer(c) for c in body]).encode(), 200
    single = answer(body)
    # zcashd (Bitcoin Core's httprpc.cpp) answers a failing single call with HTTP 500, or 404 for an unknown method.
    return json.dumps(single).encode(), 500 if single["error"] else 200


def start_node() -> Node:
    seen: list[str] = []
    received: list[bytes] = []
    headers: list[dict[str, str]] = []
    delay = [0.0]
    quirks: set[str] = set()
    down = [False]

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as zebrad and the gateway's upstream pool use it.
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            if down[0]:
                self.close_connection = True
                return
            seen.append(self.headers.get("Authorization", ""))
            headers.append(dict(self.headers))
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(NODE_CREDENTIALS.encode()).decode():
                reply_empty(self, 401)
                return
            received.append(raw)
            time.sleep(delay[0])
            body = json.loads(raw)
            data, status = node_answer(body)
            if "reversed" in quirks and isinstance(body, list):
                data = json.dumps(json.loads(data)[::-1]).encode()
            if "errors twice" in quirks:
                data = data.replace(b'"errors": ', b'"errors": "WARN: first copy", "errors": ')
            reply_json(self, status, data)

        def log_message(self, *args: object) -> None:
            pass

    # socketserver's default backlog of 5 resets connections when 32 clients connect at once.
    server = serve_in_background(Handler, backlog=128)
    return Node(server, seen, received, headers, delay, quirks, down)
