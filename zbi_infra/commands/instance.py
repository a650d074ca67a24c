"""`zbi instance`: the platform administrator's commands on a stack's instances (add, remove, list, show), editing
Pulumi.<stack>.yaml with its comments kept, each edit validated as `zbi plan` validates the stack before it is
written. The edits themselves are zbi_infra/instances.py's."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zbi_infra.commands.arguments import add_project_dir, add_stack, instance_name, iso_date, positive
from zbi_infra.errors import ConfigError

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


def add_parser(commands: argparse._SubParsersAction) -> None:
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
        add_stack(parser, file_use="edits")
        if named:
            parser.add_argument("name", type=instance_name, help="the instance (a key of zbi:instances)")
        add_project_dir(parser)
        return parser

    add = action("add", "add an instance", named=True)
    add.add_argument("--network", required=True, choices=["mainnet", "testnet", "regtest"])
    add.add_argument("--node", choices=["zebrad", "zakurad", "zcashd"], help="full node (default zebrad)")
    add.add_argument("--replicas", type=positive, help="full-node replicas (default 2)")
    add.add_argument("--storage-gib", type=positive, help="chain volume size per replica (default 500)")
    add.add_argument("--lightwallet", choices=["lightwalletd", "zaino", "none"], help="default lightwalletd")
    add.add_argument("--public-grpc", action=argparse.BooleanOptionalAction, help="a public load balancer")
    add.add_argument("--hostname", action="append", default=[], help="a public hostname (repeatable)")
    add.add_argument("--admin", action="append", default=[], help="an administrator's IAM principal ARN")
    add.add_argument("--owner", action="append", default=[], help="a GitHub owner, @user or @org/team")
    add.add_argument("--image-tag", help="node.image.tag: the full node's release (no 'v'); default zBI's pinned one")
    release = "for a release zBI's table does not hold yet (docs/releases.md), with --image-tag: "
    add.add_argument("--release-height", type=positive, help=release + "ESTIMATED_RELEASE_HEIGHT at the tag")
    add.add_argument("--release-date", type=iso_date, help=release + "the tag's date, YYYY-MM-DD")
    add.add_argument("--release-source", help=release + "the URL the height and date were read from")
    add.add_argument("--dry-run", action="store_true", help="print the diff; write nothing")
    remove = action("remove", "remove an instance (its volumes and snapshots are retained)", named=True)
    remove.add_argument("--yes", action="store_true", help="confirm: without it, nothing is written")
    remove.add_argument("--dry-run", action="store_true", help="print the diff; write nothing")
    action("list", "list the instances", named=False).add_argument("--json", action="store_true", help="print JSON")
    action("show", "show an instance with every default", named=True).add_argument(
        "--json", action="store_true", help="print JSON"
    )
    instance.set_defaults(handler=run)


def run(args: argparse.Namespace, project) -> int:
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
        return _edit(args, path)


def _edit(args: argparse.Namespace, path: Path) -> int:
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
