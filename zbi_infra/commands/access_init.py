"""`zbi access init <instance>`: the instance administrator's first access file, commented, validated before it is
written. The instance must be declared in a stack (a misspelling gets "did you mean"); an existing file is kept."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from zbi_infra.errors import ConfigError

# Read-only chain queries (methods that change the node are never exposable, whatever a file says).
JSON_RPC = [
    "getblockchaininfo",
    "getblockcount",
    "getbestblockhash",
    "getblock",
    "getblockhash",
    "getblockheader",
    "getrawtransaction",
    "sendrawtransaction",
]

TEMPLATE = """\
# Access to instance `{instance}` (stack {stacks}): which methods the instance exposes through its access gateway,
# and who may call them. Owned by the instance's administrators (`zbi roles <stack> --write` gives them this file).
# It holds no secret: users are listed with the SHA-256 of their key.
#   zbi access create-key {instance} <user>      make a key (printed once) and add the user
#   zbi access revoke {instance} <user>          take it away
#   zbi access check {instance}                  validate this file
# With this file, the instance gets a gateway in front (keys checked, per-user methods and rate limits).
# Rate limits are per gateway replica (gateway.minReplicas to maxReplicas, 2 to 6 by default): a caller spread
# over n replicas may get up to n times a rate written here.

jsonRpc:
  # zebrad JSON-RPC methods callers may use (`POST /`, basic auth <user>:<key>). Add or remove; unknown names and
  # methods that change the node are refused with the reason.
  methods: {json_rpc}

grpc:
  # lightwalletd's {service} methods (HTTP/2, `authorization: Bearer <key>`).
  methods: {grpc}

# Wallets without a key (a public light-wallet server): uncomment to let anyone call these, within a rate limit.
# anonymous:
#   grpc: [GetLightdInfo, GetLatestBlock, GetBlockRange, GetTreeState, SendTransaction]
#   rateLimit: {{requestsPerSecond: 5, burst: 20}}

users: []
"""


def access_file_text(instance: str, stacks: list[str]) -> str:
    from zbi_infra.config.access import light_wallet_service, parse_access

    service, methods = light_wallet_service()
    text = TEMPLATE.format(
        instance=instance,
        stacks=", ".join(stacks),
        service=service,
        json_rpc="[" + ", ".join(JSON_RPC) + "]",
        grpc="[" + ", ".join(methods) + "]",
    )
    parse_access(yaml.safe_load(text), f"access/{instance}.yaml")  # what is written is valid
    return text


def run(args: argparse.Namespace, project: Any, path: Path) -> int:
    from zbi_infra.yaml_roundtrip import replace_file

    stacks = project.stacks_declaring(args.instance, what="access init request")
    if path.exists():
        raise ConfigError(
            [f"{path} exists (nothing was written). Fix: edit it, or remove it to start again"],
            what="access init request",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, access_file_text(args.instance, stacks))
    print(f"wrote {path}: next, `zbi access create-key {args.instance} <user>`", file=sys.stderr)
    return 0
