"""A CompactTxStreamer server on loopback, generated from lightwalletd's vendored protos, that answers at the node's
tip and streams the vendored real blocks in their compact form; it records the metadata each call came with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import UPSTREAM
from tests.json_rpc_node import TIP
from tests.zcash_blocks import by_reference


@dataclass
class LightWallet:
    port: int
    modules: Any
    seen_metadata: list[dict[str, str]]


@contextmanager
def serving_light_wallet(out: Path) -> Iterator[LightWallet]:
    """A CompactTxStreamer server built from lightwalletd's service.proto, on loopback, stopped at the end."""
    import importlib
    import sys

    import grpc
    from grpc_tools import protoc

    protos = UPSTREAM / "lightwalletd" / "walletrpc"
    assert protoc.main(["protoc", f"-I{protos}", f"--python_out={out}", f"--grpc_python_out={out}",
                        str(protos / "service.proto"), str(protos / "compact_formats.proto")]) == 0  # fmt: skip
    sys.path.insert(0, str(out))
    try:
        pb = importlib.import_module("service_pb2")
        rpc = importlib.import_module("service_pb2_grpc")
        compact = importlib.import_module("compact_formats_pb2")
    finally:
        sys.path.remove(str(out))
    seen: list[dict[str, str]] = []

    class Streamer(rpc.CompactTxStreamerServicer):  # type: ignore[name-defined,misc]
        def GetLightdInfo(self, request: Any, context: Any) -> Any:  # noqa: N802 (the proto names it)
            seen.append(dict(context.invocation_metadata()))
            return pb.LightdInfo(version="v0.5.3", chainName="test", blockHeight=TIP)

        def GetLatestBlock(self, request: Any, context: Any) -> Any:  # noqa: N802
            seen.append(dict(context.invocation_metadata()))
            return pb.BlockID(height=TIP)

        def GetBlockRange(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
            seen.append(dict(context.invocation_metadata()))
            for height in range(request.start.height, request.end.height + 1):
                yield real_compact_block(compact, height) or compact.CompactBlock(
                    height=height, hash=height.to_bytes(32, "little")
                )

    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
    rpc.add_CompactTxStreamerServicer_to_server(Streamer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield LightWallet(port, types_namespace(pb=pb, rpc=rpc, compact=compact), seen)
    finally:
        server.stop(grace=1).wait(5)


def real_compact_block(compact: Any, height: int) -> Any:
    """The CompactBlock of a vendored real block at `height` (tests/zcash_blocks.py), or None."""
    found = by_reference(str(height))
    if found is None:
        return None
    fields = found.compact()
    vtx = [
        compact.CompactTx(
            index=tx["index"],
            txid=tx["txid"],
            spends=[compact.CompactSaplingSpend(nf=nf) for nf in tx["spends"]],
            outputs=[
                compact.CompactSaplingOutput(cmu=cmu, ephemeralKey=key, ciphertext=text)
                for cmu, key, text in tx["outputs"]
            ],
        )
        for tx in fields["vtx"]
    ]
    return compact.CompactBlock(**{**fields, "vtx": vtx})


def types_namespace(**modules: Any) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(**modules)
