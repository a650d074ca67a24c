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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORTS = "import pulumi, pulumi_aws, pulumi_eks, pulumi_kubernetes, pulumi_random, pulumi_tls"


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
    for label, extra in (("bytecode kept", {}), ("PYTHONDONTWRITEBYTECODE=1", {"PYTHONDONTWRITEBYTECODE": "1"})):
        env = {**os.environ, **extra}
        plan = median_seconds([zbi, "plan", args.stack], args.runs, env)
        imports = median_seconds([sys.executable, "-c", IMPORTS], args.runs, env)
        print(
            f"{label:28} zbi plan {args.stack}: {plan:5.2f} s   SDK imports alone: {imports:5.2f} s   "
            f"ratio plan/imports: {plan / imports:4.2f}"
        )


if __name__ == "__main__":
    main()
