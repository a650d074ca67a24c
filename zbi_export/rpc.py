"""A JSON-RPC client for zebrad (or zakurad): the chain tip and blocks, with bounded retries."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from typing import Any


class RpcError(RuntimeError):
    """The node answered with an error or could not be reached after the retries."""


class NodeRpc:
    def __init__(self, url: str, credentials: str | None = None, timeout: float = 60.0, attempts: int = 5) -> None:
        self.url, self.timeout, self.attempts = url, timeout, attempts
        self.headers = {"Content-Type": "application/json"}
        if credentials:
            # "user:password"; zebrad's cookie file holds "__cookie__:<token>" (docs/history-export.md).
            self.headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()

    def call(self, method: str, params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        delay = 0.5
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    answer = json.loads(response.read())
                break
            except urllib.error.HTTPError as error:
                # zebrad answers JSON-RPC errors with a non-2xx status and a JSON body.
                try:
                    answer = json.loads(error.read())
                    break
                except ValueError:
                    if attempt == self.attempts or error.code < 500:
                        raise RpcError(f"{method}: HTTP {error.code} from {self.url}") from error
            except (OSError, ValueError) as error:
                if attempt == self.attempts:
                    raise RpcError(f"{method}: {self.url} unreachable after {attempt} attempts: {error}") from error
            time.sleep(delay)
            delay *= 2
        if answer.get("error"):
            raise RpcError(f"{method} {params}: {answer['error']}")
        return answer["result"]

    def chain_and_tip(self) -> tuple[str, int]:
        """`getblockchaininfo`'s `chain` ("main", or "test" on Testnet and Regtest: zebrad v6.3.0 answers its BIP70
        name) and `blocks` (the tip's height)."""
        info = self.call("getblockchaininfo", [])
        return str(info["chain"]), int(info["blocks"])

    def raw_block(self, height: int) -> bytes:
        return bytes.fromhex(self.call("getblock", [str(height), 0]))

    def txids(self, height: int) -> list[bytes]:
        """The block's transaction ids (internal byte order), for versions whose id is not computed here."""
        return [bytes.fromhex(t)[::-1] for t in self.call("getblock", [str(height), 1])["tx"]]
