"""The argument types of `zbi`'s subcommands: each turns a flag's text into a value or refuses it, naming the fix,
before anything runs (argparse's exit 2)."""

from __future__ import annotations

import argparse
from datetime import date


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
