"""Access files and `zbi access` held to the stack file's contract: bad input exits 2 with one message naming the file,
key or flag and the fix, before anything is written; valid edits change only their own lines; no hang."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import ROOT
from zbi_infra.access_keys import UserGrant, create_key, key_hash, revoke
from zbi_infra.config.access import (
    EMPTY_KEY_SHA256,
    instance_access_files,
    parse_access,
    read_access_file,
    user_name_problem,
)
from zbi_infra.config.stack import load_stack_config
from zbi_infra.config.stack_file import read_stack_file
from zbi_infra.errors import ConfigError

TODAY = date(2026, 11, 25)
HASH = "ab" * 32
USER = f"users:\n  - name: alice\n    keySha256: {HASH}\n"


def zbi(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zbi_infra.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def project_copy(tmp_path: Path) -> Path:
    """The project's program, stack files and access files, for a test to break."""
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "access", tmp_path / "access")
    for file in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(file, tmp_path / file.name)
    return tmp_path


def refused(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "x.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        read_access_file(path)
    (problem,) = caught.value.problems
    assert problem.startswith(str(path)[:60]) and "Fix:" in problem, problem
    assert str(caught.value).startswith("invalid access file:")
    return problem


# ---- read with the stack file's guarantees -----------------------------------------------------------------------

BAD_FILES = {
    "a second users key": (USER.encode() + b"users: []\n", "'users' is defined twice (first on line 1)"),
    "a key hash twice": (USER.encode() + f"    keySha256: {'cd' * 32}\n".encode(), "'keySha256' is defined twice"),
    "an alias": (b"grpc: &g {methods: [GetBlock]}\nanonymous: {grpc: *g}\n", "anchor &g is not allowed"),
    "latin-1": ("users:\n  - name: caf\xe9\n".encode("latin-1"), "line 2: not UTF-8"),
    "utf-16": (USER.encode("utf-16"), "the file is UTF-16"),
    "binary": (b"\x7fELF\x02\x01\x01\x00\x00\x00", "control character"),
    "deep nesting": (b"users: " + b"[" * 40 + b"]" * 40 + b"\n", "nesting deeper than 32"),
    "a 5000-digit integer": (
        USER.encode() + b"    rateLimit: {requestsPerSecond: " + b"9" * 5000 + b"}\n",
        "a number of 5000 digits",
    ),
    "an impossible date": (USER.encode() + b"    expires: 2027-02-30\n", "'2027-02-30' is not a day of the calendar"),
    "a Unix time as expiry": (USER.encode() + b"    expires: 1798761600\n", "is not an ISO date"),
    "zero as expiry": (USER.encode() + b"    expires: 0\n", "'0' is not an ISO date"),
    "a python tag": (b"users: !!python/object/apply:os.system [echo]\n", "is not allowed in a access file"),
    "the empty key's hash": (
        f"users:\n  - name: alice\n    keySha256: {hashlib.sha256(b'').hexdigest()}\n".encode(),
        "is the SHA-256 of an empty key",
    ),
    "a name with a trailing space": (f"users:\n  - name: 'alice '\n    keySha256: {HASH}\n".encode(), "no spaces"),
    "a name with a newline": (f'users:\n  - name: "alice\\n"\n    keySha256: {HASH}\n'.encode(), "not a user name"),
    "a method twice in a narrower list": (
        f"grpc: {{methods: [GetBlock]}}\n{USER}    grpc: [GetBlock, GetBlock]\n".encode(),
        "users[0].grpc: GetBlock listed twice",
    ),
    "a method twice for anonymous clients": (
        b"jsonRpc: {methods: [getinfo]}\nanonymous: {jsonRpc: [getinfo, getinfo]}\n",
        "anonymous.jsonRpc: getinfo listed twice",
    ),
    "a boolean as a name": (f"users:\n  - name: true\n    keySha256: {HASH}\n".encode(), "True is not text"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_access_files_are_refused_with_the_line_or_key_and_a_fix(case: str, tmp_path: Path) -> None:
    data, expected = BAD_FILES[case]
    assert expected in refused(data, tmp_path)


def test_a_billion_laughs_under_users_is_refused_at_once(tmp_path: Path) -> None:
    lines = ['a: &a ["ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha"]']
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(9)]
    path = tmp_path / "access" / "testnet.yaml"
    path.parent.mkdir()
    path.write_text("users:\n" + "\n".join(f"  - {line}" for line in lines) + "\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="anchor &a is not allowed in a access file"):
        read_access_file(path)
    assert time.monotonic() - started < 2


def test_yaml_1_1_words_stay_names_and_are_written_so_every_reader_agrees(tmp_path: Path) -> None:
    path = tmp_path / "testnet.yaml"
    path.write_text("users: []\n")
    for name in ("no", "on", "yes", "null", "1e3", "0x10"):
        create_key(path, name, UserGrant(), today=TODAY)
    assert [u.name for u in read_access_file(path).users] == ["no", "on", "yes", "null", "1e3", "0x10"]
    import yaml  # a YAML 1.1 reader (PyYAML, many tools) reads the same names

    assert [u["name"] for u in yaml.safe_load(path.read_text())["users"]] == ["no", "on", "yes", "null", "1e3", "0x10"]


def test_unusable_paths_name_the_problem(tmp_path: Path) -> None:
    directory = tmp_path / "dir.yaml"
    directory.mkdir()
    with pytest.raises(ConfigError, match="not a regular file"):
        read_access_file(directory)
    link = tmp_path / "link.yaml"
    link.symlink_to(tmp_path / "gone.yaml")
    with pytest.raises(ConfigError, match=r"a symbolic link to .*gone\.yaml, which does not exist"):
        read_access_file(link)


def test_valid_files_stay_accepted() -> None:
    access = parse_access({"users": [{"name": "a.b_c-9", "keySha256": HASH, "expires": "2027-02-28"}]}, "access/x.yaml")
    assert access.users[0].expires == date(2027, 2, 28)
    assert read_access_file(ROOT / "access" / "testnet.yaml").grpc.methods
    assert user_name_problem("a") is None and user_name_problem("a" * 64) is None
    assert user_name_problem("a" * 65) and user_name_problem("") and user_name_problem("-a")
    assert key_hash("") == EMPTY_KEY_SHA256


# ---- files the plan cannot use are refused, not silently skipped ----------------------------------------------------


@pytest.mark.parametrize(
    ("arrange", "expected"),
    [
        (lambda a: (a / "testnet.yaml").rename(a / "testnet.yml"), "access/testnet.yml: names no instance"),
        (lambda a: (a / "testnet.yaml").rename(a / "tesnet.yaml"), "rename it testnet.yaml if it is testnet's"),
        (
            lambda a: ((a / "testnet.yaml").unlink(), (a / "testnet.yaml").symlink_to("shared/none.yaml")),
            "which does not exist",
        ),
        (lambda a: ((a / "testnet.yaml").unlink(), (a / "testnet.yaml").mkdir()), "not a regular file"),
    ],
)
def test_zbi_plan_refuses_access_files_it_cannot_use(arrange, expected: str, tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    arrange(project / "access")
    result = zbi("plan", "dev", cwd=project)
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_files_in_the_access_directory_that_name_no_declared_instance_are_refused_in_process(tmp_path: Path) -> None:
    # The same rule as the plan's, called directly (the mutation run of config/access.py does not run `zbi plan`).
    access = tmp_path / "access"
    access.mkdir()
    shutil.copy(ROOT / "access" / "testnet.yaml", access / "testnet.yaml")
    (access / "README.md").write_text("notes\n")  # not an access file: ignored
    (access / ".testnet.yaml.lock").write_text("")  # a lock file: ignored
    assert set(instance_access_files(tmp_path, ["testnet"], declared={"testnet"})) == {"testnet"}
    (access / "tesnet.yaml").write_text("users: []\n")
    (access / "mainnet.yml").write_text("users: []\n")
    (access / "stray.yaml").write_text("users: []\n")
    with pytest.raises(ConfigError) as refused:
        instance_access_files(tmp_path, ["testnet"], declared={"testnet", "mainnet"})
    problems = refused.value.problems
    assert len(problems) == 3, problems
    assert any("access/mainnet.yml" in p and "rename it mainnet.yaml" in p for p in problems)
    assert any("access/tesnet.yaml" in p and "rename it testnet.yaml if it is testnet's" in p for p in problems)
    assert any("access/stray.yaml" in p and "declare its instance" in p for p in problems)
    # Without `declared` nothing is looked for beyond the instances' own files.
    assert set(instance_access_files(tmp_path, ["testnet"])) == {"testnet"}


def test_grpc_methods_for_an_instance_without_a_light_wallet_server_are_refused(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    stack = project / "Pulumi.dev.yaml"
    text = stack.read_text()
    wallet = text[text.index("      lightwallet:\n") : text.index("      endpoints:\n")]
    stack.write_text(
        text.replace(wallet, "      lightwallet: {kind: none}\n").replace("publicGrpc: true", "publicGrpc: false")
    )
    config = load_stack_config(read_stack_file("dev", stack).config, today=TODAY)
    with pytest.raises(ConfigError, match="instance testnet has no light-wallet server"):
        instance_access_files(project, config.instances)
    checked = zbi("access", "check", "testnet", cwd=project)
    assert checked.returncode == 2 and "lightwallet.kind: none" in checked.stderr, checked.stderr
    planned = zbi("plan", "dev", cwd=project)
    assert planned.returncode == 2 and "no gRPC method can be exposed" in planned.stderr, planned.stderr
    # Without gRPC lists the file fits the instance.
    access = project / "access" / "testnet.yaml"
    text = access.read_text()
    access.write_text(text[: text.index("grpc:")] + "users: []\n")
    assert zbi("access", "check", "testnet", cwd=project).returncode == 0


# ---- the command's arguments ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            [
                "create-key",
                "testnet",
                "alice ",
            ],
            "'alice ' is not a user name",
        ),
        (["create-key", "testnet", " alice"], "is not a user name"),
        (["create-key", "testnet", "alice\n"], "is not a user name"),
        (["revoke", "testnet", "alice\n"], "is not a user name"),
        (["create-key", "testnet", "zbi-probe"], "monitoring probe's own user"),
        (["create-key", "testnet", "u", "--rate", "100001"], "--rate 100001: input should be less than or equal to"),
        (["create-key", "testnet", "u", "--rate", "5", "--burst", "1000001"], "--burst 1000001"),
        (["create-key", "testnet", "u", "--burst", "5"], "--burst needs --rate"),
        (["create-key", "testnet", "u", "--grpc", "GetBlock,GetBlock"], "GetBlock listed twice"),
        (["create-key", "nosuch", "u"], "instance 'nosuch' is declared in no stack's zbi:instances"),
        (["create-key", "testnet\n", "u"], "is not an instance name"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(args: list[str], expected: str, tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    before = {p.name: p.read_bytes() for p in (project / "access").iterdir()}
    result = zbi("access", *args, cwd=project)
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert {p.name: p.read_bytes() for p in (project / "access").iterdir() if not p.name.startswith(".")} == before
    assert not (project / "access" / "nosuch.yaml").exists()


@pytest.mark.parametrize(
    "content",
    [b"users: [\n", b"users:\n  - name: a\n  - name: a\n  users: x\n", b"users: []\nusers: []\n", b"\tusers: []\n"],
)
def test_edits_of_malformed_files_exit_2_and_change_nothing(content: bytes, tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    path = project / "access" / "testnet.yaml"
    path.write_bytes(content)
    for args in (["create-key", "testnet", "bob"], ["revoke", "testnet", "a"]):
        result = zbi("access", *args, cwd=project)
        assert result.returncode == 2 and "Fix:" in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert path.read_bytes() == content


# ---- edits change their own lines and nothing else --------------------------------------------------------------


def test_an_edit_changes_only_the_users_lines_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "testnet.yaml"
    shutil.copy(ROOT / "access" / "testnet.yaml", path)
    original = path.read_text()
    head = original[: original.index("users: []")]
    create_key(path, "alice", UserGrant(expires=date(2027, 6, 1)), today=TODAY)
    create_key(path, "bob", UserGrant(grpc=["GetBlock"]), today=TODAY)
    text = path.read_text()
    # The hand-laid method lists (continuation lines aligned under the bracket) are not re-flowed.
    assert text.startswith(head) and text[len(head) :].startswith("users:\n  - name: alice\n")
    commented = text.replace("  - name: bob\n", "  # bob: the analytics team, ticket 42\n  - name: bob\n")
    path.write_text(commented)
    create_key(path, "alice", UserGrant(), today=TODAY)  # rotation: alice's hash line only
    rotated = path.read_text()
    changed = [(a, b) for a, b in zip(commented.splitlines(), rotated.splitlines(), strict=True) if a != b]
    assert len(changed) == 1 and all(line.startswith("    keySha256: ") for line in changed[0])
    revoke(path, "bob")
    revoke(path, "alice")
    # Back to the original bytes; the comment someone wrote about bob is kept (an edit never drops a comment).
    assert path.read_text() == original.replace("users: []\n", "users: []\n  # bob: the analytics team, ticket 42\n")


def test_a_file_of_comments_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "testnet.yaml"
    path.write_text("# testnet's users: ask #ops before adding one\n\n# (none yet)\n")
    create_key(path, "alice", UserGrant(), today=TODAY)
    assert path.read_text().startswith("# testnet's users: ask #ops before adding one\n\n# (none yet)\nusers:\n")
    revoke(path, "alice")
    assert path.read_text() == "# testnet's users: ask #ops before adding one\n\n# (none yet)\nusers: []\n"


def test_mode_owner_and_links_are_kept(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    target = shared / "testnet.yaml"
    shutil.copy(ROOT / "access" / "testnet.yaml", target)
    target.chmod(0o600)
    os.chown(target, 4321, 4321)  # the tests run as root: another owner must survive the edit
    link = tmp_path / "testnet.yaml"
    link.symlink_to(target)
    create_key(link, "alice", UserGrant(), today=TODAY)
    assert link.is_symlink() and link.readlink() == target
    info = target.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and (info.st_uid, info.st_gid) == (4321, 4321)
    assert read_access_file(link).user("alice") is not None
    assert sorted(p.name for p in shared.iterdir()) == [".testnet.yaml.lock", "testnet.yaml"]  # no temporary left


def test_a_read_only_file_is_refused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "testnet.yaml"
    shutil.copy(ROOT / "access" / "testnet.yaml", path)
    path.chmod(0o444)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"read-only \(mode -r--r--r--\); nothing was written. Fix: chmod u\+w"):
        create_key(path, "alice", UserGrant(), today=TODAY)
    assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == 0o444


def test_a_directory_where_the_old_temporary_file_went_is_no_obstacle(tmp_path: Path) -> None:
    path = tmp_path / "testnet.yaml"
    shutil.copy(ROOT / "access" / "testnet.yaml", path)
    (tmp_path / ".testnet.yaml.tmp").mkdir()  # the fixed name earlier versions wrote to
    create_key(path, "alice", UserGrant(), today=TODAY)
    assert read_access_file(path).user("alice") is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == [".testnet.yaml.lock", ".testnet.yaml.tmp", "testnet.yaml"]


def test_a_lock_file_that_cannot_be_made_is_a_message(tmp_path: Path) -> None:
    path = tmp_path / "testnet.yaml"
    shutil.copy(ROOT / "access" / "testnet.yaml", path)
    (tmp_path / ".testnet.yaml.lock").mkdir()  # something in the way of the lock
    before = path.read_bytes()
    with pytest.raises(
        ConfigError, match=r"cannot open the lock file \(Is a directory\)\. Fix: .* in the way at \.testnet\.yaml\.lock"
    ):
        create_key(path, "alice", UserGrant(), today=TODAY)
    assert path.read_bytes() == before


def test_a_byte_order_mark_survives_an_edit(tmp_path: Path) -> None:
    path = tmp_path / "testnet.yaml"
    original = b"\xef\xbb\xbf" + (ROOT / "access" / "testnet.yaml").read_bytes()
    path.write_bytes(original)
    create_key(path, "alice", UserGrant(), today=TODAY)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf# Access to instance")
    revoke(path, "alice")
    assert path.read_bytes() == original
