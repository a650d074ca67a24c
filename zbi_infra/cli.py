"""The `zbi` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zbi_infra.errors import ConfigError

EXIT_CONFIG = 2


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
    commands.add_parser("stacks", help="list the project's stacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Imported here so `zbi --help` stays fast.
    from zbi_infra.plan import render
    from zbi_infra.plan.engine import evaluate
    from zbi_infra.plan.project import find_project

    try:
        project = find_project(args.project_dir)
        if args.command == "stacks":
            print("\n".join(project.stack_names()))
            return 0
        plan = evaluate(project.stack_file(args.stack), program=project.main, project=project.name)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
