"""Property tests of access files and of `zbi access`: whatever file or flags Hypothesis makes up, the outcome is an
exit 2 (or ConfigError) whose every line names the file, key or flag and the fix, with the file untouched, or a valid
file that the gateway renders and the plan accepts. Never a crash, never a half-written or silently wrong file."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from tests.k8s_objects import one
from zbi_infra.access_keys import key_hash
from zbi_infra.cli import main
from zbi_infra.config.access import (
    EMPTY_KEY_SHA256,
    USER_NAME_PATTERN,
    AccessFile,
    light_wallet_service,
    parse_access,
    read_access_file,
    zebrad_rpc_methods,
)
from zbi_infra.errors import ConfigError
from zbi_infra.render.gateway import ANONYMOUS_FILE, KEY_FILE_PREFIX, POD_PATHS, is_user_file, users_files
from zbi_infra.render.gateway_nginx import nginx_conf

SOURCE = "access/testnet.yaml"
JSON_RPC = sorted(zebrad_rpc_methods())
GRPC = sorted(light_wallet_service()[1])
# Names a person might type, names YAML 1.1 reads as something else, names the gateway must never see.
NAMES = ["alice", "bob", "exchange-a", "a.b_c", "no", "on", "null", "1e3", "zbi-probe", "anonymous", "Alice", " alice",
         "alice ", "alice\n", "", "-x", "x" * 65, "é", "a:b"]  # fmt: skip
HOSTILE = ["&a ", "*a", "<<: ", "!!python/object ", "\t", "\x00", "\x1b", "users: []\n", "- ", ": ", "[" * 40, "{",
           "9" * 5000, "2027-02-30", "0o17", "010", "'", '"', "#", "\n  keySha256: " + "ab" * 32, "\ufeff", "…"]  # fmt: skip


def methods(known: list[str], wrong: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.one_of(st.sampled_from(known), st.sampled_from(wrong)), max_size=5)


json_rpc_lists = methods(JSON_RPC, ["stop", "getpeerinfo", "z_sendmany", "getblockcont", ""])
grpc_lists = methods(GRPC, ["GetNothing", "getblock"])
hashes = st.one_of(
    st.sampled_from(["ab" * 32, "cd" * 32, EMPTY_KEY_SHA256, "AB" * 32, "xyz", ""]),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)
expiries = st.one_of(
    st.none(),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)).map(date.isoformat),
    st.sampled_from([0, 1798761600, "2027-02-30", "soon", True, "2027-1-1"]),
)
rate_limits = st.fixed_dictionaries(
    {},
    optional={
        "requestsPerSecond": st.one_of(st.integers(-2, 200_000), st.sampled_from(["5", 1.5, None])),
        "burst": st.integers(-2, 2_000_000),
    },
)
users = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(NAMES), st.text(max_size=70)), "keySha256": hashes},
    optional={"expires": expiries, "jsonRpc": json_rpc_lists, "grpc": grpc_lists, "rateLimit": rate_limits},
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "jsonRpc": st.fixed_dictionaries({"methods": json_rpc_lists}),
        "grpc": st.fixed_dictionaries({"methods": grpc_lists}),
        "anonymous": st.fixed_dictionaries(
            {}, optional={"jsonRpc": json_rpc_lists, "grpc": grpc_lists, "rateLimit": rate_limits}
        ),
        "users": st.lists(users, max_size=4),
    },
)


def assert_explained(error: ConfigError, source: str) -> None:
    assert error.problems, error
    for problem in error.problems:
        assert problem.startswith(source) and "Fix:" in problem, problem
        assert len(problem) < 700, problem


def assert_usable(access: AccessFile) -> None:
    """What the plan does with a valid file: the gateway's users table and nginx.conf render, and hold no way in
    without a key."""
    files = users_files(access)
    assert f"{KEY_FILE_PREFIX}{EMPTY_KEY_SHA256}.json" not in files
    assert all(USER_NAME_PATTERN.fullmatch(user.name) for user in access.users)
    names = [json.loads(text)["name"] for name, text in files.items() if name != ANONYMOUS_FILE]
    assert sorted(names) == sorted(user.name for user in access.users)
    nginx_conf(access, POD_PATHS, listen="0.0.0.0:8443", rpc_upstream="zebrad:8232", grpc_upstream="lwd:9067")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_document_is_a_usable_model_or_an_explained_refusal(document: dict[str, Any]) -> None:
    try:
        access = parse_access(document, SOURCE)
    except ConfigError as error:
        event("refused")
        assert_explained(error, SOURCE)
        return
    event("accepted")
    assert_usable(access)


@contextlib.contextmanager
def scratch(directory: Path) -> Iterator[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    document=documents,
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(HOSTILE)), max_size=3),
)
def test_any_text_is_read_as_a_usable_file_or_an_explained_refusal(
    document: dict[str, Any], edits: list[tuple[int, str]], tmp_path: Path
) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    for position, fragment in edits:
        cut = position % (len(text) + 1)
        text = text[:cut] + fragment + text[cut:]
    with scratch(tmp_path / "text") as directory:
        path = directory / "testnet.yaml"
        path.write_text(text)
        try:
            access = read_access_file(path)
        except ConfigError as error:
            event("refused")
            assert_explained(error, str(path))
            return
        event("accepted")
        assert_usable(access)


# ---- the edit commands --------------------------------------------------------------------------------------------

TODAY = date.today()
create_flags = st.fixed_dictionaries(
    {},
    optional={
        "--expires": st.one_of(
            st.integers(-3, 800).map(lambda days: (TODAY + timedelta(days=days)).isoformat()),
            st.sampled_from(["2027-02-30", "tomorrow", "0"]),
        ),
        "--json-rpc": st.lists(st.sampled_from([*JSON_RPC[:8], "getinfo", "stop", "nosuch", " "]), max_size=3).map(
            ",".join
        ),
        "--grpc": st.lists(st.sampled_from([*GRPC[:6], "GetNothing"]), max_size=3).map(",".join),
        "--rate": st.one_of(
            st.integers(1, 100_000).map(str), st.integers(-1, 200_000).map(str), st.sampled_from(["x", "1e3", "٣"])
        ),
        "--burst": st.one_of(st.integers(0, 1_000_000).map(str), st.integers(-1, 2_000_000).map(str), st.just("")),
    },
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("create-key"), st.one_of(st.sampled_from(NAMES[:2]), st.sampled_from(NAMES)), create_flags),
        st.tuples(st.just("revoke"), st.one_of(st.sampled_from(NAMES[:2]), st.sampled_from(NAMES)), st.just({})),
    ),
    min_size=1,
    max_size=5,
)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's refusals
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "access", root / "access")
    for file in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(file, root / file.name)
    shutil.copytree(ROOT / "stacks", root / "stacks", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=operations)
def test_any_sequence_of_edits_exits_2_untouched_or_leaves_a_valid_file(
    operations: list[tuple[str, str, dict[str, str]]], project: Path
) -> None:
    path = project / "access" / "testnet.yaml"
    original = (ROOT / "access" / "testnet.yaml").read_bytes()
    path.write_bytes(original)
    expected: dict[str, str] = {}  # user -> hash of the key printed for them
    for action, user, flags in operations:
        before = path.read_bytes()
        argv = ["access", action, "testnet", user, *(part for flag, value in flags.items() for part in (flag, value))]
        code, out, err = run([*argv, "--project-dir", str(project)])
        assert code in (0, 2), (argv, err)
        event(f"{action} exit {code}")
        if code == 2:
            assert path.read_bytes() == before, argv
            assert err.strip() and "Traceback" not in err, (argv, err)
            continue
        if action == "create-key":
            expected[user] = key_hash(out.strip())
        else:
            expected.pop(user)
        access = read_access_file(path)
        assert {u.name: u.key_sha256 for u in access.users} == expected, argv
        assert_usable(access)
    if not expected:
        assert path.read_bytes() == original  # every user revoked: back to the file as it was


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.sampled_from(NAMES[:8]), min_size=1, max_size=4, unique=True))
def test_a_file_the_commands_wrote_plans(names: list[str], project: Path) -> None:
    from zbi_infra.plan.engine import evaluate
    from zbi_infra.plan.project import find_project

    path = project / "access" / "testnet.yaml"
    path.write_bytes((ROOT / "access" / "testnet.yaml").read_bytes())
    written = [
        name for name in names if run(["access", "create-key", "testnet", name, "--project-dir", str(project)])[0] == 0
    ]
    assert written  # the first four names are valid
    found = find_project(project)
    plan = evaluate(found.stack_file("dev"), program=found.program(), project=found.name)
    data = one(plan, "ConfigMap", "gateway-config", "zbi-testnet")["data"]
    entries = [json.loads(text) for name, text in data.items() if is_user_file(name) and name != ANONYMOUS_FILE]
    assert sorted(entry["name"] for entry in entries if entry["name"] != "zbi-probe") == sorted(written)


# ---- zbi instance add: generated names and flags -------------------------------------------------------------------

INSTANCE_NAMES = ["extra", "b", "no", "yes", "testnet", "control-plane", "Extra", "extra\n", "x" * 41, "-x", "é"]
instance_flags = st.fixed_dictionaries(
    {"--network": st.sampled_from(["testnet", "mainnet", "regtest", "signet"])},
    optional={
        "--replicas": st.one_of(st.integers(1, 5).map(str), st.sampled_from(["0", "-1", "1000000", "x", "²"])),
        "--storage-gib": st.one_of(st.integers(50, 2000).map(str), st.sampled_from(["1", "99999999", "0"])),
        "--lightwallet": st.sampled_from(["lightwalletd", "zaino", "none", "lwd"]),
        "--hostname": st.sampled_from(["x.example.com", "testnet.lwd.zbi.example", "bad host", "a" * 300, ""]),
        "--admin": st.sampled_from(
            ["arn:aws:iam::123456789012:role/extra-ops", "arn:aws:iam::123456789012:role/ops-é", "not-an-arn"]
        ),
        "--owner": st.sampled_from(["@acme/ops", "acme", "@a/b c"]),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(INSTANCE_NAMES), flags=instance_flags)
def test_any_instance_add_exits_2_untouched_or_leaves_a_valid_stack(
    name: str, flags: dict[str, str], project: Path
) -> None:
    from zbi_infra.config.stack import load_stack_config
    from zbi_infra.config.stack_file import read_stack_file

    path = project / "Pulumi.dev.yaml"
    original = (ROOT / "Pulumi.dev.yaml").read_bytes()
    path.write_bytes(original)
    argv = ["instance", "add", "dev", name, *(part for flag, value in flags.items() for part in (flag, value))]
    code, _, err = run([*argv, "--project-dir", str(project)])
    assert code in (0, 2), (argv, err)
    event(f"exit {code}")
    if code == 2:
        assert path.read_bytes() == original and err.strip() and "Traceback" not in err, (argv, err)
        return
    config = load_stack_config(read_stack_file("dev", path).config)
    assert name in config.instances
    text = path.read_text()
    assert text.startswith(original.decode()), "an add only appends the instance's lines"
