"""Every fenced block of the README runs in the suite, or says on the line before it what it needs that this machine
lacks (`<!-- needs: cloud account -->`, `<!-- needs: cluster -->`, `<!-- needs: Pulumi CLI -->`)."""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_examples import readme_programs
from tests.test_first_commands import readme_commands
from zbi_infra.config.access import read_access_file
from zbi_infra.config.stack import load_stack_config
from zbi_infra.errors import ConfigError
from zbi_infra.plan.diagram import BEGIN, END
from zbi_infra.plan.project import find_project

NEEDS = {"cloud account", "cluster", "Pulumi CLI"}
# Where the README writes `…` the reader puts their own value; here, one of the right shape.
PLACEHOLDERS = {
    "sha256:…": "sha256:" + "ab" * 32,
    "0123…cdef": "0123" + "ab" * 28 + "cdef",
    "ws-…": "ws-0123abcd",
}


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    needs: str | None


def readme_blocks() -> list[Block]:
    lines = (ROOT / "README.md").read_text().splitlines(keepends=True)
    blocks, index = [], 0
    while index < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[index])
        if not fence:
            index += 1
            continue
        close = next(i for i in range(index + 1, len(lines)) if lines[i].rstrip() == "```")
        marker = re.match(r"^<!-- needs: (.+?) -->$", lines[index - 1].strip()) if index else None
        text = "".join(lines[index + 1 : close])
        blocks.append(Block(index + 1, fence.group(1), text, marker.group(1) if marker else None))
        index = close + 1
    return blocks


def zbi_commands(block: Block) -> list[list[str]]:
    """The block's `zbi …` lines as argument lists (comments dropped, as the shell drops them)."""
    commands = [shlex.split(line, comments=True) for line in block.text.splitlines()]
    return [words[1:] for words in commands if words]


def test_every_block_is_run_here_or_marked_with_what_it_needs() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 11
    for block in blocks:
        if block.needs is not None:
            assert block.needs in NEEDS, f"README.md:{block.line}: unknown need {block.needs!r}; one of {NEEDS}"
            continue
        assert runner(block) is not None, (
            f"README.md:{block.line}: a ```{block.language} block nothing here runs. Fix: run it in "
            "tests/test_readme_snippets.py, or mark the line before it <!-- needs: cloud account -->"
        )


def test_the_marked_blocks_really_need_what_they_say() -> None:
    """A marker cannot hide a block that would run offline: each marked block calls a tool this machine lacks."""
    for block in (b for b in readme_blocks() if b.needs):
        programs = {
            words[0] for words in (shlex.split(line, comments=True) for line in block.text.splitlines()) if words
        }
        assert "zbi" not in programs and programs & {"pulumi", "kind", "kubectl", "aws", "grpcurl"}, block


def runner(block: Block) -> str | None:
    """Which test runs the block (None: none does)."""
    if block.language == "sh" and block.text.splitlines() == readme_commands():
        return "tests/test_first_commands.py"  # with Debian's own Python in a clean HOME
    if block.language == "python" and block.text in readme_programs():
        return "tests/test_examples.py"  # each evaluated under Pulumi mocks
    if block.language == "mermaid":
        readme = (ROOT / "README.md").read_text()
        diagram = readme[readme.index(BEGIN) : readme.index(END)]
        return "tests/test_readme_docs.py" if f"```mermaid\n{block.text}```" in diagram else None
    if block.language == "yaml" and block in stack_file_snippets():
        return "test_every_stack_file_snippet_is_valid_config"
    if block.language == "sh" and block in zbi_snippets():
        return "test_the_zbi_access_commands_run_as_written"
    return None


def test_every_readme_python_program_is_evaluated_by_the_examples_tests() -> None:
    source = (ROOT / "tests" / "test_examples.py").read_text()
    for index in range(len(readme_programs())):
        assert f"run_readme_program(readme_programs()[{index}]" in source


def filled(block: Block) -> dict:
    text = block.text
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return yaml.safe_load(text)


def stack_file_snippets() -> list[Block]:
    return [b for b in readme_blocks() if b.language == "yaml" and not b.needs]


def zbi_snippets() -> list[Block]:
    return [
        b
        for b in readme_blocks()
        if b.language == "sh" and not b.needs and all(line.startswith("zbi ") for line in b.text.splitlines())
    ]


@pytest.mark.parametrize("block", stack_file_snippets(), ids=lambda b: f"README.md:{b.line}")
def test_every_stack_file_snippet_is_valid_config(block: Block) -> None:
    """Pasted into the dev stack's file, each snippet is accepted by the same validation `zbi plan` runs."""
    snippet = filled(block)
    assert "…" not in repr(snippet), f"README.md:{block.line}: a new placeholder; give it a value in PLACEHOLDERS"
    config = copy.deepcopy(find_project(ROOT).stack_file("dev").config)
    for key, value in snippet.items():
        merged = config.get(key)
        config[key] = {**merged, **value} if isinstance(merged, dict) and isinstance(value, dict) else value
    # A snippet naming a release newer than zBI's table is read on the day that release came out, as a user would.
    instances = snippet.get("zbi:instances", {}).values()
    releases = [i["node"]["release"]["released"] for i in instances if "release" in i.get("node", {})]
    load_stack_config(config, today=max(releases, default=date(2026, 9, 1)))


def test_the_instance_snippet_is_refused_with_a_known_release_given_again() -> None:
    """The snippet's `release:` is needed because its tag is newer than zBI's table (a known tag refuses it)."""
    (instances,) = [b for b in stack_file_snippets() if b.text.lstrip().startswith("zbi:instances:")]
    snippet = filled(instances)
    node = snippet["zbi:instances"]["exchange-mainnet"]["node"]
    config = copy.deepcopy(find_project(ROOT).stack_file("dev").config)
    config["zbi:instances"] = {"exchange-mainnet": {**snippet["zbi:instances"]["exchange-mainnet"]}}
    node["image"]["tag"] = "6.3.0"
    with pytest.raises(ConfigError, match=re.escape("6.3.0 is in zBI's release table")):
        load_stack_config(config, today=node["release"]["released"])


def test_the_zbi_access_commands_run_as_written(tmp_path: Path) -> None:
    """`zbi …` is the package's entry point (pyproject's [project.scripts]); each line runs in a copy of the project
    and does what its comment says."""
    assert 'zbi = "zbi_infra.cli:main"' in (ROOT / "pyproject.toml").read_text()
    (block,) = zbi_snippets()
    for stack_file in ROOT.glob("Pulumi*.yaml"):
        shutil.copy2(stack_file, tmp_path / stack_file.name)
    shutil.copytree(ROOT / "access", tmp_path / "access")
    access_file = tmp_path / "access" / "testnet.yaml"
    before = access_file.read_bytes()
    outputs = []
    for args in zbi_commands(block):
        result = subprocess.run(
            [sys.executable, "-m", "zbi_infra.cli", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, (args, result.stderr)
        outputs.append(result.stdout)
        if args[:2] == ["access", "create-key"]:
            (user,) = [u for u in read_access_file(access_file).users if u.name == "exchange-a"]
            assert str(user.expires) == "2027-06-01" and user.rate_limit.requests_per_second == 50
    key, listing, _, check = outputs
    assert key.strip().startswith("zbik_") and key.strip() not in access_file.read_text()
    assert "exchange-a (active, expires 2027-06-01; 50/s" in listing and "getblockcount, getblock" in listing
    assert "valid" in check
    assert access_file.read_bytes() == before  # revoke took back exactly what create-key added
