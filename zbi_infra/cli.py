"""The `zbi` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from zbi_infra.commands.arguments import add_project_dir, add_stack, iso_date
from zbi_infra.commands.cost import EXIT_OVER_BUDGET as EXIT_OVER_BUDGET
from zbi_infra.commands.instance import INSTANCE_EXAMPLES as INSTANCE_EXAMPLES
from zbi_infra.errors import ConfigError

EXIT_CONFIG = 2
EXIT_INTERNAL = 1
EXIT_POLICY = 3
EXIT_BROKEN_PIPE = 141  # as a shell reports a command SIGPIPE stopped (`yes | head`), without the traceback


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zbi", description="zBI: Zcash infrastructure on Kubernetes and AWS EKS")
    parser.add_argument("--version", action="version", version=f"zbi {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser(
        "plan",
        help="evaluate a stack offline (Pulumi mock runtime) and show what it would create",
        description="Run the real stack program under Pulumi's mocks: no Pulumi CLI, no credentials, no network.",
    )
    add_stack(plan)
    plan.add_argument("--out", type=Path, help="write DIR/plan.json and DIR/manifests/*.yaml")
    plan.add_argument("--json", action="store_true", help="print plan.json to stdout instead of the summary")
    plan.add_argument("--tree", action="store_true", help="after the summary, every resource as a tree, and counts")
    plan.add_argument("--diff", metavar="GIT_REF", help="what changes compared with the plan at another commit")
    add_project_dir(plan)
    plan.add_argument(
        "--as-of",
        type=iso_date,
        metavar="YYYY-MM-DD",
        help="check release support (zebrad's Mainnet end of support) as of this day instead of today",
    )
    plan.add_argument(
        "--policy",
        action="store_true",
        help="apply zBI's guardrails (the policies of policy/) to the plan; exit 3 on a violation",
    )
    plan.add_argument("--debug", action="store_true", help="show a traceback for unexpected errors")
    stacks = commands.add_parser("stacks", help="list the project's stacks")
    add_project_dir(stacks)
    from zbi_infra.commands import access, cost, instance, register, roles

    access.add_parser(commands)
    instance.add_parser(commands)
    register(commands)  # init, endpoints (zbi_infra/commands/)
    cost.add_parser(commands)
    roles.add_parser(commands)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zbi-infra")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader left (`zbi cost dev | head`): nothing more to say. Point stdout at /dev/null so that the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        print(
            f"internal error: {type(exc).__name__}: {str(exc)[:300]}\n"
            "This is a bug in zBI, not in your stack file: run again with --debug and report the traceback.",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _run(args: argparse.Namespace) -> int:
    # Imported here so `zbi --help` stays fast.
    from zbi_infra.config.stack import AS_OF_ENV
    from zbi_infra.plan import render
    from zbi_infra.plan.engine import evaluate
    from zbi_infra.plan.project import find_project

    project = find_project(args.project_dir)
    if getattr(args, "handler", None):  # the commands of zbi_infra/commands/
        return int(args.handler(args, project))
    if args.command == "stacks":
        print("\n".join(project.stack_names()))
        return 0
    if args.as_of:
        os.environ[AS_OF_ENV] = args.as_of.isoformat()
    if args.out:
        from zbi_infra.outputs import check_output_directory

        check_output_directory(args.out, flag="--out", children={"plan.json": False, "manifests": True})
    plan = evaluate(project.stack_file(args.stack), program=project.program(), project=project.name)
    _check_capacity(project, args.stack, plan)

    if args.diff is not None:
        from zbi_infra.commands import plan_diff

        return plan_diff.run(args, project, plan)
    if args.out:
        written = render.write(plan, args.out)
    if args.json:
        print(json.dumps(render.plan_document(plan), indent=2, sort_keys=True))
    else:
        from zbi_infra.plan.summary import print_summary

        print_summary(plan, project, tree=args.tree)
        if plan.warnings:
            print("\nWarnings:")
            print("\n".join(f"  - {w}" for w in sorted(set(plan.warnings))))
        if args.out:
            releases = len(plan.kubernetes_objects()) - written
            charts = f" (and {releases} Helm releases, rendered in the cluster, in plan.json only)" if releases else ""
            print(f"\nwrote {args.out / 'plan.json'} and {written} manifests to {args.out / 'manifests'}{charts}")
    if args.policy:
        return _check_policies(plan)
    return 0


def _check_capacity(project, stack: str, plan) -> None:
    """Pods that cannot fit the node groups even at maxSize: exit 2 before anything is written (plan/capacity.py)."""
    from zbi_infra.config import load_stack_config
    from zbi_infra.plan.capacity import check_capacity

    stack_file = project.stack_file(stack)
    capacity = check_capacity(plan, load_stack_config(stack_file.config, secret_keys=set(stack_file.secret_keys)))
    if capacity.errors:
        raise ConfigError(capacity.errors)
    plan.warnings.extend(capacity.warnings)


def _check_policies(plan) -> int:
    from zbi_infra.policies import GUARDRAILS, Resource, evaluate

    violations = evaluate(Resource(r.type, r.name, r.inputs, r.urn) for r in plan.resources)
    found = f"{len(violations)} violation{'' if len(violations) == 1 else 's'}"
    print(f"\nPolicies ({len(GUARDRAILS)} guardrails, mandatory): {found}", file=sys.stderr)
    for violation in violations:
        print(f"  - [{violation.policy}] {violation.resource}: {violation.message}", file=sys.stderr)
    return EXIT_POLICY if violations else 0


if __name__ == "__main__":
    sys.exit(main())
