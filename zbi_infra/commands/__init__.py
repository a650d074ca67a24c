"""The `zbi` subcommands, one module each (`plan` and `stacks` stay in zbi_infra/cli.py): each module's `add_parser`
adds its parser to `zbi`'s, and each parser names its handler. `register` adds `init` and `endpoints`; cli.py adds
the others itself, in the order `zbi --help` lists them."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    from zbi_infra.commands import endpoints, init

    init.add_parser(commands)
    endpoints.add_parser(commands)
