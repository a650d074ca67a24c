"""`zbi cost <stack>`: the monthly cost of what a stack's plan creates, by service and by instance (zbi_infra/cost.py
computes it); --check exits 4 over the stack's budget."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zbi_infra.commands.arguments import add_project_dir, add_stack
from zbi_infra.errors import ConfigError

EXIT_OVER_BUDGET = 4  # --check, over budget (zbi_infra/cli.py re-exports it with the other exit codes)


def add_parser(commands: argparse._SubParsersAction) -> None:
    cost = commands.add_parser(
        "cost",
        help="estimate the monthly cost of what a stack's plan creates, by service and by instance",
        description="Counts from the offline plan, prices from zbi_infra/data/aws-prices.json (region, date and "
        "sources inside), usage assumptions stated in the output. Examples:\n"
        "  zbi cost dev\n"
        "  zbi cost dev --json\n"
        "  zbi cost dev --check                     exit 4 when over zbi:budget.monthlyUsd\n"
        "  zbi cost dev --assume internet_egress_gib=2000 --prices my-prices.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stack(cost)
    cost.add_argument("--json", action="store_true", help="print the estimate as JSON")
    cost.add_argument("--check", action="store_true", help="exit 4 when the estimate is over zbi:budget.monthlyUsd")
    cost.add_argument("--prices", type=Path, help="a prices file in the shape of zbi_infra/data/aws-prices.json")
    cost.add_argument("--assume", action="append", default=[], metavar="NAME=N", help="override an assumption")
    add_project_dir(cost)
    cost.set_defaults(handler=run)


def run(args: argparse.Namespace, project) -> int:
    from zbi_infra import cost
    from zbi_infra.config import load_stack_config
    from zbi_infra.plan.engine import evaluate

    assumptions = cost.Assumptions.with_overrides(args.assume)
    prices = cost.load_prices(args.prices)
    stack_file = project.stack_file(args.stack)
    config = load_stack_config(stack_file.config, secret_keys=set(stack_file.secret_keys))
    plan = evaluate(stack_file, program=project.program(), project=project.name)
    estimate = cost.estimate(plan, config, prices=prices, assumptions=assumptions)
    if args.json:
        print(json.dumps(estimate.document(), indent=2, allow_nan=False))  # never NaN: not JSON
    else:
        print(cost.report(estimate, prices))
    margin = estimate.margin()
    if args.check:
        if margin is None:
            raise ConfigError([f"--check needs zbi:budget.monthlyUsd in Pulumi.{args.stack}.yaml. Fix: set it"])
        if margin < 0:
            print(f"over budget by ${-margin:,.2f} a month", file=sys.stderr)
            return EXIT_OVER_BUDGET
    return 0
