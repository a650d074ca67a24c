"""Bad stack files never crash and never slip through: exit 2, one message naming the file and line and the fix,
before anything is registered; and what a file says is read as Pulumi reads it (YAML 1.2). The config values inside a
well-formed file are tested in test_bad_config_values.py, the command line in test_bad_cli_input.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import PlanStack
from tests.stack_input import config_with, project_copy, rejection, zbi
from zbi_infra.config.stack_file import StackFileError, parse_yaml_document, read_stack_file
from zbi_infra.errors import MAX_RUN, ConfigError

# ---- files Pulumi would misread or choke on ---------------------------------------------------------------------

BAD_FILES = {
    "a list": (b"- config\n- x\n", "is a list, not a mapping"),
    "a scalar": (b"just text\n", "is a str, not a mapping"),
    "config a list": (b"config:\n  - a\n", "`config` must be a mapping"),
    "latin-1": ("config:\n  zbi:role: caf\xe9\n".encode("latin-1"), "line 2: not UTF-8"),
    "utf-16 with a BOM": ("config:\n  zbi:role: local\n".encode("utf-16"), "the file is UTF-16"),
    "tabs": (b"config:\n\tzbi:role: local\n", "indent with spaces"),
    "a merge key": (b"config:\n  <<: {zbi:role: local}\n", "merge key << is not allowed"),
    "an alias": (b"config:\n  a: &x 1\n  b: *x\n", "anchor &x is not allowed"),
    "a recursive alias": (b"config: &c\n  self: *c\n", "anchor &c is not allowed"),
    "an unclosed flow sequence": (b"config:\n  zbi:tags: [a, b\n  zbi:role: local\n", "close the [ ]"),
    "a custom tag": (b"config:\n  zbi:role: !Ref local\n", "tag !Ref is not allowed"),
    "a python tag": (b"config:\n  x: !!python/object/apply:os.system [echo]\n", "python/object/apply:os.system"),
    "binary": (b"config:\n  aws:x: !!binary aGk=\n", "2002:binary is not allowed"),
    "an integer key": (b"config:\n  1: a\n", "key '1' is not text"),
    "a null key": (b"config:\n  ~: a\n", "key '~' is not text"),
    "a complex key": (b"config:\n  ? [a, b]\n  : c\n", "is not text"),
    "a NUL byte": (b"config:\n  zbi:role: lo\x00cal\n", "line 2: control character"),
    "a control character": (b"config:\n  zbi:role: lo\x07cal\n", "control character"),
    "deep nesting": (b"config:\n  x: " + b"[" * 60 + b"]" * 60 + b"\n", "nesting deeper than 32"),
    "two documents": (b"config: {}\n---\nconfig: {}\n", "remove the `---` separator"),
    "a duplicate key": (b"config:\n  zbi:role: local\n  zbi:role: primary\n", "'zbi:role' is defined twice"),
    "a leading-zero integer": (b"config:\n  aws:x: {n: 010}\n", "010 has a leading zero"),
    "a signed leading-zero integer": (b"config:\n  aws:x: {n: -010}\n", "write -10 for the decimal number, -0o10"),
    "a 5,000-digit integer": (b"config:\n  aws:x: {n: " + b"7" * 5000 + b"}\n", "a number of 5000 digits"),
    # Found by Hypothesis (tests/test_access_properties.py): PyYAML's scanner raised ValueError from chr().
    "an escape past Unicode": (b'config:\n  zbi:role: "\\U00110000"\n', "must name a character up to"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_are_refused_with_the_line_and_a_fix(name: str, tmp_path: Path) -> None:
    data, expected = BAD_FILES[name]
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_bytes(data)
    with pytest.raises(StackFileError) as caught:
        read_stack_file("bad", path)
    (problem,) = caught.value.problems
    assert problem.startswith("Pulumi.bad.yaml: ") and expected in problem and "Fix:" in problem, problem


def test_bad_files_exit_2_from_zbi_plan_without_a_traceback(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    for index, (data, expected) in enumerate(list(BAD_FILES.values())[:8]):
        (project / f"Pulumi.bad{index}.yaml").write_bytes(data)
        result = zbi("plan", f"bad{index}", cwd=project)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and expected in result.stderr


def test_a_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    lines = ["config:", '  l0: &l0 ["ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha"]']
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    project = project_copy(tmp_path)
    (project / "Pulumi.laughs.yaml").write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    result = zbi("plan", "laughs", cwd=project, timeout=30)
    assert time.monotonic() - started < 20
    assert result.returncode == 2 and "anchor &l0 is not allowed" in result.stderr


def test_an_empty_file_is_an_empty_config_and_a_multi_megabyte_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_bytes(b"")
    assert read_stack_file("x", path).config == {}
    path.write_bytes(b"config:\n  x: " + b"a" * (2 * 1024 * 1024) + b"\n")
    with pytest.raises(StackFileError, match="more than a stack file needs"):
        read_stack_file("x", path)


def test_a_huge_value_is_never_echoed_in_full() -> None:
    huge = "x" * 3_000_000
    message = rejection(config_with(zbi__cluster={"name": huge}))
    assert len(message) < 1000 and "characters" in message


def test_a_long_path_is_named_whole_while_pasted_text_and_endless_paths_are_clipped(tmp_path: Path) -> None:
    deep = tmp_path / ("a-directory-whose-name-is-long-" * 3) / "ci-runner #12 (retry)" / "Pulumi.prod.yaml"
    assert len(str(deep)) > 2 * MAX_RUN
    assert f"{deep}: cannot be read" in ConfigError([f"{deep}: cannot be read. Fix: x"]).problems[0]
    pasted = "9" * 5000
    assert pasted[:61] not in ConfigError([f"cluster.name: {pasted}. Fix: x"]).problems[0]
    pasted_base64 = "Zm9v/YmFy+" * 20  # has slashes, but is not written as a path
    assert pasted_base64[: MAX_RUN + 1] not in ConfigError([f"cluster.name: {pasted_base64}. Fix: x"]).problems[0]
    slashes = "/a" * 3000  # 6,000 characters: longer than any path Linux opens
    assert slashes[: MAX_RUN + 1] not in ConfigError([f"{slashes}: cannot be read. Fix: x"]).problems[0]


# ---- read as Pulumi reads it (YAML 1.2 through yaml.v3) ---------------------------------------------------------

YAML_1_1_VS_1_2 = [
    ("NO", "NO"),
    ("yes", "yes"),
    ("Off", "Off"),
    ("y", "y"),
    ("2024-01-01", "2024-01-01"),
    ("1:30", "1:30"),
    ("0o17", 15),
    ("0x1F", 31),
    ("true", True),
    ("~", None),
    ("1_000", 1000),  # yaml.v3 drops underscores before parsing (tests/fixtures/upstream/go-yaml/resolve.go.txt)
    (".5", 0.5),
]


@pytest.mark.parametrize(("plain", "value"), YAML_1_1_VS_1_2)
def test_plain_scalars_read_as_yaml_1_2(plain: str, value: object) -> None:
    assert parse_yaml_document(f"v: {plain}\n", "x.yaml") == {"v": value}


def test_an_instance_named_yes_and_a_tag_no_stay_strings(plan_stack: PlanStack, tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n  zbi:tags:\n    legacy: NO\n  zbi:instances:\n    yes:\n      network: testnet\n")
    config = read_stack_file("x", path).config
    assert config["zbi:tags"] == {"legacy": "NO"} and list(config["zbi:instances"]) == ["yes"]
    plan = plan_stack("dev", merge={"zbi:tags": {"legacy": "NO"}, "zbi:instances": config["zbi:instances"]})
    assert any(r.name == "yes-namespace" for r in plan.resources)
