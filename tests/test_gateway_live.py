"""The access gateway, live, as its callers meet it: the nginx.conf and njs module zBI renders run in Debian's nginx
on loopback, with TLS, in front of a JSON-RPC server that answers like zebrad (JSON-RPC over HTTP, basic auth with the
node's own credentials) and a CompactTxStreamer server; real HTTP and gRPC clients call it as end users would. One
gateway serves the whole module; the tests that stop its upstreams, stop nginx or read its log through mtail and the
blackbox exporter start their own (test_gateway_standalone_live.py). Every server binds 127.0.0.1, every call has a
timeout, and the fixture stops nginx and the node at the end."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.gateway_harness import (
    KEYS,
    Gateway,
    access,
    bearer,
    gateway_before_a_node,
    read_user_table,
    wallet_stub,
    write_user_table,
)
from tests.json_rpc_node import NODE_CREDENTIALS, TIP
from tests.light_wallet_server import LightWallet, real_compact_block, serving_light_wallet
from zbi_infra.access_keys import new_key
from zbi_infra.config.access import light_wallet_service
from zbi_infra.render.gateway import users_table
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


def test_an_allowed_call_reaches_the_node_with_the_nodes_credentials_only(gateway: Gateway) -> None:
    status, body = gateway.call({"jsonrpc": "1.0", "method": "getblockcount", "params": [], "id": 7})
    assert (status, body) == (200, {"result": {"answered": "getblockcount"}, "error": None, "id": 7})
    node_auth = "Basic " + base64.b64encode(NODE_CREDENTIALS.encode()).decode()
    assert gateway.node.seen_auth[-1] == node_auth
    assert not any(KEYS["exchange"] in base64.b64decode(a.split()[-1]).decode() for a in gateway.node.seen_auth if a)


def test_a_method_outside_the_users_set_gets_a_json_rpc_error(gateway: Gateway) -> None:
    status, body = gateway.call({"method": "getblock", "params": ["1"], "id": "a"}, user="analytics")
    assert status == 200 and body["id"] == "a" and body["result"] is None
    assert body["error"]["code"] == -32601 and "getblock" in body["error"]["message"]
    # A method the instance does not expose at all, and one no file may expose.
    for method in ("getpeerinfo", "stop"):
        status, body = gateway.call({"method": method, "id": 1})
        assert status == 200 and body["error"]["code"] == -32601


def test_a_batch_is_checked_element_by_element(gateway: Gateway) -> None:
    batch = [
        {"method": "getblockcount", "id": 1},
        {"method": "stop", "id": 2},
        {"method": "getblockchaininfo", "id": 3},
        {"id": 4},
    ]
    before = len(gateway.node.seen_auth)
    status, body = gateway.call(batch)
    assert status == 200 and [answer["id"] for answer in body] == [1, 2, 3, 4]
    assert body[0]["result"] == {"answered": "getblockcount"} and body[2]["result"] == {"answered": "getblockchaininfo"}
    assert body[1]["error"]["code"] == -32601 and body[3]["error"]["code"] == -32600  # no method: invalid
    assert len(gateway.node.seen_auth) == before + 1  # one forwarded batch, of the allowed calls only
    status, body = gateway.call([{"method": "stop", "id": 1}])
    assert status == 200 and body[0]["error"]["code"] == -32601
    assert len(gateway.node.seen_auth) == before + 1


@pytest.mark.parametrize(
    ("user", "key"),
    [
        ("exchange", "zbik_wrong"),  # wrong key
        ("analytics", KEYS["exchange"]),  # another user's key
        ("expired", None),  # expired
        ("revoked", new_key()),  # not in the table
    ],
    # Named, not by the keys: they are random per process, and every xdist worker must collect the same ids.
    ids=["wrong", "another-users", "expired", "revoked"],
)
def test_bad_keys_get_401(gateway: Gateway, user: str, key: str | None) -> None:
    status, body = gateway.call({"method": "getblockcount", "id": 1}, user=user, key=key)
    assert status == 401 and body["error"]["code"] == -32600


def test_each_request_on_a_kept_alive_connection_is_identified_anew(gateway: Gateway) -> None:
    """gateway.js keeps the caller in module state, which njs gives each request afresh: on one connection, callers
    with different allowlists take turns, and each gets their own verdict, never the previous request's."""
    import http.client

    connection = http.client.HTTPSConnection("127.0.0.1", gateway.port, context=gateway.context, timeout=10)

    def call(user: str | None, method: str) -> Any:
        headers = {"Content-Type": "application/json"}
        if user is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{KEYS[user]}".encode()).decode()
        connection.request("POST", "/", body=json.dumps({"method": method, "id": 1}), headers=headers)
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Connection") != "close"
        return json.loads(response.read())

    try:
        for _ in range(3):
            assert call("exchange", "getblockchaininfo")["result"] == {"answered": "getblockchaininfo"}
            assert call("analytics", "getblockchaininfo")["error"]["code"] == -32601  # not in analytics' set
            assert call(None, "getblockcount")["error"]["code"] == -32601  # anonymous: getinfo only
            assert call("exchange", "getblockcount")["result"] == {"answered": "getblockcount"}
    finally:
        connection.close()


def test_anonymous_clients_get_the_anonymous_profile(gateway: Gateway) -> None:
    result = gateway.call({"method": "getinfo", "id": 1}, user=None)[1]["result"]
    # zebrad's last WARN/ERROR log line stays at the gateway; the rest of the answer passes.
    assert result["blocks"] == TIP and result["errors"] == "withheld by the gateway"
    status, body = gateway.call({"method": "getblockcount", "id": 1}, user=None)
    assert status == 200 and body["error"]["code"] == -32601


def test_bad_requests(gateway: Gateway) -> None:
    status, body = gateway.call(None, raw=b"{not json")
    assert status == 400 and body["error"]["code"] == -32700
    status, body = gateway.call(None, raw=json.dumps({"method": "getblock", "params": ["x" * 20000]}).encode())
    assert status == 413 and body["error"]["message"] == "request body too large"


def test_the_rate_limit_is_reached_and_recovers(gateway: Gateway) -> None:
    statuses = [gateway.call({"method": "getblockcount", "id": i}, user="slow")[0] for i in range(6)]
    assert statuses[0] == 200 and 429 in statuses
    limited = gateway.call({"method": "getblockcount", "id": 1}, user="slow")
    assert limited[0] == 429 and limited[1]["error"]["code"] == -32005
    time.sleep(2.2)
    assert gateway.call({"method": "getblockcount", "id": 1}, user="slow")[0] == 200
    # Another user's budget is their own.
    assert gateway.call({"method": "getblockcount", "id": 1})[0] == 200


def test_concurrent_clients(gateway: Gateway) -> None:
    def one(i: int) -> int:
        return gateway.call({"method": "getblockcount", "id": i})[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(one, range(200))) == [200] * 200


def test_keys_rotate_and_revoke_without_a_restart(gateway: Gateway) -> None:
    original = read_user_table(gateway.config_dir)
    rotated = dict(KEYS, exchange=new_key())
    # Seen first by every worker (on new connections), as a key in use is: the Lua engine then keeps what its header
    # names, and must still check the entry per request.
    assert [gateway.call({"method": "getblockcount", "id": i})[0] for i in range(8)] == [200] * 8
    try:
        write_user_table(gateway.config_dir, users_table(access(rotated)))
        assert gateway.call({"method": "getblockcount", "id": 1})[0] == 401
        assert gateway.call({"method": "getblockcount", "id": 1}, key=rotated["exchange"])[0] == 200
    finally:
        write_user_table(gateway.config_dir, original)
    assert gateway.call({"method": "getblockcount", "id": 1})[0] == 200


def test_never_exposed_methods_are_refused_whatever_the_table_says(gateway: Gateway) -> None:
    original = read_user_table(gateway.config_dir)
    tampered = json.loads(json.dumps(original))
    for entry in tampered["users"].values():
        entry["jsonRpc"] += ["stop", "z_sendmany", "setban"]
    try:
        write_user_table(gateway.config_dir, tampered)
        for method in ("stop", "z_sendmany", "setban"):
            status, body = gateway.call({"method": method, "id": 1})
            assert status == 200 and body["error"]["code"] == -32601, method
        assert gateway.call({"method": "getblockcount", "id": 1})[1]["result"] == {"answered": "getblockcount"}
    finally:
        write_user_table(gateway.config_dir, original)


def test_an_empty_key_never_authenticates_whatever_the_table_says(gateway: Gateway) -> None:
    """The model refuses the SHA-256 of "" (test_access_input); the gateway refuses an empty key before hashing it,
    so a table that slipped such an entry through still lets no one in without a key."""
    original = read_user_table(gateway.config_dir)
    tampered = json.loads(json.dumps(original))
    tampered["users"][hashlib.sha256(b"").hexdigest()] = next(iter(tampered["users"].values()))
    try:
        write_user_table(gateway.config_dir, tampered)
        for user in ("exchange", "analytics"):
            status, body = gateway.call({"method": "getblockcount", "id": 1}, user=user, key="")
            assert status == 401 and body["error"]["code"] == -32600, user
        request = urllib.request.Request(gateway.url, data=b'{"method": "getblockcount", "id": 1}', method="POST")
        request.add_header("Authorization", "Bearer ")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10, context=gateway.context)
        assert refused.value.code == 401
        assert gateway.call({"method": "getblockcount", "id": 1})[0] == 200
    finally:
        write_user_table(gateway.config_dir, original)


def test_the_access_log_names_the_user_never_the_key(gateway: Gateway) -> None:
    gateway.call({"method": "getblockcount", "id": 1})
    time.sleep(0.2)
    entries = [json.loads(line) for line in gateway.log.read_text().splitlines() if line.startswith("{")]
    assert any(e["user"] == "exchange" and e["methods"] == "getblockcount" for e in entries)
    text = gateway.log.read_text()
    assert not any(key in text for key in KEYS.values())


def test_grpc_calls_pass_with_a_key_and_the_key_stays_at_the_gateway(
    gateway: Gateway, light_wallet: LightWallet
) -> None:
    pb = light_wallet.modules.pb
    with wallet_stub(gateway, light_wallet) as stub:
        assert stub.GetLatestBlock(pb.ChainSpec(), metadata=bearer("exchange"), timeout=10).height == TIP
        assert stub.GetLightdInfo(pb.Empty(), metadata=bearer("exchange"), timeout=10).chainName == "test"
    assert light_wallet.seen_metadata and all("authorization" not in m for m in light_wallet.seen_metadata)


def test_refused_grpc_calls_get_grpc_statuses(gateway: Gateway, light_wallet: LightWallet) -> None:
    import grpc

    pb = light_wallet.modules.pb
    service, methods = light_wallet_service()
    assert service == "cash.z.wallet.sdk.rpc.CompactTxStreamer" and "GetTransaction" in methods
    with wallet_stub(gateway, light_wallet) as stub:
        cases = [
            (lambda: stub.GetLatestBlock(pb.ChainSpec(), metadata=[("authorization", "Bearer zbik_wrong")], timeout=10),
             grpc.StatusCode.UNAUTHENTICATED),
            (lambda: stub.GetLatestBlock(pb.ChainSpec(), metadata=bearer("expired"), timeout=10),
             grpc.StatusCode.UNAUTHENTICATED),
            # Narrower user; a method the instance does not expose; anonymous outside its profile.
            (lambda: stub.GetLightdInfo(pb.Empty(), metadata=bearer("analytics"), timeout=10),
             grpc.StatusCode.PERMISSION_DENIED),
            (lambda: stub.GetTransaction(pb.TxFilter(), metadata=bearer("exchange"), timeout=10),
             grpc.StatusCode.PERMISSION_DENIED),
            (lambda: stub.GetLatestBlock(pb.ChainSpec(), timeout=10), grpc.StatusCode.PERMISSION_DENIED),
        ]  # fmt: skip
        for call, code in cases:
            with pytest.raises(grpc.RpcError) as raised:
                call()
            assert raised.value.code() == code, raised.value
        # Anonymous wallets get their profile.
        assert stub.GetLightdInfo(pb.Empty(), timeout=10).blockHeight == TIP
        assert stub.GetLatestBlock(pb.ChainSpec(), metadata=bearer("analytics"), timeout=10).height == TIP


def test_a_ten_thousand_block_stream_passes_through(gateway: Gateway, light_wallet: LightWallet) -> None:
    pb = light_wallet.modules.pb
    start = TIP - 10_000 + 1
    with wallet_stub(gateway, light_wallet) as stub:
        blocks = stub.GetBlockRange(
            pb.BlockRange(start=pb.BlockID(height=start), end=pb.BlockID(height=TIP)),
            metadata=bearer("exchange"),
            timeout=120,
        )
        heights = [block.height for block in blocks]
    assert heights == list(range(start, TIP + 1))


def test_real_compact_blocks_pass_through(gateway: Gateway, light_wallet: LightWallet) -> None:
    """GetBlockRange over real Mainnet blocks (Sapling outputs at 419,201; spends and outputs at 1,046,401), their
    compact form built from the vendored bytes: what the wallet receives is what the server sent."""
    pb, compact = light_wallet.modules.pb, light_wallet.modules.compact
    with wallet_stub(gateway, light_wallet) as stub:
        for height in (419_201, 1_046_401):
            request = pb.BlockRange(start=pb.BlockID(height=height), end=pb.BlockID(height=height))
            (received,) = stub.GetBlockRange(request, metadata=bearer("exchange"), timeout=30)
            expected = real_compact_block(compact, height)
            assert received.SerializeToString() == expected.SerializeToString() and received.vtx, height
    assert sum(len(tx.spends) for tx in expected.vtx) == 6


def test_a_grpc_rate_limit_is_resource_exhausted(gateway: Gateway, light_wallet: LightWallet) -> None:
    import grpc

    codes = []
    with wallet_stub(gateway, light_wallet) as stub:
        for _ in range(6):
            try:
                stub.GetLatestBlock(light_wallet.modules.pb.ChainSpec(), metadata=bearer("slow"), timeout=10)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes and set(codes) <= {
        grpc.StatusCode.OK,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }


def test_the_rendered_module_has_no_placeholder_left() -> None:
    from zbi_infra.render.gateway import GatewayPaths, gateway_js

    text = gateway_js(GatewayPaths(config_dir="/etc/zbi-gateway", upstream_auth_file="/run/secrets/node-rpc"))
    assert "__" not in text.replace("__proto__", "")
    assert "'/etc/zbi-gateway/'" in text and "'key-'" in text and "'anonymous.json'" in text
    assert '"stop"' in text and '"z_"' in text
