"""The gateway under abuse, live: attacks that must fail against the rendered nginx.conf and njs in Debian's nginx on
loopback. Clients bind distinct loopback addresses (127.0.0.x) where a limit is per address, so each test has its
own budget and the tests cannot pass by sharing one."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_harness import (
    KEYS,
    Gateway,
    LightWallet,
    bearer,
    gateway_before_a_node,
    read_user_table,
    serving_light_wallet,
    wallet_stub,
    write_user_table,
)
from zbi_infra.config.access import parse_access
from zbi_infra.config.instance import GATEWAY_MAX_CALLS_PER_CALLER
from zbi_infra.errors import ConfigError
from zbi_infra.render.gateway import (
    GRPC_FORWARDED_HEADERS,
    MAX_REQUESTS_PER_ADDRESS,
    anonymous_requests_cap,
)
from zbi_infra.render.gateway_engines import Engine


@pytest.fixture(scope="module")
def light_wallet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LightWallet]:
    with serving_light_wallet(tmp_path_factory.mktemp("walletrpc")) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(engine: Engine, tmp_path_factory: pytest.TempPathFactory, light_wallet: LightWallet) -> Iterator[Gateway]:
    with gateway_before_a_node(
        tmp_path_factory.mktemp("gateway"), grpc_upstream=f"127.0.0.1:{light_wallet.port}", engine=engine
    ) as running:
        yield running


def basic(user: str, key: str | None = None) -> str:
    return "Basic " + base64.b64encode(f"{user}:{KEYS[user] if key is None else key}".encode()).decode()


def request(
    gateway: Gateway,
    body: bytes | None,
    *,
    source: str = "127.0.0.1",
    method: str = "POST",
    path: str = "/",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", gateway.port, context=gateway.context, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def held_open(gateway: Gateway, source: str, authorization: str | None) -> ssl.SSLSocket:
    """A request announcing a 10,000-byte body and sending one byte of it: the slow-body attack."""
    raw = socket.create_connection(("127.0.0.1", gateway.port), timeout=10, source_address=(source, 0))
    tls = gateway.context.wrap_socket(raw, server_hostname="127.0.0.1")
    auth = f"Authorization: {authorization}\r\n" if authorization else ""
    tls.sendall(f"POST / HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 10000\r\n\r\n{{".encode())
    return tls


def answered_within(connection: ssl.SSLSocket, seconds: float) -> bytes:
    connection.settimeout(seconds)
    try:
        return connection.recv(4096)
    except (TimeoutError, ssl.SSLError, OSError):
        return b""


def test_a_bad_key_is_refused_before_the_body_is_read(gateway: Gateway) -> None:
    """The old gateway read the whole body (waiting up to a minute for it) before looking at the key."""
    connection = held_open(gateway, "127.0.0.10", basic("exchange", "zbik_wrong"))
    try:
        assert answered_within(connection, 3).startswith(b"HTTP/1.1 401")
    finally:
        connection.close()


def test_refused_keys_are_rate_limited_per_address(gateway: Gateway) -> None:
    statuses = [
        request(gateway, b"{}", source="127.0.0.11", headers={"Authorization": basic("exchange", "zbik_x")})[0]
        for _ in range(30)
    ]
    assert statuses[0] == 401 and 429 in statuses and set(statuses) == {401, 429}
    # Another address guessing is counted apart.
    assert (
        request(gateway, b"{}", source="127.0.0.12", headers={"Authorization": basic("exchange", "zbik_x")})[0] == 401
    )


def test_requests_in_progress_are_capped_per_caller_and_per_address(gateway: Gateway) -> None:
    """Slow bodies: a user (or an anonymous address) gets GATEWAY_MAX_CALLS_PER_CALLER at once, an address
    MAX_REQUESTS_PER_ADDRESS whoever's keys it holds; the rest are refused at once (429) instead of each holding a
    body buffer."""
    cases = [
        ("127.0.0.13", [basic("bench")] * (GATEWAY_MAX_CALLS_PER_CALLER + 8), 8),
        ("127.0.0.14", [basic("exchange")] * 30 + [basic("bench")] * 30 + [basic("analytics")] * 14, 10),
    ]
    assert MAX_REQUESTS_PER_ADDRESS == 64
    for source, authorizations, refused in cases:
        connections = [held_open(gateway, source, a) for a in authorizations]
        try:
            answers = [
                answered_within(c, 0.05 if i < len(connections) - refused else 3) for i, c in enumerate(connections)
            ]
            assert sum(a.startswith(b"HTTP/1.1 429") for a in answers) == refused, source
        finally:
            for connection in connections:
                connection.close()


def test_streams_are_capped_per_user(gateway: Gateway, light_wallet: LightWallet) -> None:
    import grpc

    pb = light_wallet.modules.pb
    request_range = pb.BlockRange(start=pb.BlockID(height=1), end=pb.BlockID(height=5_000))
    with wallet_stub(gateway, light_wallet) as stub:
        streams = [stub.GetBlockRange(request_range, metadata=bearer("bench"), timeout=30) for _ in range(40)]
        outcomes: list[Any] = []
        for stream in streams:
            try:
                outcomes.append(next(stream).height)
            except grpc.RpcError as error:
                outcomes.append(error.code())
        for stream in streams:
            stream.cancel()
    assert outcomes.count(1) == GATEWAY_MAX_CALLS_PER_CALLER
    assert outcomes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 40 - GATEWAY_MAX_CALLS_PER_CALLER


def test_malformed_requests_get_client_errors_never_500(gateway: Gateway) -> None:
    # This test's own log lines only: the module's other tests share the gateway, in whatever order they ran.
    logged_before = len(gateway.log.read_text().splitlines())
    auth = {"Authorization": basic("exchange")}
    status, _, body = request(gateway, b'{"method":{"toString":0}}', headers=auth)
    assert status == 400 and json.loads(body)["error"]["code"] == -32600
    status, _, body = request(gateway, b'[{"method":{"toString":0},"id":1}]', headers=auth)
    assert status == 200 and json.loads(body)[0]["error"]["code"] == -32600
    status, _, body = request(gateway, b'{"method":"getblockcount","method":"stop","id":1}', headers=auth)
    assert status == 400 and "twice" in json.loads(body)["error"]["message"]
    # An allowed method last (JSON.parse keeps the last, the node the first), or another member twice: refused too,
    # though each parses to an allowed call.
    for twice in (b'{"method":"stop","method":"getblockcount","id":1}', b'{"id":1,"method":"getblockcount","id":2}'):
        status, _, body = request(gateway, twice, headers=auth)
        assert status == 400 and "twice" in json.loads(body)["error"]["message"], twice
    # A member's name also written as a value is no duplicate: the call passes, as sent.
    named = b'{"method":"getblockcount","params":["method","id"],"id":1}'
    assert request(gateway, named, headers=auth)[0] == 200 and gateway.node.received[-1] == named
    # The same member spelt with an escape is the same member; in a batch, refused in its place.
    escaped = b'[{"method":"getblockcount","id":1}, {"method":"getblockcount","\\u006dethod":"stop","id":2}]'
    status, _, body = request(gateway, escaped, headers=auth)
    answers = json.loads(body)
    assert status == 200 and answers[0]["result"] == {"answered": "getblockcount"}
    assert answers[1]["id"] == 2 and "twice" in answers[1]["error"]["message"]
    assert b"stop" not in gateway.node.received[-1]
    for body_text in (b"null", b"1", b'"x"', b"{not json"):
        assert request(gateway, body_text, headers=auth)[0] == 400, body_text
    assert request(gateway, None, method="GET", headers=auth)[0] == 405
    # A GET on a gRPC path: HTTP 405 with a gRPC status, logged as UNIMPLEMENTED (12), not UNAVAILABLE (14).
    path = "/cash.z.wallet.sdk.rpc.CompactTxStreamer/GetLatestBlock"
    status, headers, _ = request(
        gateway, None, method="GET", path=path, headers={"Authorization": "Bearer " + KEYS["exchange"]}
    )
    assert status == 405 and headers["grpc-status"] == "12"
    time.sleep(0.2)
    lines = gateway.log.read_text().splitlines()[logged_before:]
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert [e["code"] for e in entries if e["path"] == path] == ["12"]
    assert not [e for e in entries if e["status"] == "500"]


def test_grpc_reflection_and_health_get_a_grpc_status(gateway: Gateway, light_wallet: LightWallet) -> None:
    import grpc

    assert gateway.certificate is not None
    credentials = grpc.ssl_channel_credentials(root_certificates=gateway.certificate.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{gateway.port}", credentials) as channel:
        for method in (
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ):
            call = channel.unary_unary(method)
            with pytest.raises(grpc.RpcError) as raised:
                call(b"", timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED, method


def test_only_the_gateways_headers_reach_the_node_and_the_light_wallet_server(
    gateway: Gateway, light_wallet: LightWallet
) -> None:
    spoofed = {
        "Cookie": "session=abc",
        "X-Forwarded-For": "10.0.0.1",
        "Proxy-Authorization": "Basic eDp5",
        "X-Caller-Thing": "1",
    }
    status, _, _ = request(
        gateway, b'{"method":"getblockcount","id":1}', headers={"Authorization": basic("exchange"), **spoofed}
    )
    assert status == 200
    assert {name.lower() for name in gateway.node.headers[-1]} <= {
        "host",
        "connection",
        "content-length",
        "authorization",
        "content-type",
    }
    pb = light_wallet.modules.pb
    metadata = [*bearer("exchange"), ("cookie", "session=abc"), ("x-forwarded-for", "10.0.0.1")]
    with wallet_stub(gateway, light_wallet) as stub:
        stub.GetLatestBlock(pb.ChainSpec(), metadata=metadata, timeout=10)
    seen = light_wallet.seen_metadata[-1]
    assert not {"authorization", "cookie", "x-forwarded-for"} & set(seen)


def test_only_allowlisted_grpc_metadata_reaches_the_light_wallet_server(
    gateway: Gateway, light_wallet: LightWallet
) -> None:
    """nginx's gRPC proxy forwards every caller header; the gateway holds them to an allowlist: blanked headers are
    removed, unknown metadata refuses the call before it is forwarded, and calls with gRPC's own headers still pass,
    unary and streaming."""
    import grpc

    pb = light_wallet.modules.pb
    request_range = pb.BlockRange(start=pb.BlockID(height=1), end=pb.BlockID(height=3))
    with wallet_stub(gateway, light_wallet) as stub:
        cookie = [*bearer("exchange"), ("cookie", "session=abc"), ("grpc-accept-encoding", "identity")]
        before = len(light_wallet.seen_metadata)
        assert stub.GetLatestBlock(pb.ChainSpec(), metadata=cookie, timeout=10).height > 0
        assert [block.height for block in stub.GetBlockRange(request_range, metadata=cookie, timeout=10)] == [1, 2, 3]
        seen = light_wallet.seen_metadata[before:]
        assert len(seen) == 2
        for received in seen:
            assert set(received) <= set(GRPC_FORWARDED_HEADERS), set(received) - set(GRPC_FORWARDED_HEADERS)
        # gRPC's own retry and tracing metadata is what libraries add unasked: it passes.
        retried = [*bearer("exchange"), ("grpc-previous-rpc-attempts", "1"), ("grpc-trace-bin", b"\x01")]
        before = len(light_wallet.seen_metadata)
        assert stub.GetLatestBlock(pb.ChainSpec(), metadata=retried, timeout=10).height > 0
        assert len(light_wallet.seen_metadata) == before + 1  # forwarded (gRPC servers consume grpc-* themselves)
        for extra in [("x-evil", "1"), ("x-evil-bin", b"\x00\x01"), ("x-client-id", "wallet-42")]:
            before = len(light_wallet.seen_metadata)
            metadata = [*bearer("exchange"), extra]
            calls = [
                lambda: stub.GetLatestBlock(pb.ChainSpec(), metadata=metadata, timeout=10),  # noqa: B023 (called here)
                lambda: list(stub.GetBlockRange(request_range, metadata=metadata, timeout=10)),  # noqa: B023
            ]
            for call in calls:
                with pytest.raises(grpc.RpcError) as raised:
                    call()
                assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, extra[0]
            assert len(light_wallet.seen_metadata) == before, f"{extra[0]} reached the light-wallet server"


def tampered(gateway: Gateway, change: Any) -> Iterator[None]:
    original = read_user_table(gateway.config_dir)
    data = json.loads(json.dumps(original))
    change(data)
    write_user_table(gateway.config_dir, data)
    try:
        yield
    finally:
        write_user_table(gateway.config_dir, original)


def test_an_empty_key_is_refused_whatever_the_table_says(gateway: Gateway) -> None:
    def add_empty(data: dict[str, Any]) -> None:
        entry = dict(next(iter(data["users"].values())), name="empty", expires=None)
        data["users"][hashlib.sha256(b"").hexdigest()] = entry

    for _ in tampered(gateway, add_empty):
        for authorization in ("Basic " + base64.b64encode(b"empty:").decode(), "Bearer "):
            status = request(gateway, b'{"method":"getblockcount","id":1}', headers={"Authorization": authorization})[0]
            assert status == 401, authorization


def test_a_rate_bucket_unknown_to_this_nginx_conf_still_limits(gateway: Gateway) -> None:
    """Mid-rollout, an old replica reads a new user table (a rate change) before its nginx.conf changes: the caller
    is counted in the strictest bucket it knows (the harness's 1/s, burst 1), never in none."""

    def new_rate(data: dict[str, Any]) -> None:
        for entry in data["users"].values():
            if entry["name"] == "analytics":
                entry["bucket"] = "r777b1554"

    for _ in tampered(gateway, new_rate):
        statuses = [
            request(gateway, b'{"method":"getblockcount","id":1}', headers={"Authorization": basic("analytics")})[0]
            for _ in range(5)
        ]
    assert statuses[0] == 200 and 429 in statuses


def test_anonymous_calls_are_limited_per_client_address(engine: Engine, tmp_path: Path) -> None:
    """The anonymous profile (5/s, burst 20) is counted per address: 127.0.0.1 reaches 429, 127.0.0.2 is not
    affected. Without the zone nothing would be refused; keyed without the address, 127.0.0.2 would be too."""
    with gateway_before_a_node(tmp_path, engine=engine) as gateway:
        call = b'{"method":"getinfo","id":1}'

        def one(source: str) -> int:
            return request(gateway, call, source=source)[0]

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            first = list(pool.map(one, ["127.0.0.1"] * 60))
        elapsed = time.monotonic() - started
        # The burst, and what 5/s refilled while the calls ran (a loaded machine makes them slower, not freer).
        assert 20 <= first.count(200) <= 21 + 5 * elapsed + 1 and first.count(429) >= 1, (first, elapsed)
        assert set(first) == {200, 429}
        assert one("127.0.0.2") == 200


def test_anonymous_is_a_reserved_user_name() -> None:
    with pytest.raises(ConfigError, match="anonymous names callers without a key"):
        parse_access({"users": [{"name": "anonymous", "keySha256": "0" * 64}]}, "access/x.yaml")


def test_anonymous_requests_in_progress_are_capped_in_all_by_the_body_budget(engine: Engine, tmp_path: Path) -> None:
    """With 1 MiB bodies, 32 anonymous requests may read theirs at once (each may hold a 2 MiB buffer: 64 MiB),
    from whatever addresses: 12 addresses holding 8 slow bodies each get 32 in and 64 refused at once."""
    max_body = 1024 * 1024
    assert anonymous_requests_cap(max_body) == 32
    with gateway_before_a_node(tmp_path, max_body_bytes=max_body, engine=engine) as gateway:
        connections = [held_open(gateway, f"127.0.1.{1 + a}", None) for a in range(12) for _ in range(8)]
        try:
            refused = sum(answered_within(c, 0.05).startswith(b"HTTP/1.1 429") for c in connections)
            assert refused == 64
        finally:
            for connection in connections:
                connection.close()
