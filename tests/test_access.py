"""The instance administrator's access file and `zbi access`: strict validation against the upstream method lists,
keys shown once and stored as hashes, edits that keep the file's comments and never leave it invalid."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, UPSTREAM
from zbi_infra.access_keys import KEY_PREFIX, UserGrant, create_key, describe_users, key_hash, new_key, revoke
from zbi_infra.cli import main
from zbi_infra.config.access import (
    NEVER_EXPOSED,
    RateLimit,
    light_wallet_service,
    never_exposed,
    parse_access,
    read_access_file,
    zebrad_rpc_methods,
)
from zbi_infra.errors import ConfigError

TODAY = date(2026, 11, 25)
HASH = "ab" * 32


@pytest.fixture
def access_file(tmp_path: Path) -> Path:
    path = tmp_path / "testnet.yaml"
    shutil.copy(ROOT / "access" / "testnet.yaml", path)
    return path


def test_the_method_lists_are_upstreams(tmp_path: Path) -> None:
    """The packaged lists are the vendored upstream facts, and the vendored protos compile into that very service."""
    assert sorted(zebrad_rpc_methods()) == json.loads((UPSTREAM / "zebra" / "rpc-methods.json").read_text())["methods"]
    service, methods = light_wallet_service()
    from grpc_tools import protoc

    protos = UPSTREAM / "lightwalletd" / "walletrpc"
    descriptor = tmp_path / "set.pb"
    status = protoc.main(["protoc", f"-I{protos}", f"--descriptor_set_out={descriptor}", str(protos / "service.proto")])
    assert status == 0
    from google.protobuf import descriptor_pb2

    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    (proto,) = [f for f in files.file if f.name == "service.proto"]
    (compiled,) = [s for s in proto.service if f"{proto.package}.{s.name}" == service]
    assert {
        m.name: {"client_streaming": m.client_streaming, "server_streaming": m.server_streaming}
        for m in compiled.method
    } == methods
    assert methods["GetBlockRange"]["server_streaming"] and not methods["GetLightdInfo"]["server_streaming"]


def test_the_shipped_access_file_is_valid_and_exposes_nothing_dangerous() -> None:
    access = read_access_file(ROOT / "access" / "testnet.yaml")
    assert access.json_rpc.methods and not any(never_exposed(m) for m in access.json_rpc.methods)
    assert access.anonymous is not None and access.anonymous.json_rpc == []
    # Every method of the never-exposed list that zebrad implements is refused, whatever the file says.
    implemented = sorted(NEVER_EXPOSED & zebrad_rpc_methods())
    assert {"stop", "addnode", "getpeerinfo", "generate"} <= set(implemented)
    # Every z_ method zebrad implements is refused (zcashd's are the wallet's), but its two read-only chain queries.
    z_methods = sorted(m for m in zebrad_rpc_methods() if m.startswith("z_"))
    assert {"z_validateaddress", "z_gettreestate", "z_getsubtreesbyindex"} <= set(z_methods)
    for method in [*implemented, *(m for m in z_methods if m not in ("z_gettreestate", "z_getsubtreesbyindex"))]:
        with pytest.raises(ConfigError, match=rf"jsonRpc\.methods: '{method}' is never exposed"):
            parse_access({"jsonRpc": {"methods": [method]}}, "access/x.yaml")
    allowed = parse_access({"jsonRpc": {"methods": ["z_gettreestate", "z_getsubtreesbyindex"]}}, "access/x.yaml")
    assert allowed.json_rpc.methods == ["z_gettreestate", "z_getsubtreesbyindex"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"jsonRpc": {"methods": ["getblokcount"]}},
            "jsonRpc.methods: 'getblokcount' is not a zebrad JSON-RPC method. Fix: did you mean 'getblockcount'?",
        ),
        (
            {"grpc": {"methods": ["GetBlockRang"]}},
            "grpc.methods: 'GetBlockRang' is not a method of "
            "cash.z.wallet.sdk.rpc.CompactTxStreamer. Fix: did you mean 'GetBlockRange'?",
        ),
        ({"grpc": {"methods": ["GetBlock", "GetBlock"]}}, "GetBlock listed twice"),
        ({"usres": []}, "usres: unknown key. Fix: remove it (did you mean 'users'?)"),
        ({"users": [{"name": "a", "keySha256": "xyz"}]}, "users[0].keySha256: 'xyz' has the wrong form"),
        ({"users": [{"name": "A B", "keySha256": HASH}]}, "users[0].name: 'A B' is not a user name"),
        ({"users": [{"keySha256": HASH}]}, "users[0].name: required but not set. Fix: set it in access/x.yaml"),
        (
            {"users": [{"name": "a", "keySha256": HASH, "grpc": ["GetBlock"]}]},
            "users[0].grpc: GetBlock not in grpc.methods, which the instance exposes",
        ),
        (
            {"jsonRpc": {"methods": ["getblock"]}, "users": [{"name": "a", "keySha256": HASH, "jsonRpc": ["stop"]}]},
            "users[0].jsonRpc: stop never exposed",
        ),
        ({"anonymous": {"grpc": ["GetBlock"]}}, "anonymous.grpc: GetBlock not in grpc.methods"),
        ({"users": [{"name": "a", "keySha256": HASH}, {"name": "a", "keySha256": "cd" * 32}]}, "a listed twice"),
        ({"users": [{"name": "a", "keySha256": HASH}, {"name": "b", "keySha256": HASH}]}, "two users share a key"),
        (
            {"users": [{"name": "a", "keySha256": HASH, "rateLimit": {"requestsPerSecond": "5"}}]},
            "users[0].rateLimit.requestsPerSecond: Input should be a valid integer",
        ),
        ({"users": [{"name": "a", "keySha256": HASH, "expires": "soon"}]}, "users[0].expires"),
        (["jsonRpc"], "access/x.yaml: the file must be a mapping"),
    ],
)
def test_bad_access_files_name_the_key_and_the_fix(document: object, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_access(document, "access/x.yaml")
    text = str(raised.value)
    assert text.startswith("invalid access file:")
    assert message in text, text
    assert all(line.startswith("  - access/x.yaml") for line in text.splitlines()[1:])


def test_keys_are_long_random_and_recognisable() -> None:
    keys = {new_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith(KEY_PREFIX)
        body = key.removeprefix(KEY_PREFIX)
        assert re.fullmatch(r"[A-Za-z0-9_-]+", body) and len(body) * 6 >= 128
    # Characters spread over the whole URL-safe alphabet: the body is not a counter or a clock.
    alphabet = {c for key in keys for c in key.removeprefix(KEY_PREFIX)}
    assert len(alphabet) > 60


def test_create_key_stores_the_hash_only_and_keeps_the_comments(access_file: Path) -> None:
    before = access_file.read_text()
    key = create_key(access_file, "exchange-a", UserGrant(expires=date(2027, 6, 1)), today=TODAY)
    after = access_file.read_text()
    assert key not in after and key.removeprefix(KEY_PREFIX) not in after
    assert key_hash(key) in after
    comments = [line.strip() for line in before.splitlines() if line.strip().startswith("#")]
    assert comments and all(comment in after for comment in comments)
    access = read_access_file(access_file)
    user = access.user("exchange-a")
    assert user is not None and user.key_sha256 == key_hash(key) and user.expires == date(2027, 6, 1)
    # Rotation: a new key for the same user replaces the hash; still one entry.
    rotated = create_key(access_file, "exchange-a", UserGrant(), today=TODAY)
    access = read_access_file(access_file)
    assert [u.name for u in access.users] == ["exchange-a"]
    assert access.users[0].key_sha256 == key_hash(rotated) != key_hash(key)


def test_a_narrower_grant_and_its_rate(access_file: Path) -> None:
    grant = UserGrant(
        json_rpc=["getblockcount", "getblock"], grpc=["GetLatestBlock"], rate_limit=RateLimit(requests_per_second=50)
    )
    create_key(access_file, "analytics", grant, today=TODAY)
    access = read_access_file(access_file)
    user = access.user("analytics")
    assert access.allowed(user) == (["getblockcount", "getblock"], ["GetLatestBlock"])
    assert user is not None and user.rate_limit.effective_burst() == 100


def test_an_edit_that_would_make_the_file_invalid_changes_nothing(access_file: Path) -> None:
    before = access_file.read_bytes()
    for grant in (UserGrant(json_rpc=["stop"]), UserGrant(grpc=["GetNothing"]), UserGrant(json_rpc=["getpeerinfo"])):
        with pytest.raises(ConfigError):
            create_key(access_file, "mallory", grant, today=TODAY)
        assert access_file.read_bytes() == before
    with pytest.raises(ConfigError, match="already past"):
        create_key(access_file, "late", UserGrant(expires=TODAY), today=TODAY)
    assert access_file.read_bytes() == before


def test_revoke_removes_the_user_and_their_hash(access_file: Path) -> None:
    keep = create_key(access_file, "keep", UserGrant(), today=TODAY)
    gone = create_key(access_file, "gone", UserGrant(), today=TODAY)
    revoke(access_file, "gone")
    text = access_file.read_text()
    assert key_hash(gone) not in text and key_hash(keep) in text
    assert [u.name for u in read_access_file(access_file).users] == ["keep"]
    with pytest.raises(ConfigError, match=r"no user 'gone' \(users: keep\)"):
        revoke(access_file, "gone")


def test_list_shows_what_each_user_may_call_and_expired_keys(access_file: Path) -> None:
    create_key(access_file, "old", UserGrant(expires=date(2026, 12, 1)), today=TODAY)
    rows = {row["user"]: row for row in describe_users(read_access_file(access_file), today=date(2027, 1, 1))}
    assert rows["old"]["status"] == "expired"
    assert rows["(anonymous)"]["jsonRpc"] == [] and "GetBlockRange" in rows["(anonymous)"]["grpc"]
    assert rows["(anonymous)"]["rate"] == "5/s burst 20"


def test_the_command(access_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--file", str(access_file), "--project-dir", str(ROOT)]
    assert main(["access", "create-key", "testnet", "wallet-co", "--grpc", "GetLatestBlock,GetBlock", *common]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith(KEY_PREFIX) and key_hash(key) in access_file.read_text()
    assert main(["access", "list", "testnet", "--json", *common]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"user": "wallet-co", "grpc": ["GetLatestBlock", "GetBlock"]}.items() <= rows[-1].items()
    assert main(["access", "check", "testnet", *common]) == 0
    assert main(["access", "revoke", "testnet", "wallet-co", *common]) == 0
    assert main(["access", "revoke", "testnet", "wallet-co", *common]) == 2
    assert "no user 'wallet-co'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["access", "check", "Not_An_Instance"], "is not an instance name"),
        (["access", "create-key", "testnet", "u", "--rate", "0"], "is not a whole number of at least 1"),
        (["access", "create-key", "testnet", "u", "--expires", "tomorrow"], "is not a date; write YYYY-MM-DD"),
        (["access", "create-key", "testnet", "u", "--grpc", ","], "give at least one method"),
    ],
)
def test_bad_arguments_are_refused_with_the_fix(argv: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zbi_infra.cli", *argv], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_a_missing_or_broken_access_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such access file"):
        read_access_file(tmp_path / "none.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("users: [\n")
    with pytest.raises(ConfigError, match=r"line 2: .*Fix: correct the YAML syntax"):
        read_access_file(broken)
    assert yaml.safe_load((ROOT / "access" / "testnet.yaml").read_text())["users"] == []


def test_every_access_file_in_the_repository_is_valid_and_names_a_declared_instance(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = sorted((ROOT / "access").glob("*.yaml"))
    assert files
    for path in files:
        assert main(["access", "check", path.stem, "--project-dir", str(ROOT)]) == 0, capsys.readouterr().err
    assert "instance of stack dev" in capsys.readouterr().out
    orphan = tmp_path / "orphan.yaml"
    shutil.copy(files[0], orphan)
    assert main(["access", "check", "orphan", "--file", str(orphan), "--project-dir", str(ROOT)]) == 2
    assert "'orphan' is declared in no stack's zbi:instances" in capsys.readouterr().err


@pytest.mark.parametrize("action", [["check"], ["create-key"], ["init"]])
def test_a_misspelt_instance_gets_did_you_mean_and_nothing_is_written(
    action: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "tesnet.yaml"
    extra = ["alice"] if action == ["create-key"] else []
    args = ["access", *action, "tesnet", *extra, "--file", str(target), "--project-dir", str(ROOT)]
    assert main(args) == 2
    assert "did you mean 'testnet'?" in capsys.readouterr().err
    assert not target.exists()
