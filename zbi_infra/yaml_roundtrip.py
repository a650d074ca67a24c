"""Round-trip YAML for the files zBI edits in place (stack files, access files): comments, key order, quoting and
layout survive an edit, and the result replaces the file in one step."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedSeq


def round_trip_yaml(*, width: int | None = None) -> YAML:
    handler = YAML()  # round trip: comments and key order are kept
    handler.preserve_quotes = True
    if width is not None:
        handler.width = width
    handler.indent(mapping=2, sequence=4, offset=2)
    return handler


def dump(document: Any, *, width: int | None = None) -> str:
    buffer = io.StringIO()
    round_trip_yaml(width=width).dump(document, buffer)
    return buffer.getvalue()


def flow_list(values: list[str]) -> CommentedSeq:
    """A list written on one line, `[a, b]`, as people write method and host lists."""
    seq = CommentedSeq(values)
    seq.fa.set_flow_style()
    return seq


def replace_file(path: Path, text: str) -> None:
    """Write `text` beside `path`, then rename it over `path`: a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)
