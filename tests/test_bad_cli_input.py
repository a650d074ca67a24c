"""Bad input on zbi's command line never crashes and never slips through: exit 2 with one message naming the
argument, flag or file and the fix, before anything is registered or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stack_input import project_copy, zbi


def test_zbi_plan_as_of_checks_release_support_on_that_day(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    stack = (project / "Pulumi.dev.yaml").read_text().replace("network: testnet", "network: mainnet")
    (project / "Pulumi.main.yaml").write_text(stack)
    refused = zbi("plan", "main", "--as-of", "2026-11-25", cwd=project)
    assert refused.returncode == 2 and "end of support" in refused.stderr and "Traceback" not in refused.stderr
    warned = zbi("plan", "main", "--as-of", "2026-11-10", cwd=project)
    assert warned.returncode == 0, warned.stderr
    assert "zebrad 6.3.0 stops on Mainnet around 2026-11-23 (13 days)" in warned.stdout
    bad_date = zbi("plan", "main", "--as-of", "tomorrow", cwd=project)
    assert bad_date.returncode == 2 and "is not a date" in bad_date.stderr


# ---- the DR stack's primary -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("primary", "content", "expected"),
    [
        ("nosuch", None, "no Pulumi.nosuch.yaml in this project"),
        ("broken", b"config:\n  zbi:role: primary\n  zbi:role: local\n", "the primary's stack file Pulumi.broken.yaml"),
        (
            "invalid",
            b"config:\n  zbi:role: primary\n  zbi:platform: {region: us-east-9}\n  zbi:cluster: {name: x}\n",
            "the primary's stack file Pulumi.invalid.yaml is invalid: zbi:platform.region",
        ),
    ],
)
def test_a_dr_stack_names_its_primarys_file_when_that_is_the_problem(
    primary: str, content: bytes | None, expected: str, tmp_path: Path
) -> None:
    project = project_copy(tmp_path)
    if content is not None:
        (project / f"Pulumi.{primary}.yaml").write_bytes(content)
    dr = (project / "Pulumi.dr.yaml").read_text().replace("primaryStack: dev", f"primaryStack: {primary}")
    (project / "Pulumi.dr.yaml").write_text(dr)
    result = zbi("plan", "dr", cwd=project)
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_bad_cli_arguments_exit_2_with_a_message(tmp_path: Path) -> None:
    for args, expected in [
        (("plan", "../etc/passwd"), "not a stack name"),
        (("plan", "nosuch"), "no Pulumi.nosuch.yaml"),
        (("plan",), "the following arguments are required: stack"),
        (("frobnicate",), "invalid choice"),
    ]:
        result = zbi(*args)
        assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr
    outside = zbi("plan", "dev", cwd=tmp_path)
    assert outside.returncode == 2 and "no Pulumi.yaml" in outside.stderr


def test_an_activated_dr_stack_without_the_snapshot_it_requires_exits_2(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    dr = (project / "Pulumi.dr.yaml").read_text()
    (project / "Pulumi.dr.yaml").write_text(
        dr.replace("    activate: false", "    activate: true\n    requireSnapshot: true")
    )
    result = zbi("plan", "dr", cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "zbi:dr.requireSnapshot: no completed snapshot copy in us-west-2 for testnet. Fix:" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["add", "dev", "foo\n", "--network", "testnet"], "is not an instance name"),
        (["remove", "dev", "testnet\n", "--yes"], "is not an instance name"),
        (
            ["add", "dev", "foo", "--network", "testnet", "--admin", "arn:aws:iam::123456789012:role/bücher"],
            "ASCII letters",
        ),
    ],
)
def test_zbi_instance_refuses_names_and_roles_kubernetes_or_iam_would(
    args: list[str], expected: str, tmp_path: Path
) -> None:
    project = project_copy(tmp_path)
    before = (project / "Pulumi.dev.yaml").read_bytes()
    result = zbi("instance", *args, cwd=project)
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert (project / "Pulumi.dev.yaml").read_bytes() == before
