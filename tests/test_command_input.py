"""`zbi cost`, `zbi plan --out`, `zbi roles --write` and Pulumi.yaml, given bad input: exit 2 with a message naming the
file or flag and the fix, before anything is written."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from zbi_infra.cli import main
from zbi_infra.config.prices import parse_prices
from zbi_infra.cost import load_prices
from zbi_infra.errors import ConfigError

PRICES = load_prices(None)


def refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Fix:" in captured.err, captured.err
    return captured.err


def with_price(path: str, value: Any) -> dict[str, Any]:
    prices = json.loads(json.dumps(PRICES))
    *parents, last = path.split("/")
    target = prices
    for part in parents:
        target = target[part]
    target[last] = value
    return prices


BAD_PRICES = {
    "a negative price": (with_price("eksClusterHour", -0.1), "eksClusterHour: -0.1 is not a price"),
    "a zero price": (with_price("natGatewayHour", 0), "natGatewayHour: 0.0 is not a price"),
    "a negated instance": (with_price("ec2/m7i.xlarge/reserved1y", -0.127), "reserved1y: -0.127 is not a price"),
    "a price as text": (with_price("ebsGp3GibMonth", "0.08"), "ebsGp3GibMonth: Input should be a valid number"),
    "a price of true": (with_price("ebsGp3GibMonth", True), "ebsGp3GibMonth: Input should be a valid number"),
    "a null price": (with_price("snapshotGibMonth", None), "snapshotGibMonth: Input should be a valid number"),
    "a nested price": (with_price("nlbHour", {"usd": 0.02}), "nlbHour: Input should be a valid number"),
    "a dear reservation": (
        with_price("ec2/m7i.xlarge/reserved1y", 0.5),
        "reserved1y 0.5 is above onDemand 0.2016",
    ),
    "a typo": ({**PRICES, "natGatewayHours": 0.045}, "natGatewayHours: unknown key"),
    "a missing price": ({k: v for k, v in PRICES.items() if k != "kmsKeyMonth"}, "kmsKeyMonth: required"),
    "a month of 10,000 hours": (with_price("hoursPerMonth", 10_000), "hoursPerMonth"),
    "cents for dollars": (with_price("eksClusterHour", 10_000_000), "is over $1,000,000"),
    "a list": ([PRICES], "not a JSON object"),
}


@pytest.mark.parametrize("case", list(BAD_PRICES))
def test_bad_price_files_exit_2_naming_the_key(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document, expected = BAD_PRICES[case]
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(document))
    message = refused(["cost", "dev", "--prices", str(path)], capsys)
    assert f"--prices {path}" in message and expected in message, message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (json.dumps(PRICES).replace("0.045", "NaN", 1).encode(), "NaN is not JSON"),
        (json.dumps(PRICES).replace("0.045", "Infinity", 1).encode(), "Infinity is not JSON"),
        (json.dumps(PRICES).replace("0.045", "-Infinity", 1).encode(), "-Infinity is not JSON"),
        (json.dumps({**PRICES, "note": "café"}, ensure_ascii=False).encode("latin-1"), "not UTF-8 text (byte 0xe9)"),
        (b'{"ec2": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not JSON"),
        (json.dumps(PRICES).replace("0.045", "4" * 5000, 1).encode(), "not JSON"),
        (b"{", "not JSON"),
    ],
)
def test_price_files_that_are_not_json_exit_2(
    data: bytes, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "prices.json"
    path.write_bytes(data)
    assert expected in refused(["cost", "dev", "--prices", str(path)], capsys)
    directory = tmp_path / "dir"
    directory.mkdir()
    assert "not a regular file" in refused(["cost", "dev", "--prices", str(directory)], capsys)


def test_the_packaged_prices_pass_the_model_and_a_valid_override_is_read_whole() -> None:
    assert parse_prices(PRICES, "x") == PRICES
    with pytest.raises(ConfigError, match="eksClusterHour"):
        parse_prices(with_price("eksClusterHour", float("nan")), "x")


@pytest.mark.parametrize(
    ("assume", "expected"),
    [
        ("chain_used_fraction=1.5", "a fraction is at most 1"),
        ("snapshot_daily_change_fraction=2", "a fraction is at most 1"),
        ("nlb_lcus=nan", "finite number"),
        ("nlb_lcus=inf", "finite number"),
    ],
)
def test_assumptions_out_of_range_exit_2(assume: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert expected in refused(["cost", "dev", "--assume", assume], capsys)


def test_the_json_estimate_is_strict_json_and_check_uses_valid_prices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "dev", "--json", "--assume", "chain_used_fraction=1"]) == 0

    def no_constant(name: str) -> None:
        raise AssertionError(f"{name} in the JSON output")

    document = json.loads(capsys.readouterr().out, parse_constant=no_constant)
    assert document["assumptions"]["chain_used_fraction"] == 1
    # --check compares the budget with the reserved total of valid prices: positive, below the on-demand total.
    totals = document["monthlyUsd"]
    assert 0 < totals["reserved1y"] < totals["onDemand"]
    assert document["marginUsd"] == pytest.approx(document["budgetMonthlyUsd"] - totals["reserved1y"], abs=0.01)


# ---- files and directories in the way --------------------------------------------------------------------------------


def test_plan_out_refuses_a_file_in_the_way_before_planning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "out"
    file.write_text("keep me\n")
    assert "a file is in the way" in refused(["plan", "dev", "--out", str(file)], capsys)
    assert file.read_text() == "keep me\n"
    below = file / "sub"
    assert f"{file} is a file, not a directory" in refused(["plan", "dev", "--out", str(below)], capsys)
    directory = tmp_path / "dir"
    (directory / "plan.json").mkdir(parents=True)
    assert "plan.json is a directory in the way" in refused(["plan", "dev", "--out", str(directory)], capsys)
    (directory / "plan.json").rmdir()
    (directory / "manifests").write_text("x")
    assert "manifests is a file in the way" in refused(["plan", "dev", "--out", str(directory)], capsys)


def test_roles_write_refuses_a_directory_and_keeps_the_files_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "a directory, not a file" in refused(["roles", "dev", "--write", "--file", str(tmp_path)], capsys)
    latin = tmp_path / "latin"
    latin.write_bytes("* @caf\xe9\n".encode("latin-1"))
    assert "not UTF-8 text" in refused(["roles", "dev", "--write", "--file", str(latin)], capsys)
    assert latin.read_bytes() == "* @caf\xe9\n".encode("latin-1")
    owners = tmp_path / "CODEOWNERS"
    owners.write_text("# hand-written\n* @someone\n")
    owners.chmod(0o640)
    assert main(["roles", "dev", "--write", "--file", str(owners)]) == 0
    text = owners.read_text()
    assert text.startswith("# hand-written\n* @someone\n") and "@zbi-example/platform-admins" in text
    assert stat.S_IMODE(owners.stat().st_mode) == 0o640


@pytest.mark.parametrize(
    ("main_setting", "expected"),
    [
        ("nosuch/", "main 'nosuch/' is not a Python program"),
        ("Pulumi.dev.yaml", "main 'Pulumi.dev.yaml' is not a Python program"),
        ("[stacks]", "main is \"['stacks']\", not a path"),
        ("", "main is 'None', not a path"),
    ],
)
def test_a_pulumi_yaml_main_that_cannot_run_exits_2(
    main_setting: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.dev.yaml")
    project = (ROOT / "Pulumi.yaml").read_text().replace("main: stacks/", f"main: {main_setting}")
    (tmp_path / "Pulumi.yaml").write_text(project)
    assert expected in refused(["plan", "dev", "--project-dir", str(tmp_path)], capsys)


def test_a_program_that_is_not_text_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "__main__.py").write_bytes(b"\xff\xfe\x00binary")
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.dev.yaml")
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    message = refused(["cost", "dev", "--project-dir", str(tmp_path)], capsys)
    assert "__main__.py is not readable text" in message


def test_devices_and_pipes_are_refused_not_read_forever(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for source in ("/dev/zero", str(fifo)):
        for args in (
            ["cost", "dev", "--prices", source],
            ["roles", "dev", "--write", "--file", source],
            ["access", "list", "testnet", "--file", source],
            ["access", "create-key", "testnet", "alice", "--file", source],
        ):
            result = subprocess.run(
                [sys.executable, "-m", "zbi_infra.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 2 and "not a regular file" in result.stderr, (args, result.stderr)
    assert not Path("/dev/.zero.lock").exists() and not (tmp_path / ".fifo.lock").exists()  # nothing written
