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
EXIT_OVER_BUDGET = 4
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
    plan.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    plan.add_argument("--out", type=Path, help="write DIR/plan.json and DIR/manifests/*.yaml")
    plan.add_argument("--json", action="store_true", help="print plan.json to stdout instead of the summary")
    plan.add_argument("--tree", action="store_true", help="after the summary, every resource as a tree, and counts")
    plan.add_argument("--diff", metavar="GIT_REF", help="what changes compared with the plan at another commit")
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
    stacks = commands.add_parser("stacks", help="list the project's stacks")
    stacks.add_argument("--project-dir", type=Path, help="the directory holding Pulumi.yaml (default: search upwards)")
    _access_parser(commands)
    _instance_parser(commands)
    from zbi_infra.commands import register

    register(commands)  # init, endpoints (zbi_infra/commands/)
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
    cost.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    cost.add_argument("--json", action="store_true", help="print the estimate as JSON")
    cost.add_argument("--check", action="store_true", help="exit 4 when the estimate is over zbi:budget.monthlyUsd")
    cost.add_argument("--prices", type=Path, help="a prices file in the shape of zbi_infra/data/aws-prices.json")
    cost.add_argument("--assume", action="append", default=[], metavar="NAME=N", help="override an assumption")
    cost.add_argument("--project-dir", type=Path, help="the directory holding Pulumi.yaml")
    roles = commands.add_parser(
        "roles",
        help="the CODEOWNERS block of a stack: platform admins own the platform, instance admins their access files",
        description="Rendered from zbi:cluster.admins[].github and zbi:instances.<name>.owners. Examples:\n"
        "  zbi roles dev            print the block\n"
        "  zbi roles dev --write    put it in .github/CODEOWNERS, keeping the rest of the file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    roles.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    roles.add_argument("--write", action="store_true", help="write the block into the CODEOWNERS file")
    roles.add_argument("--file", type=Path, help="the CODEOWNERS file (default: .github/CODEOWNERS)")
    roles.add_argument("--project-dir", type=Path, help="the directory holding Pulumi.yaml")
    return parser


def _access_parser(commands: argparse._SubParsersAction) -> None:
    access = commands.add_parser(
        "access",
        help="manage an instance's end users: keys, methods, rate limits (access/<instance>.yaml)",
        description="The instance administrator's file, access/<instance>.yaml: only key hashes are written to it.",
    )
    actions = access.add_subparsers(dest="action", required=True)

    def action(name: str, help: str, *, user: bool = False) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, description=help)
        parser.add_argument("instance", type=_instance_name, help="the instance (a key of zbi:instances)")
        if user:
            parser.add_argument("user", type=_user_name, help="the end user's name (lowercase letters, digits, . _ -)")
        parser.add_argument("--file", type=Path, help="the access file (default: access/<instance>.yaml)")
        parser.add_argument("--project-dir", type=Path, help="the directory holding Pulumi.yaml")
        return parser

    create = action("create-key", "make a key for a user (added, or rotated if listed); print it once", user=True)
    create.add_argument("--expires", type=_iso_date, metavar="YYYY-MM-DD", help="the key stops working that day")
    create.add_argument("--json-rpc", type=_method_list, metavar="M1,M2", help="narrower JSON-RPC methods")
    create.add_argument("--grpc", type=_method_list, metavar="M1,M2", help="narrower gRPC methods")
    create.add_argument(
        "--zcashd-rpc",
        type=_method_list,
        metavar="M1,M2",
        help="the zcashd sidecar's methods (/zcashd); wallet methods only when named here (docs/zakura.md)",
    )
    create.add_argument("--rate", type=_positive, metavar="N", help="requests per second (default 10)")
    create.add_argument("--burst", type=_positive, metavar="N", help="requests at once above the rate")
    action("revoke", "remove a user and their key", user=True)
    listing = action("list", "list the users and what each may call")
    listing.add_argument("--json", action="store_true", help="print JSON")
    action("check", "validate the file")
    action("init", "write a commented access file for the instance")


INSTANCE_EXAMPLES = """Examples:
  zbi instance list dev
  zbi instance show dev testnet --json
  zbi instance add dev testnet-2 --network testnet --replicas 3 --storage-gib 600 --public-grpc \\
      --hostname testnet-2.lwd.example.com --admin arn:aws:iam::123456789012:role/testnet-2-ops --dry-run
  zbi instance add dev zk --network testnet --node zakurad --image-tag 1.3.0-rc1 --release-height 3457227 \\
      --release-date 2026-08-21 --lightwallet none --dry-run --release-source \\
      https://github.com/zakura-core/zakura/blob/v1.3.0-rc1/crates/zakurad/src/components/sync/end_of_support.rs
  zbi instance remove dev testnet-2 --yes
Everything else an instance can set stays in the YAML (see the README's "An instance")."""


def _instance_parser(commands: argparse._SubParsersAction) -> None:
    instance = commands.add_parser(
        "instance",
        help="add, remove, list and show the instances of a stack (edits Pulumi.<stack>.yaml, comments kept)",
        description="The platform administrator's commands. Every edit is validated as `zbi plan` validates the "
        "stack before it is written; --dry-run prints the diff instead.\n\n" + INSTANCE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = instance.add_subparsers(dest="action", required=True)

    def action(name: str, help: str, *, named: bool) -> argparse.ArgumentParser:
        parser = actions.add_parser(
            name,
            help=help,
            description=f"{help}\n\n{INSTANCE_EXAMPLES}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("stack", help="stack name: edits Pulumi.<stack>.yaml")
        if named:
            parser.add_argument("name", type=_instance_name, help="the instance (a key of zbi:instances)")
        parser.add_argument("--project-dir", type=Path, help="the directory holding Pulumi.yaml")
        return parser

    add = action("add", "add an instance", named=True)
    add.add_argument("--network", required=True, choices=["mainnet", "testnet", "regtest"])
    add.add_argument("--node", choices=["zebrad", "zakurad", "zcashd"], help="full node (default zebrad)")
    add.add_argument("--replicas", type=_positive, help="full-node replicas (default 2)")
    add.add_argument("--storage-gib", type=_positive, help="chain volume size per replica (default 500)")
    add.add_argument("--lightwallet", choices=["lightwalletd", "zaino", "none"], help="default lightwalletd")
    add.add_argument("--public-grpc", action=argparse.BooleanOptionalAction, help="a public load balancer")
    add.add_argument("--hostname", action="append", default=[], help="a public hostname (repeatable)")
    add.add_argument("--admin", action="append", default=[], help="an administrator's IAM principal ARN")
    add.add_argument("--owner", action="append", default=[], help="a GitHub owner, @user or @org/team")
    add.add_argument("--image-tag", help="node.image.tag: the full node's release (no 'v'); default zBI's pinned one")
    release = "for a release zBI's table does not hold yet (docs/releases.md), with --image-tag: "
    add.add_argument("--release-height", type=_positive, help=release + "ESTIMATED_RELEASE_HEIGHT at the tag")
    add.add_argument("--release-date", type=_iso_date, help=release + "the tag's date, YYYY-MM-DD")
    add.add_argument("--release-source", help=release + "the URL the height and date were read from")
    add.add_argument("--dry-run", action="store_true", help="print the diff; write nothing")
    remove = action("remove", "remove an instance (its volumes and snapshots are retained)", named=True)
    remove.add_argument("--yes", action="store_true", help="confirm: without it, nothing is written")
    remove.add_argument("--dry-run", action="store_true", help="print the diff; write nothing")
    action("list", "list the instances", named=False).add_argument("--json", action="store_true", help="print JSON")
    action("show", "show an instance with every default", named=True).add_argument(
        "--json", action="store_true", help="print JSON"
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zbi-infra")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _instance_name(text: str) -> str:
    import re

    from zbi_infra.config.base import DNS_LABEL_PATTERN

    if not re.fullmatch(DNS_LABEL_PATTERN, text):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an instance name; write a key of zbi:instances")
    return text


def _user_name(text: str) -> str:
    from zbi_infra.config.access import user_name_problem

    if problem := user_name_problem(text):
        raise argparse.ArgumentTypeError(problem)
    return text


def _method_list(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise argparse.ArgumentTypeError("give at least one method, comma-separated")
    return methods


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number of at least 1")
    return int(text)


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
    if args.command == "access":
        from zbi_infra.access_command import access_command

        return access_command(args, project)
    if args.command == "roles":
        return _roles(args, project)
    if args.command == "instance":
        return _instance(args, project)
    if args.command == "cost":
        return _cost(args, project)
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


def _roles(args: argparse.Namespace, project) -> int:
    from zbi_infra.config import load_stack_config
    from zbi_infra.roles import codeowners_block, owning_stack, with_block

    stack_file = project.stack_file(args.stack)
    config = load_stack_config(stack_file.config, secret_keys=set(stack_file.secret_keys))
    owner, config = owning_stack(args.stack, config, project.root)
    if owner != args.stack:
        print(f"stack {args.stack} recovers {owner}: its owners are {owner}'s (Pulumi.{owner}.yaml)", file=sys.stderr)
    block = codeowners_block(owner, config)
    if not args.write:
        print(block, end="")
        return 0
    path = args.file or project.root / ".github" / "CODEOWNERS"
    from zbi_infra.outputs import check_output_file
    from zbi_infra.yaml_roundtrip import locked, replace_file

    check_output_file(path, flag="--file")
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):  # the rest of the file is someone else's: read and replaced under the lock, mode kept
        replace_file(path, with_block(check_output_file(path, flag="--file"), block))
    print(f"wrote the zbi roles block of stack {args.stack} to {path}", file=sys.stderr)
    return 0


def _instance(args: argparse.Namespace, project) -> int:
    import yaml

    from zbi_infra import instances
    from zbi_infra.yaml_roundtrip import locked

    project.stack_file(args.stack)  # refuses an unknown stack, naming the known ones
    path = project.root / f"Pulumi.{args.stack}.yaml"
    if args.action in ("list", "show"):
        config = instances.validated(args.stack, path, path.read_text())
        if args.action == "list":
            rows = instances.instance_rows(config)
            if args.json:
                print(json.dumps(rows, indent=2))
            for row in [] if args.json else rows:
                public = ", public gRPC" if row["publicGrpc"] else ""
                print(
                    f"{row['name']}: {row['network']}, {row['replicas']} x {row['node']} "
                    f"({row['storageGib']} GiB), light wallet {row['lightwallet']}{public}"
                )
            return 0
        shown = instances.show(config, args.name, path)
        print(json.dumps(shown, indent=2) if args.json else yaml.safe_dump(shown, sort_keys=False), end="\n")
        return 0
    # One editor at a time: the file is read, edited and replaced under its lock, so no concurrent edit is lost.
    with locked(path):
        return _edit_instance(args, path)


def _edit_instance(args: argparse.Namespace, path: Path) -> int:
    from zbi_infra import instances
    from zbi_infra.yaml_roundtrip import replace_file

    if args.action == "add":
        flags = instances.InstanceFlags(
            network=args.network,
            node_kind=args.node,
            replicas=args.replicas,
            storage_gib=args.storage_gib,
            lightwallet=args.lightwallet,
            public_grpc=args.public_grpc,
            hostnames=args.hostname,
            admins=args.admin,
            owners=args.owner,
            image_tag=args.image_tag,
            release_height=args.release_height,
            release_date=args.release_date,
            release_source=args.release_source,
        )
        edit = instances.add_instance(args.stack, path, args.name, flags)
        for note in edit.notes:
            print(f"warning: {note}", file=sys.stderr)
    else:
        edit = instances.remove_instance(args.stack, path, args.name)
        for note in edit.notes:
            print(f"retained: {note}", file=sys.stderr)
        if not args.yes and not args.dry_run:
            print(edit.diff(), end="")
            raise ConfigError([f"removing {args.name} from {path.name} needs --yes (nothing was written)"])
    if args.dry_run:
        print(edit.diff(), end="")
        return 0
    replace_file(path, edit.after)
    print(f"{args.action}: {args.name} in {path.name}; run `zbi plan {args.stack}` to see the change", file=sys.stderr)
    return 0


def _cost(args: argparse.Namespace, project) -> int:
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
