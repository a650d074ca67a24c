#!/usr/bin/env python3
"""How long `zbi plan dev` takes, next to the time it takes only to import the Pulumi SDKs it needs.

The ratio says how much of a plan is zBI's own work: the rest is Python importing pulumi, pulumi_aws, pulumi_eks,
pulumi_kubernetes (thousands of modules). Each command runs in a fresh interpreter, with and without bytecode
writing, `--runs` times; the median is printed.

    python3 -m uv run python benchmarks/plan_startup.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The SDK modules a plan of the dev stack loads (the providers load their resource modules lazily).
IMPORTS = (
    "import pulumi, pulumi_eks, pulumi_random, pulumi_tls; "
    "import pulumi_aws.ec2, pulumi_aws.eks, pulumi_aws.iam, pulumi_aws.kms, pulumi_aws.cloudwatch, "
    "pulumi_aws.dlm, pulumi_aws.ebs, pulumi_aws.route53; "
    "import pulumi_kubernetes.core.v1, pulumi_kubernetes.apps.v1, pulumi_kubernetes.policy.v1, "
    "pulumi_kubernetes.networking.v1, pulumi_kubernetes.autoscaling.v2, pulumi_kubernetes.storage.v1, "
    "pulumi_kubernetes.apiextensions"
)


def median_seconds(command: list[str], runs: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stack", default="dev")
    args = parser.parse_args()
    zbi = str(Path(sys.executable).parent / "zbi")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as empty_cache:
        cases = (
            ("bytecode compiled at install", {}),
            ("PYTHONDONTWRITEBYTECODE=1", {"PYTHONDONTWRITEBYTECODE": "1"}),
            # What a machine without compiled bytecode pays on every run: an empty cache it may not write to.
            ("no bytecode at all", {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": empty_cache}),
        )
        for label, extra in cases:
            run_case(label, {**os.environ, **extra}, zbi, args)


def run_case(label: str, env: dict[str, str], zbi: str, args: argparse.Namespace) -> None:
    plan = median_seconds([zbi, "plan", args.stack], args.runs, env)
    imports = median_seconds([sys.executable, "-c", IMPORTS], args.runs, env)
    print(
        f"{label:30} zbi plan {args.stack}: {plan:5.2f} s   SDK imports alone: {imports:5.2f} s   "
        f"ratio plan/imports: {plan / imports:4.2f}"
    )


if __name__ == "__main__":
    main()
