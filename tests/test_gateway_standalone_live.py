"""The access gateway, live, in the tests that start a gateway of their own rather than share one: with its node or
light-wallet server down, stopped gracefully mid-stream, and watched by the monitoring (its access log through the
rendered mtail program; Debian's blackbox exporter probing it). Every server binds 127.0.0.1 and stops at the end of
its test; the light-wallet server is shared by the module."""

from __future__ import annotations

import base64
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway_harness import KEYS, bearer, running_gateway, wallet_stub
from tests.json_rpc_node import NODE_CREDENTIALS, TIP, start_node
from tests.light_wallet_server import LightWallet, serving_light_wallet
from tests.loopback_server import free_port
from tests.monitoring_exporters import running_blackbox, running_mtail
from zbi_infra.access_keys import new_key
from zbi_infra.config.access import PROBE_USER
from zbi_infra.monitoring.component import JSON_RPC_MODULE
from zbi_infra.render.gateway_engines import Engine
from zbi_infra.render.gateway_metrics import metric_names


@pytest.fixture(scope="module")
def light_wallet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightWallet]:
    with serving_light_wallet(tmp_path_factory.mktemp("walletrpc")) as server:
        yield server


def test_the_node_down_is_a_clean_502(engine: Engine, tmp_path: Path) -> None:
    with running_gateway(tmp_path, f"127.0.0.1:{free_port()}", None, engine=engine) as down:
        status, body = down.call({"method": "getblockcount", "id": 1})
        assert status == 502 and body["error"]["message"] == "the node is unavailable"
        # Refusals need no node: they are still answered.
        assert down.call({"method": "stop", "id": 2})[1]["error"]["code"] == -32601


def test_the_light_wallet_server_down_is_unavailable(engine: Engine, tmp_path: Path, light_wallet: LightWallet) -> None:
    import grpc

    closed = f"127.0.0.1:{free_port()}"
    with (
        running_gateway(tmp_path, closed, None, grpc_upstream=closed, engine=engine) as down,
        wallet_stub(down, light_wallet) as stub,
        pytest.raises(grpc.RpcError) as raised,
    ):
        stub.GetLatestBlock(light_wallet.modules.pb.ChainSpec(), metadata=bearer("exchange"), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_graceful_stop_finishes_the_streams_it_accepted(
    engine: Engine, tmp_path: Path, light_wallet: LightWallet
) -> None:
    """What Kubernetes does to a gateway pod (nginx's graceful stop, SIGQUIT): an open stream runs to its end."""
    import signal

    pb = light_wallet.modules.pb
    start = TIP - 10_000 + 1
    received: list[int] = []

    def gone(pid: int) -> bool:
        stat = Path(f"/proc/{pid}/stat")
        return not stat.exists() or stat.read_text().split()[2] == "Z"

    with (
        running_gateway(
            tmp_path, f"127.0.0.1:{free_port()}", None, grpc_upstream=f"127.0.0.1:{light_wallet.port}", engine=engine
        ) as gateway,
        wallet_stub(gateway, light_wallet) as stub,
    ):
        stream = stub.GetBlockRange(
            pb.BlockRange(start=pb.BlockID(height=start), end=pb.BlockID(height=TIP)),
            metadata=bearer("exchange"),
            timeout=120,
        )
        received.append(next(stream).height)
        master = int((tmp_path / "nginx.pid").read_text())
        os.kill(master, signal.SIGQUIT)  # the stream is open: one block read, 9,999 to come
        for block in stream:
            received.append(block.height)
            if len(received) % 2000 == 0:
                time.sleep(0.1)  # a slow reader
        # The stop did happen: the master exits once the stream is done.
        deadline = time.monotonic() + 10
        while not gone(master) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(master)
    assert received == list(range(start, TIP + 1))


def test_metrics_count_requests_by_user_method_and_outcome(
    engine: Engine, tmp_path: Path, light_wallet: LightWallet
) -> None:
    """The rendered access log, sent to the rendered mtail program, gives Prometheus the requests by user, method
    and outcome: JSON-RPC's HTTP status, gRPC's grpc-status."""
    import grpc

    pb = light_wallet.modules.pb
    node = start_node()
    try:
        with (
            running_mtail(tmp_path / "mtail") as metrics,
            running_gateway(
                tmp_path / "gateway",
                f"127.0.0.1:{node.server.server_port}",
                node,
                grpc_upstream=f"127.0.0.1:{light_wallet.port}",
                metrics_syslog=metrics.syslog,
                engine=engine,
            ) as gateway,
        ):
            for _ in range(3):
                assert gateway.call({"method": "getblockcount", "params": [], "id": 1})[0] == 200
            assert gateway.call({"method": "getblock", "params": ["1"], "id": 2}, user="analytics")[0] == 200
            assert gateway.call({"method": "getinfo", "id": 3}, key="zbik_wrong")[0] == 401
            batch = [{"method": "getblockcount", "id": 4}, {"method": "stop", "id": 5}]
            assert gateway.call(batch)[0] == 200
            with wallet_stub(gateway, light_wallet) as stub:
                assert stub.GetLatestBlock(pb.ChainSpec(), metadata=bearer("exchange"), timeout=10).height == TIP
                with pytest.raises(grpc.RpcError):
                    stub.GetLightdInfo(pb.Empty(), metadata=bearer("analytics"), timeout=10)
                with pytest.raises(grpc.RpcError):
                    stub.GetLatestBlock(pb.ChainSpec(), metadata=[("authorization", "Bearer zbik_no")], timeout=10)
            expected = {
                ("exchange", "json-rpc", "getblockcount", "200"): 3,
                ("analytics", "json-rpc", "(refused)", "200"): 1,
                ("-", "json-rpc", "-", "401"): 1,
                ("exchange", "json-rpc", "(batch)", "200"): 1,
                ("exchange", "grpc", "GetLatestBlock", "0"): 1,
                ("analytics", "grpc", "(refused)", "7"): 1,
                ("-", "grpc", "-", "16"): 1,
            }
            deadline = time.monotonic() + 10
            while True:
                counted = {
                    tuple(dict(key)[label] for label in ("user", "api", "method", "code")): value
                    for key, value in metrics.scrape().items()
                    if dict(key)["__name__"] == "zbi_gateway_requests_total"
                }
                if counted == expected or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert counted == expected
            durations = {
                k: v
                for k, v in metrics.scrape().items()
                if dict(k)["__name__"] == "zbi_gateway_request_duration_seconds_count"
            }
            assert {dict(k)["api"]: v for k, v in durations.items()} == {"json-rpc": 6, "grpc": 3}
            exported = {dict(k)["__name__"] for k in metrics.scrape()}
            assert metric_names() <= exported, metric_names() - exported
            # The user's key appears nowhere in what Prometheus would store.
            assert KEYS["exchange"] not in urllib.request.urlopen(metrics.url, timeout=5).read().decode()
    finally:
        node.server.shutdown()


def test_the_monitoring_probe_measures_json_rpc_through_the_gateway(engine: Engine, tmp_path: Path) -> None:
    """The blackbox module zBI configures, in Debian's blackbox exporter, against the rendered gateway: a success
    while the node answers; a failure with a wrong key or with the node down. The probe user may call nothing else."""
    probe_key, other_key = new_key(), new_key()
    node = start_node()
    try:
        with (
            running_gateway(
                tmp_path / "gateway", f"127.0.0.1:{node.server.server_port}", node, probe_key=probe_key, engine=engine
            ) as gateway,
            running_blackbox(tmp_path / "blackbox", probe_key) as blackbox,
            running_blackbox(tmp_path / "wrong", other_key) as wrong,
        ):
            assert blackbox.probe(JSON_RPC_MODULE, gateway.url) == 1
            assert gateway.node.seen_auth[-1] == "Basic " + base64.b64encode(NODE_CREDENTIALS.encode()).decode()
            assert wrong.probe(JSON_RPC_MODULE, gateway.url) == 0
            status, body = gateway.call({"method": "getblockcount", "id": 1}, user=PROBE_USER, key=probe_key)
            assert status == 200 and body["error"]["code"] == -32601
            node.stop()
            assert blackbox.probe(JSON_RPC_MODULE, gateway.url) == 0
    finally:
        node.server.shutdown()
