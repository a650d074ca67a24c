"""What an access file means, asked of the gateway that enforces it (the rendered nginx + njs, live on loopback) and of
`zbi access list` that reports it: the two must agree. An empty method list is "nothing", never "unset"; a key that
expires today is refused today."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.gateway_harness import (
    KEYS,
    Gateway,
    gateway_before_a_node,
    read_user_table,
    write_user_table,
)
from zbi_infra.access_keys import describe_users, key_hash, new_key
from zbi_infra.cli import main
from zbi_infra.config.access import AccessFile, parse_access, read_access_file
from zbi_infra.render.gateway import users_table
from zbi_infra.render.gateway_engines import Engine

JSON_RPC = ["getblockcount", "getblock", "getblockchaininfo", "getinfo"]
GRPC = ["GetLightdInfo", "GetLatestBlock", "GetBlockRange"]
OWN_KEYS = {name: new_key() for name in ("grpc-only", "today", "tomorrow", "unset")}


def utc_today() -> date:
    # The gateway's njs takes the day from `new Date().toISOString()`: UTC.
    return datetime.now(UTC).date()


def access_file(today: date) -> AccessFile:
    return parse_access(
        {
            "jsonRpc": {"methods": JSON_RPC},
            "grpc": {"methods": GRPC},
            "users": [
                {"name": "exchange", "keySha256": key_hash(KEYS["exchange"])},
                {"name": "grpc-only", "keySha256": key_hash(OWN_KEYS["grpc-only"]), "jsonRpc": [], "grpc": GRPC},
                {"name": "unset", "keySha256": key_hash(OWN_KEYS["unset"])},
                {"name": "today", "keySha256": key_hash(OWN_KEYS["today"]), "expires": today.isoformat()},
                {
                    "name": "tomorrow",
                    "keySha256": key_hash(OWN_KEYS["tomorrow"]),
                    "expires": (today + timedelta(days=1)).isoformat(),
                },
            ],
        },
        "access/semantics.yaml",
    )


@pytest.fixture(scope="module")
def gateway(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with gateway_before_a_node(tmp_path_factory.mktemp("gateway"), engine=engine) as gw:
        yield gw


@contextmanager
def serving(gateway: Gateway, access: AccessFile) -> Iterator[None]:
    """The gateway reads its user table at each request: swap ours in for the block."""
    original = read_user_table(gateway.config_dir)
    write_user_table(gateway.config_dir, users_table(access))
    try:
        yield
    finally:
        write_user_table(gateway.config_dir, original)


def test_an_empty_json_rpc_list_grants_no_json_rpc_method(gateway: Gateway) -> None:
    access = access_file(utc_today())
    assert access.allowed(access.user("grpc-only")) == ([], GRPC)
    assert access.allowed(access.user("unset")) == (JSON_RPC, GRPC)  # absent: everything the instance exposes
    rows = {row["user"]: row for row in describe_users(access, today=utc_today())}
    assert rows["grpc-only"]["jsonRpc"] == [] and rows["unset"]["jsonRpc"] == JSON_RPC
    with serving(gateway, access):
        before = node_calls(gateway)
        for method in JSON_RPC:
            status, body = gateway.call({"method": method, "id": 1}, user="grpc-only", key=OWN_KEYS["grpc-only"])
            assert status == 200 and body["result"] is None and body["error"]["code"] == -32601, (method, body)
        assert node_calls(gateway) == before  # nothing reached the node
        status, body = gateway.call({"method": "getblockcount", "id": 1}, user="unset", key=OWN_KEYS["unset"])
        assert status == 200 and body["result"] == {"answered": "getblockcount"}


def node_calls(gateway: Gateway) -> int:
    assert gateway.node is not None
    return len(gateway.node.seen_auth)


def test_a_key_expiring_today_is_refused_today_by_the_gateway_and_listed_as_expired(gateway: Gateway) -> None:
    today = utc_today()
    access = access_file(today)
    with serving(gateway, access):
        results = {
            user: gateway.call({"method": "getblockcount", "id": 1}, user=user, key=OWN_KEYS[user])[0]
            for user in ("today", "tomorrow")
        }
    if utc_today() != today:  # the day turned while we asked: ask again tomorrow
        pytest.fail("the UTC day changed during the test; run it again")
    assert results == {"today": 401, "tomorrow": 200}
    rows = {row["user"]: row["status"] for row in describe_users(access, today=today)}
    assert (rows["today"], rows["tomorrow"]) == ("expired", "active")
    assert not access.user("today").active_on(today) and access.user("today").active_on(today - timedelta(days=1))


@pytest.mark.parametrize(
    ("flags", "rate", "burst"),
    [(["--rate", "3"], 3, 6), (["--rate", "3", "--burst", "4"], 3, 4)],
    ids=["rate-alone", "both"],
)
def test_create_key_rate_flags(tmp_path: Path, flags: list[str], rate: int, burst: int) -> None:
    """`--rate` alone bursts at twice the rate, as the access file's own default does; both flags are kept."""
    path = tmp_path / "testnet.yaml"
    shutil.copy(ROOT / "access" / "testnet.yaml", path)
    assert (
        main(["access", "create-key", "testnet", "rated", *flags, "--file", str(path), "--project-dir", str(ROOT)]) == 0
    )
    limit = read_access_file(path).user("rated").rate_limit
    assert (limit.requests_per_second, limit.effective_burst()) == (rate, burst)


def test_create_key_refuses_a_burst_without_a_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A burst is allowed above a rate: alone it would silently take a default rate the caller never chose."""
    path = tmp_path / "testnet.yaml"
    shutil.copy(ROOT / "access" / "testnet.yaml", path)
    before = path.read_bytes()
    code = main(
        ["access", "create-key", "testnet", "rated", "--burst", "7", "--file", str(path), "--project-dir", str(ROOT)]
    )
    assert code == 2
    assert "--burst needs --rate" in capsys.readouterr().err
    assert path.read_bytes() == before
