"""Edits of an access file as text: only the lines of the user being added, rotated or revoked change.

ruamel.yaml keeps comments and key order, but re-dumping a whole document re-flows long flow lists and normalises
indentation, so an administrator's hand-laid method lists would change on every `create-key`. Here the user's entry
is dumped alone and spliced over its own lines; every other byte stays. Layouts this does not handle (a flow-style
`users: [{…}]`, an item whose dash stands on its own line) return None, and the caller falls back to the re-dump;
the caller also checks that the spliced text means what the re-dumped document means.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from zbi_infra.yaml_roundtrip import dump

USERS = "users"
# round_trip_yaml's layout: a list item's dash two columns in.
DUMPED_DASH_COLUMN = 2


def plain_safe(text: str) -> str:
    """`text`, quoted when a YAML 1.1 reader (PyYAML, many tools) would not read it back as this string (`no`,
    `on`, `1e3`): zBI reads YAML 1.2, where those are strings, but the file should mean one thing to every reader."""
    try:
        same = yaml.safe_load(text) == text
    except yaml.YAMLError:
        same = False
    return text if same else DoubleQuotedScalarString(text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _item_ranges(lines: list[str], starts: list[int], dash: int) -> list[tuple[int, int]]:
    """Each item's lines [start, end): from its dash to its last line indented past the dash (trailing comments and
    blank lines stay outside: they belong to what follows)."""
    ranges = []
    for start in starts:
        end = start + 1
        for number in range(start + 1, len(lines)):
            line = lines[number]
            if line.strip() and _indent(line) <= dash:
                break
            if _is_content(line):
                end = number + 1
        ranges.append((start, end))
    return ranges


def _entry_lines(entry: CommentedMap, dash: int) -> list[str] | None:
    """The entry dumped as one list item, its dash at column `dash`; trailing comment lines (which ruamel attaches to
    an entry's last key but which stand outside the entry's lines) are dropped."""
    text = dump([entry])
    lines = text.splitlines(keepends=True)
    while lines and not _is_content(lines[-1]):
        lines.pop()
    shift = dash - DUMPED_DASH_COLUMN
    if shift < 0 and any(line.strip() and _indent(line) < -shift for line in lines):
        return None
    return [(" " * shift + line if shift >= 0 else line[-shift:]) if line.strip() else line for line in lines]


def splice_user(before: str, document: CommentedMap, index: int, entry: CommentedMap | None) -> str | None:
    """`before` with users[index] replaced by `entry` (appended when index is one past the end; removed when entry is
    None). `document` is the file as loaded (positions are read from it), before the entry is removed."""
    lines = before.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if USERS not in (document.lc.data or {}):
        # No users key: add one at the end, after everything (a file of comments keeps them all).
        if entry is None:
            return None
        new = _entry_lines(entry, DUMPED_DASH_COLUMN)
        return None if new is None else "".join([*lines, f"{USERS}:\n", *new])
    key_line, key_column = document.lc.key(USERS)
    users: Any = document[USERS]
    # Items read from the file have positions; an entry just appended has none.
    positions = (users.lc.data if isinstance(users, CommentedSeq) else None) or {}
    existing = [i for i in range(len(users)) if i in positions] if positions else []
    if not existing:
        return _into_empty(lines, key_line, key_column, entry) if index == 0 else None
    if existing != list(range(len(existing))):
        return None
    starts = []
    for item in existing:
        line, column = users.lc.item(item)
        text = lines[line]
        dash = text.rfind("-", 0, column)
        if dash < 0 or text[dash + 1 : column].strip() or text[:dash].strip():
            return None
        starts.append(line)
    dash = _indent(lines[starts[0]])
    if any(_indent(lines[start]) != dash for start in starts):
        return None
    ranges = _item_ranges(lines, starts, dash)
    if entry is None:
        start, end = ranges[index]
        remaining = [*lines[:start], *lines[end:]]
        if len(ranges) == 1:
            return _emptied(remaining, key_line, key_column)
        return "".join(remaining)
    new = _entry_lines(entry, dash)
    if new is None:
        return None
    if index < len(ranges):
        start, end = ranges[index]
    else:
        start = end = ranges[-1][1]
    return "".join([*lines[:start], *new, *lines[end:]])


_EMPTY_FLOW = re.compile(r"^(?P<key>\s*users:)\s*(?:\[\s*\])?\s*(?P<comment>#.*)?$")


def _into_empty(lines: list[str], key_line: int, key_column: int, entry: CommentedMap | None) -> str | None:
    """`users: []` (or `users:` alone) becomes a block list holding the entry."""
    match = _EMPTY_FLOW.match(lines[key_line].rstrip("\n"))
    if entry is None or match is None or key_column != 0:
        return None
    new = _entry_lines(entry, DUMPED_DASH_COLUMN)
    if new is None:
        return None
    comment = f"  {match['comment']}" if match["comment"] else ""
    return "".join([*lines[:key_line], f"{match['key']}{comment}\n", *new, *lines[key_line + 1 :]])


def _emptied(lines: list[str], key_line: int, key_column: int) -> str | None:
    """The last user removed: `users:` says `[]`, so the file still reads as an empty list, not as null."""
    match = _EMPTY_FLOW.match(lines[key_line].rstrip("\n"))
    if match is None or key_column != 0:
        return None
    comment = f"  {match['comment']}" if match["comment"] else ""
    return "".join([*lines[:key_line], f"{match['key']} []{comment}\n", *lines[key_line + 1 :]])
