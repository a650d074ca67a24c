"""Mutation testing of the modules where a silent bug costs most, with cosmic-ray: each mutant (one operator changed
in one place) is applied alone in a scratch copy of the repository, the module's tests run against it, and the score
is the share of mutants the tests kill. Not part of the suite: it runs the tests once per mutant.

    uv run python tools/mutation.py                       # every module below, 20 mutants each
    uv run python tools/mutation.py network_policies --sample 0   # every mutant of one module
    uv run python tools/mutation.py policies iam --sample 30 --seed 7

Mutants are sampled (seeded, so a run can be repeated) because each costs a test run of several seconds on shared
CPUs; the script runs under `nice`. The working tree is never touched: cosmic-ray mutates files in place, so it works
in a temporary copy of the tracked files. Survivors are printed with their diff: kill each with a test, or write it
down as equivalent (README, "Mutation testing") with the reason.

The gateway's njs program (zbi_infra/render/gateway.js) is JavaScript, which cosmic-ray does not mutate: its
behaviour is held by the live gateway tests (tests/test_gateway_live.py, tests/test_access_semantics.py), and its
known survivors were applied by hand (see the README).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    path: str
    tests: str  # pytest arguments: the tests that own this module's behaviour


TARGETS = {
    "network_policies": Target(
        "zbi_infra/node/network_policies.py",
        "tests/test_relationships.py -k 'not zone and not autoscaler'",
    ),
    "policies": Target(
        "zbi_infra/guardrail_checks.py", "tests/test_policy.py tests/test_netpol_model.py -k 'not pack'"
    ),
    "iam": Target("zbi_infra/iam.py", "tests/test_iam.py"),
    "access": Target(
        "zbi_infra/config/access.py",
        "tests/test_access.py tests/test_access_semantics.py tests/test_access_input.py"
        " tests/test_access_properties.py",
    ),
    "access_files": Target(
        "zbi_infra/config/access_files.py",
        "tests/test_access.py tests/test_access_semantics.py tests/test_access_input.py"
        " tests/test_access_properties.py",
    ),
    "gateway_render": Target(
        "zbi_infra/render/gateway.py",
        "tests/test_gateway.py tests/test_gateway_live.py tests/test_gateway_standalone_live.py"
        " tests/test_gateway_payloads.py tests/test_gateway_abuse.py",
    ),
    "cost": Target("zbi_infra/cost.py", "tests/test_cost.py tests/test_survivors.py -k 'cost or budget'"),
    "quota": Target("zbi_infra/node/quota.py", "tests/test_relationships.py -k quota"),
}


def scratch_copy(destination: Path) -> None:
    """The repository's tracked and new (not ignored) files, without the virtual environment or caches."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def annotation_spans(module: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the module's type annotations are, as (line, column) spans. With `from __future__ import annotations`
    they are never evaluated, so a mutant inside one (`str | None` -> `str - None`) is equivalent by construction."""
    tree = ast.parse(module.read_text())
    future = {a.name for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == "__future__"
              for a in node.names}  # fmt: skip
    postponed = "annotations" in future
    if not postponed:
        return []
    annotations = [
        annotation
        for node in ast.walk(tree)
        for annotation in (
            [node.annotation] if isinstance(node, ast.arg | ast.AnnAssign) else
            [node.returns] if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else []
        )
        if annotation is not None
    ]  # fmt: skip
    return [((a.lineno, a.col_offset), (a.end_lineno or a.lineno, a.end_col_offset or 0)) for a in annotations]


def cosmic_ray(*args: str, cwd: Path) -> None:
    subprocess.run(["nice", "-n", "19", sys.executable, "-m", "cosmic_ray.cli", *args], cwd=cwd, check=True)


def run(name: str, target: Target, *, sample: int, seed: int, timeout: float) -> tuple[int, int, int, list[str]]:
    """(killed, survived, other outcomes, survivors' diffs) of one module."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    with tempfile.TemporaryDirectory(prefix=f"zbi-mutation-{name}-") as directory:
        scratch = Path(directory)
        scratch_copy(scratch)
        # `python -m pytest` puts the scratch copy first on sys.path: its zbi_infra is the one imported and mutated.
        command = f"{sys.executable} -m pytest -x -q -p no:cacheprovider {target.tests}"
        (scratch / "mutation.toml").write_text(
            "[cosmic-ray]\n"
            f'module-path = "{target.path}"\n'
            f"timeout = {timeout}\n"
            "excluded-modules = []\n"
            f"test-command = {json.dumps(command)}\n\n"  # a TOML basic string is a JSON string
            "[cosmic-ray.distributor]\n"
            'name = "local"\n'
        )
        imported = subprocess.run(
            [sys.executable, "-c", "import zbi_infra; print(zbi_infra.__file__)"],
            cwd=scratch,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if not Path(imported).is_relative_to(scratch):
            raise SystemExit(f"the tests would import {imported}, not the scratch copy's zbi_infra")
        # Unmutated, the tests must pass: otherwise every mutant would count as killed.
        if subprocess.run(["nice", "-n", "19", "sh", "-c", command], cwd=scratch).returncode != 0:
            raise SystemExit(f"{name}: the tests fail without any mutation: {command}")
        session = scratch / "session.sqlite"
        cosmic_ray("init", "mutation.toml", str(session), cwd=scratch)
        spans = annotation_spans(scratch / target.path)
        with use_db(str(session), WorkDB.Mode.open) as db:
            for item in list(db.pending_work_items):
                if all(any(start <= m.start_pos and m.end_pos <= end for start, end in spans) for m in item.mutations):
                    db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="annotation"))
            pending = list(db.pending_work_items)
            if sample and len(pending) > sample:
                # Sampling, not secrecy: a seeded generator makes a run repeatable.
                keep = {item.job_id for item in random.Random(seed).sample(pending, sample)}  # noqa: S311
                for item in pending:
                    if item.job_id not in keep:
                        db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="sampled"))
        total = len(pending)
        print(f"{name}: {min(sample or total, total)} of {total} mutants outside type annotations", flush=True)
        cosmic_ray("exec", "mutation.toml", str(session), cwd=scratch)
        killed = survived = other = 0
        survivors = []
        with use_db(str(session), WorkDB.Mode.open) as db:
            for item, result in db.results:
                if result.worker_outcome is WorkerOutcome.SKIPPED:
                    continue
                if result.worker_outcome is not WorkerOutcome.NORMAL:
                    other += 1
                elif result.test_outcome is TestOutcome.SURVIVED:
                    survived += 1
                    survivors.append(result.diff or str(item.mutations))
                else:
                    killed += 1
        return killed, survived, other, survivors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help=f"modules to mutate: {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--sample", type=int, default=20, help="mutants per module, 0 for all (default 20)")
    parser.add_argument("--seed", type=int, default=24, help="the sampling seed (default 24)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per test run (default 300)")
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.modules) - set(TARGETS)):
        parser.error(f"unknown modules {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    rows = []
    for name in args.modules or list(TARGETS):
        killed, survived, other, survivors = run(
            name, TARGETS[name], sample=args.sample, seed=args.seed, timeout=args.timeout
        )
        for diff in survivors:
            print(f"--- {name}: survived\n{diff}")
        rows.append((name, killed, survived, other))
    print(f"\n{'module':<18} {'killed':>6} {'survived':>8} {'other':>5} {'score':>6}")
    for name, killed, survived, other in rows:
        score = f"{killed / (killed + survived):.0%}" if killed + survived else "-"
        print(f"{name:<18} {killed:>6} {survived:>8} {other:>5} {score:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
