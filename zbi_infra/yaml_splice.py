"""Edits of a block mapping as text: adding or removing one entry changes that entry's lines and nothing else.

Re-dumping a whole document with ruamel.yaml keeps comments and order but normalises the rest (flow lists folded at
the line width, spacing inside `{ }` and before comments), so `zbi instance add` would rewrite lines it never meant to
touch. Here the new entry is dumped alone and inserted after the last entry's lines, or the removed entry's lines are
cut out. Layouts this does not handle (a flow mapping, keys at different columns) return None: the caller falls back to
the re-dump, and checks that the spliced text means what the re-dumped document means before choosing it.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedMap

from zbi_infra.yaml_roundtrip import dump


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _entry_end(lines: list[str], start: int, column: int) -> int:
    """One past the entry's last line: lines indented past the key belong to it; trailing comments and blank lines
    stay outside (they belong to what follows)."""
    end = start + 1
    for number in range(start + 1, len(lines)):
        line = lines[number]
        if line.strip() and _indent(line) <= column:
            break
        if _is_content(line):
            end = number + 1
    return end


def _positions(mapping: CommentedMap, lines: list[str]) -> dict[Any, tuple[int, int]] | None:
    """Key -> (line, column) for the keys read from the file, if they form a block mapping at one column."""
    data = getattr(mapping.lc, "data", None) or {}
    positions = {key: (line, column) for key, (line, column, *_rest) in data.items()}
    if not positions or len({column for _, column in positions.values()}) != 1:
        return None
    for line, column in positions.values():
        if line >= len(lines) or _indent(lines[line]) != column:
            return None  # a flow mapping `{a: 1}`, or a key after a `? `
    return positions


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def add_entry(before: str, mapping: CommentedMap, key: str, value: Any, *, width: int | None = None) -> str | None:
    """`before` with `key: value` added after the mapping's last entry (the mapping as loaded from `before`)."""
    lines = _lines(before)
    positions = _positions(mapping, lines)
    if positions is None or key in positions:
        return None
    column = next(iter(positions.values()))[1]
    end = max(_entry_end(lines, line, column) for line, _ in positions.values())
    entry = dump(CommentedMap({key: value}), width=width).splitlines(keepends=True)
    entry = [" " * column + line if line.strip() else line for line in entry]
    return "".join([*lines[:end], *entry, *lines[end:]])


def remove_entry(before: str, mapping: CommentedMap, key: str) -> str | None:
    """`before` without `key`'s lines (the mapping as loaded from `before`, the key still in it)."""
    lines = _lines(before)
    positions = _positions(mapping, lines)
    if positions is None or key not in positions:
        return None
    line, column = positions[key]
    return "".join([*lines[:line], *lines[_entry_end(lines, line, column) :]])
