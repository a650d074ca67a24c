"""The arguments `zbi`'s subcommands share, and their argument types: each type turns a flag's text into a value or
refuses it, naming the fix, before anything runs (argparse's exit 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from pathlib import Path


def add_stack(
    parser: argparse.ArgumentParser,
    *,
    name: str = "stack name",
    file_use: str = "reads",
    type: Callable[[str], str] = str,
) -> None:
    """The stack positional: which Pulumi.<stack>.yaml the command reads (or edits, or `init` writes)."""
    parser.add_argument("stack", type=type, help=f"{name}: {file_use} Pulumi.<stack>.yaml")


def add_project_dir(parser: argparse.ArgumentParser) -> None:
    """--project-dir, read by cli.py's find_project before any command's handler runs."""
    parser.add_argument("--project-dir", type=Path, help="the directory holding Pulumi.yaml (default: search upwards)")


def instance_name(text: str) -> str:
    import re

    from zbi_infra.config.base import DNS_LABEL_PATTERN

    if not re.fullmatch(DNS_LABEL_PATTERN, text):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an instance name; write a key of zbi:instances")
    return text


def user_name(text: str) -> str:
    from zbi_infra.config.access import user_name_problem

    if problem := user_name_problem(text):
        raise argparse.ArgumentTypeError(problem)
    return text


def method_list(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise argparse.ArgumentTypeError("give at least one method, comma-separated")
    return methods


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number of at least 1")
    return int(text)


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a date; write YYYY-MM-DD") from None
