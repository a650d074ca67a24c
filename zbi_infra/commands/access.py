"""`zbi access`: the instance administrator's commands on access/<instance>.yaml (keys, methods, rate limits). The
parser is here; the actions are zbi_infra/access_command.py's."""

from __future__ import annotations

import argparse
from pathlib import Path

from zbi_infra.commands.arguments import add_project_dir, instance_name, iso_date, method_list, positive, user_name


def add_parser(commands: argparse._SubParsersAction) -> None:
    access = commands.add_parser(
        "access",
        help="manage an instance's end users: keys, methods, rate limits (access/<instance>.yaml)",
        description="The instance administrator's file, access/<instance>.yaml: only key hashes are written to it.",
    )
    actions = access.add_subparsers(dest="action", required=True)

    def action(name: str, help: str, *, user: bool = False) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, description=help)
        parser.add_argument("instance", type=instance_name, help="the instance (a key of zbi:instances)")
        if user:
            parser.add_argument("user", type=user_name, help="the end user's name (lowercase letters, digits, . _ -)")
        parser.add_argument("--file", type=Path, help="the access file (default: access/<instance>.yaml)")
        add_project_dir(parser)
        return parser

    create = action("create-key", "make a key for a user (added, or rotated if listed); print it once", user=True)
    create.add_argument("--expires", type=iso_date, metavar="YYYY-MM-DD", help="the key stops working that day")
    create.add_argument("--json-rpc", type=method_list, metavar="M1,M2", help="narrower JSON-RPC methods")
    create.add_argument("--grpc", type=method_list, metavar="M1,M2", help="narrower gRPC methods")
    create.add_argument(
        "--zcashd-rpc",
        type=method_list,
        metavar="M1,M2",
        help="the zcashd sidecar's methods (/zcashd); wallet methods only when named here (docs/zakura.md)",
    )
    create.add_argument(
        "--rate", type=positive, metavar="N", help="requests per second, per gateway replica (default 10)"
    )
    create.add_argument("--burst", type=positive, metavar="N", help="requests at once above the rate")
    action("revoke", "remove a user and their key", user=True)
    listing = action("list", "list the users and what each may call")
    listing.add_argument("--json", action="store_true", help="print JSON")
    action("check", "validate the file")
    action("init", "write a commented access file for the instance")
    access.set_defaults(handler=run)


def run(args: argparse.Namespace, project) -> int:
    from zbi_infra.access_command import access_command

    return access_command(args, project)
