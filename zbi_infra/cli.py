"""The `zbi` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

from zbi_infra.errors import ConfigError

EXIT_CONFIG = 2
EXIT_INTERNAL = 1
EXIT_POLICY = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zbi", description="zBI: Zcash infrastructure on Kubernetes and AWS EKS")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser(
        "plan",
        help="evaluate a stack offline (Pulumi mock runtime) and show what it would create",
        description="Run the real stack program under Pulumi's mocks: no Pulumi CLI, no credentials, no network.",
    )
    plan.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    plan.add_argument("--out", type=Path, help="write DIR/plan.json and DIR/manifests/*.yaml")
    plan.add_argument("--json", action="store_true", help="print plan.json to stdout instead of the tree")
    plan.add_argument("--project-dir", type=Path, help="the directory holding Pulumi.yaml (default: search upwards)")
    plan.add_argument(
        "--as-of",
        type=_iso_date,
        metavar="YYYY-MM-DD",
        help="check release support (zebrad's Mainnet end of support) as of this day instead of today",
    )
    plan.add_argument(
        "--policy",
        action="store_true",
        help="apply zBI's guardrails (the policies of policy/) to the plan; exit 3 on a violation",
    )
    plan.add_argument("--debug", action="store_true", help="show a traceback for unexpected errors")
    commands.add_parser("stacks", help="list the project's stacks")
    return parser


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a date; write YYYY-MM-DD") from None


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
    if args.command == "stacks":
        print("\n".join(project.stack_names()))
        return 0
    if args.as_of:
        os.environ[AS_OF_ENV] = args.as_of.isoformat()
    plan = evaluate(project.stack_file(args.stack), program=project.main, project=project.name)

    if args.out:
        render.write(plan, args.out)
    if args.json:
        print(json.dumps(render.plan_document(plan), indent=2, sort_keys=True))
    else:
        print(f"Plan for stack '{plan.stack}' of project '{plan.project}' (offline, Pulumi mock runtime)\n")
        print(render.tree(plan))
        print()
        print(render.counts(plan))
        if plan.warnings:
            print("\nWarnings:")
            print("\n".join(f"  - {w}" for w in sorted(set(plan.warnings))))
        if args.out:
            count = len(plan.kubernetes_objects())
            print(f"\nwrote {args.out / 'plan.json'} and {count} manifests to {args.out / 'manifests'}")
    if args.policy:
        return _check_policies(plan)
    return 0


def _check_policies(plan) -> int:
    from zbi_infra.policies import GUARDRAILS, Resource, evaluate

    violations = evaluate(Resource(r.type, r.name, r.inputs, r.urn) for r in plan.resources)
    print(f"\nPolicies ({len(GUARDRAILS)} guardrails, mandatory): {len(violations)} violations", file=sys.stderr)
    for violation in violations:
        print(f"  - [{violation.policy}] {violation.resource}: {violation.message}", file=sys.stderr)
    return EXIT_POLICY if violations else 0


if __name__ == "__main__":
    sys.exit(main())
