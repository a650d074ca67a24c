"""`zbi instance add` with a release zBI's table does not hold yet: --image-tag and the release's data from flags
(--release-height, --release-date, --release-source), checked as `zbi plan` checks `node.release`, refused with
exit 2 naming the flag and the fix before anything is written. Real data: Zakura v1.3.0-rc1, a pre-release the
table leaves out (ESTIMATED_RELEASE_HEIGHT 3,457,227 in crates/zakurad/src/components/sync/end_of_support.rs at
the tag, tagged 2026-08-21; 40-day window, so it halts on Mainnet about 2026-09-30)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT
from zbi_infra.cli import main
from zbi_infra.config.stack import AS_OF_ENV

SOURCE = "https://github.com/zakura-core/zakura/blob/v1.3.0-rc1/crates/zakurad/src/components/sync/end_of_support.rs"
RC1 = ["--node", "zakurad", "--image-tag", "1.3.0-rc1", "--release-height", "3457227", "--release-date",
       "2026-08-21", "--release-source", SOURCE, "--lightwallet", "none"]  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ["Pulumi.yaml", *(p.name for p in ROOT.glob("Pulumi.*.yaml"))]:
        shutil.copy(ROOT / name, tmp_path / name)
    for directory in ("stacks", "access"):
        shutil.copytree(ROOT / directory, tmp_path / directory)
    return tmp_path


def add(project: Path, *flags: str) -> int:
    return main(["instance", "add", "dev", "zk", "--network", "mainnet", *flags, "--project-dir", str(project)])


def test_release_data_from_flags_is_written_and_the_plan_accepts_it(project: Path, capsys) -> None:
    assert add(project, *RC1) == 0
    capsys.readouterr()
    assert main(["instance", "show", "dev", "zk", "--json", "--project-dir", str(project)]) == 0
    node = json.loads(capsys.readouterr().out)["node"]
    assert node["image"]["tag"] == "1.3.0-rc1"
    assert node["release"] == {"estimatedReleaseHeight": 3457227, "released": "2026-08-21", "source": SOURCE}
    # The suite plans as of 2026-09-01 (tests/conftest.py): inside rc1's 40 days.
    assert main(["plan", "dev", "--json", "--project-dir", str(project)]) == 0


@pytest.mark.parametrize(
    ("change", "flag", "fix"),
    [
        # A typo in the height moves the end of support by months: refused against the chain anchor.
        ({"--release-height": "3557227"}, "--release-height: 3557227 is", "Fix: copy ESTIMATED_RELEASE_HEIGHT"),
        ({"--release-date": "2026-09-20"}, "--release-date: 2026-09-20 is after today", "the day the tag was"),
        ({"--release-source": "http://example.org/x"}, "--release-source", "https"),
        # 6.3.0 is in the table: its data is zBI's, not the operator's.
        ({"--node": "zebrad", "--image-tag": "6.3.0"}, "zebrad 6.3.0 is in zBI's release table", "Fix: remove"),
        ({"--image-tag": "v1.3.0-rc1"}, "--image-tag: zakuracore/zakura publishes", "Fix: write tag: 1.3.0-rc1"),
    ],
)
def test_bad_release_flags_exit_2_naming_the_flag(
    project: Path, capsys, change: dict[str, str], flag: str, fix: str
) -> None:
    original = (project / "Pulumi.dev.yaml").read_text()
    flags = list(RC1)
    for name, value in change.items():
        flags[flags.index(name) + 1] = value
    assert add(project, *flags) == 2
    err = capsys.readouterr().err
    assert flag in err and fix in err, err
    assert "zbi:instances.zk.node.release" not in err
    assert (project / "Pulumi.dev.yaml").read_text() == original


def test_release_flags_go_together_and_with_a_tag(project: Path, capsys) -> None:
    original = (project / "Pulumi.dev.yaml").read_text()
    assert add(project, "--image-tag", "1.3.0-rc1", "--node", "zakurad", "--release-height", "3457227") == 2
    assert "--release-date, --release-source missing" in capsys.readouterr().err
    without_tag = [f for f in RC1 if f not in ("--image-tag", "1.3.0-rc1")]
    assert add(project, *without_tag) == 2
    assert "Fix: add --image-tag" in capsys.readouterr().err
    assert (project / "Pulumi.dev.yaml").read_text() == original


def test_an_expired_release_is_refused_as_the_plan_would(project: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv(AS_OF_ENV, "2026-12-01")
    original = (project / "Pulumi.dev.yaml").read_text()
    assert add(project, *RC1) == 2
    err = capsys.readouterr().err
    assert "--image-tag: zakurad 1.3.0-rc1 reached its Mainnet end of support on about 2026-09-30" in err
    assert (project / "Pulumi.dev.yaml").read_text() == original


@pytest.mark.parametrize(("flag", "value"), [("--release-height", "3.4e6"), ("--release-date", "21/08/2026")])
def test_malformed_release_flags_are_argument_errors(project: Path, capsys, flag: str, value: str) -> None:
    flags = list(RC1)
    flags[flags.index(flag) + 1] = value
    with pytest.raises(SystemExit) as exited:
        add(project, *flags)
    assert exited.value.code == 2 and flag in capsys.readouterr().err


def test_the_help_example_runs_today(project: Path, capsys, monkeypatch) -> None:
    """The help's release-flags example: a test network (no end of support), so it holds on the real date too."""
    import shlex

    from zbi_infra.cli import INSTANCE_EXAMPLES

    monkeypatch.delenv(AS_OF_ENV, raising=False)
    text = INSTANCE_EXAMPLES.replace("\\\n", "")
    (example,) = [line.strip() for line in text.splitlines() if "--release-height" in line]
    assert main([*shlex.split(example)[1:], "--project-dir", str(project)]) == 0
    out = capsys.readouterr()
    assert "release:" in out.out and "estimatedReleaseHeight: 3457227" in out.out
    assert "has not read its config schema" in out.err
