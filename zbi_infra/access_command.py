"""`zbi access`: the instance administrator's commands on `access/<instance>.yaml`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import ValidationError

from zbi_infra.access_keys import UserGrant, create_key, describe_users, revoke
from zbi_infra.config import load_stack_config
from zbi_infra.config.access import ACCESS_DIR, AccessFile, RateLimit, check_for_instance, read_access_file
from zbi_infra.errors import ConfigError
from zbi_infra.plan.project import Project


def _rate_limit(args: argparse.Namespace) -> RateLimit | None:
    """--rate/--burst as the model reads them; out-of-bounds values name the flag."""
    if args.rate is None and args.burst is None:
        return None
    if args.rate is None:
        raise ConfigError(
            ["--burst needs --rate: the burst is allowed above a rate. Fix: give --rate N too"], what="command"
        )
    try:
        return RateLimit(requests_per_second=args.rate, burst=args.burst or 0)
    except ValidationError as exc:
        flags = {"requests_per_second": "--rate", "burst": "--burst"}
        raise ConfigError(
            [f"{flags.get(str(e['loc'][0]), e['loc'][0])} {e['input']}: {e['msg'].lower()}. Fix: give a value "
             f"from 1 to {(e.get('ctx') or {}).get('le', 'the documented limit')}" for e in exc.errors()],
            what="command",
        ) from None  # fmt: skip


def _access_checks(args: argparse.Namespace, project: Project) -> tuple[list[str], Callable[[AccessFile, str], None]]:
    """The stacks declaring the instance, and a check of an access file against each one's instance config (gRPC
    needs a light-wallet server). An instance no stack declares has no access file to write or check."""
    stacks = project.stacks_declaring(args.instance, what="access file")
    instances = []
    for stack in stacks:
        stack_file = project.stack_file(stack)
        config = load_stack_config(stack_file.config, secret_keys=set(stack_file.secret_keys))
        instances.append(config.instances[args.instance])

    def check(access: AccessFile, source: str) -> None:
        for instance in instances:
            check_for_instance(access, args.instance, instance, source)

    return stacks, check


def access_command(args: argparse.Namespace, project: Project) -> int:
    path = args.file or project.root / ACCESS_DIR / f"{args.instance}.yaml"
    # The gateway's day is UTC (gateway.js: toISOString): a key expiring today is refused by both on the same day.
    today = datetime.now(UTC).date()
    if args.action == "create-key":
        grant = UserGrant(
            expires=args.expires,
            json_rpc=args.json_rpc,
            grpc=args.grpc,
            rate_limit=_rate_limit(args),
            zcashd_rpc=args.zcashd_rpc,
        )
        _, check = _access_checks(args, project)
        key = create_key(path, args.user, grant, today=today, check=lambda access: check(access, str(path)))
        print(f"key for {args.user} on {args.instance} (shown once; {path} holds only its SHA-256):", file=sys.stderr)
        print(key)
        return 0
    if args.action == "revoke":
        revoke(path, args.user)
        print(f"revoked {args.user}: the gateway refuses the key once the new table is deployed", file=sys.stderr)
        return 0
    if args.action == "init":
        from zbi_infra.commands import access_init

        return access_init.run(args, project, path)
    if args.action == "check":
        # `check` and `create-key` read every stack file: the instance must be declared (named before the file is
        # read, so a misspelt instance gets "did you mean"), and its config fits the file.
        declared, check = _access_checks(args, project)
        access = read_access_file(path)
        check(access, str(path))
        stacks = ", ".join(declared)
        print(f"{path}: valid ({len(access.users)} users; instance of stack {stacks})")
        return 0
    rows = describe_users(read_access_file(path), today=today)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        expires = f", expires {row['expires']}" if row["expires"] else ""
        print(f"{row['user']} ({row['status']}{expires}; {row['rate']})")
        print(f"  JSON-RPC: {', '.join(row['jsonRpc']) or '-'}")
        print(f"  gRPC:     {', '.join(row['grpc']) or '-'}")
        if "zcashdRpc" in row:
            print(f"  zcashd:   {', '.join(row['zcashdRpc']) or '-'}")
    return 0
