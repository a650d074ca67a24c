"""The `zbi` subcommands that came after the first ones (`init`, `endpoints`, `access init`, `plan --diff`), one
module each; `register` adds their parsers to `zbi`'s, and each parser names its handler."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    from zbi_infra.commands import endpoints, init

    init.add_parser(commands)
    endpoints.add_parser(commands)
