"""`zbi roles <stack>`: the stack's CODEOWNERS block (platform admins own the platform, instance admins their access
files), printed or written into .github/CODEOWNERS with the rest of the file kept (zbi_infra/roles.py renders it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zbi_infra.commands.arguments import add_project_dir, add_stack


def add_parser(commands: argparse._SubParsersAction) -> None:
    roles = commands.add_parser(
        "roles",
        help="the CODEOWNERS block of a stack: platform admins own the platform, instance admins their access files",
        description="Rendered from zbi:cluster.admins[].github and zbi:instances.<name>.owners. Examples:\n"
        "  zbi roles dev            print the block\n"
        "  zbi roles dev --write    put it in .github/CODEOWNERS, keeping the rest of the file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stack(roles)
    roles.add_argument("--write", action="store_true", help="write the block into the CODEOWNERS file")
    roles.add_argument("--file", type=Path, help="the CODEOWNERS file (default: .github/CODEOWNERS)")
    add_project_dir(roles)
    roles.set_defaults(handler=run)


def run(args: argparse.Namespace, project) -> int:
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
