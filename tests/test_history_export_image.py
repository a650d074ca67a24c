"""The history export image (images/history-export/Dockerfile): what it installs is what uv.lock pins, what it copies
exists, and the program runs with nothing but the standard library and pyarrow (no container engine here: the
release workflow builds the image and runs `--help` in it)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from tests.conftest import ROOT

IMAGE = ROOT / "images" / "history-export"
DOCKERFILE = (IMAGE / "Dockerfile").read_text()


def test_requirements_pin_the_locked_pyarrow_with_every_hash() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (pyarrow,) = [p for p in lock["package"] if p["name"] == "pyarrow"]
    locked = {w["hash"] for w in pyarrow.get("wheels", [])} | (
        {pyarrow["sdist"]["hash"]} if "sdist" in pyarrow else set()
    )
    requirements = (IMAGE / "requirements.txt").read_text()
    assert re.findall(r"^([a-z0-9_-]+)==(\S+)", requirements, re.M) == [("pyarrow", pyarrow["version"])]
    assert {f"sha256:{h}" for h in re.findall(r"--hash=sha256:([0-9a-f]{64})", requirements)} == locked


def test_the_dockerfile_pins_its_base_runs_unprivileged_and_copies_what_exists() -> None:
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.12-slim@sha256:[0-9a-f]{64}$", DOCKERFILE, re.M)
    assert [line for line in DOCKERFILE.splitlines() if line.startswith("FROM ")] == [
        "FROM ${PYTHON_IMAGE} AS build",
        "FROM ${PYTHON_IMAGE}",
    ]
    (user,) = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE, re.M)
    assert int(user[0]) > 0 and int(user[1]) > 0
    assert "--require-hashes" in DOCKERFILE and "--only-binary=:all:" in DOCKERFILE
    for source in re.findall(r"^COPY (?!--from)(\S+) ", DOCKERFILE, re.M):
        assert (ROOT / source).exists(), source
    assert 'ENTRYPOINT ["python", "-m", "zbi_export.cli"]' in DOCKERFILE


ONLY_STDLIB_AND_PYARROW = """
import sys
allowed = set(sys.stdlib_module_names) | {"pyarrow", "zbi_export"}
class Refuse:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in allowed and not top.startswith("_sysconfigdata"):
            raise ImportError(f"the image has no {name}")
        return None
sys.meta_path.insert(0, Refuse())
import pkgutil, importlib, zbi_export
for module in pkgutil.iter_modules(zbi_export.__path__):
    importlib.import_module(f"zbi_export.{module.name}")
from zbi_export.cli import main
raise SystemExit(main(["--help"]))
"""


def test_the_program_needs_only_the_standard_library_and_pyarrow() -> None:
    result = subprocess.run(
        [sys.executable, "-c", ONLY_STDLIB_AND_PYARROW], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "--destination" in result.stdout


def test_the_refusal_hook_does_refuse() -> None:
    # The hook above must be able to fail: importing Pulumi through it does.
    script = ONLY_STDLIB_AND_PYARROW.replace("import pkgutil", "import pulumi\nimport pkgutil")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode != 0 and "the image has no pulumi" in result.stderr


def test_the_release_workflow_builds_this_dockerfile_on_version_tags() -> None:
    workflow = (ROOT / ".github" / "workflows" / "history-export-image.yml").read_text()
    assert "--file images/history-export/Dockerfile" in workflow
    assert 'tags: ["v*"]' in workflow
    for test in re.findall(r"tests/\S+\.py", workflow):
        assert (ROOT / test).exists(), test


def test_the_docs_list_every_table_and_column_the_schema_has() -> None:
    from zbi_export.schema import TABLES

    docs = (ROOT / "docs" / "history-export.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in docs.splitlines() if line.startswith("| `")}
    for table, (_, columns) in TABLES.items():
        listed = re.findall(r"`(\w+)`", rows[table].split("|")[3])
        assert listed == [c.name for c in columns], table


def test_partition_values_cover_every_height_once() -> None:
    from zbi_export.schema import partition_value, partition_values

    values = partition_values(100, 1_000)
    assert values[0] == "0000000000-0000000099" and values[-1] == "0000001000-0000001099" and len(values) == 11
    assert values == sorted(values)
    for height in (0, 99, 100, 555, 1_000):
        assert partition_value(height, 100) in values
        first, last = map(int, partition_value(height, 100).split("-"))
        assert first <= height <= last and last - first == 99
