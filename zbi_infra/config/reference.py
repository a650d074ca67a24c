"""The stack-file reference, generated from the config models: every `zbi:` key, its type, default, limits and
description, and the same for access files (`access/<instance>.yaml`).

A key's description is its field's `description=`, else the comment written above the field in the model's source,
else the first sentence of its model's docstring: the reference says what the code says, in the code's words.

`python -m zbi_infra.config.reference > docs/configuration.md` writes it; a test fails when the committed file and the
models disagree, so the reference cannot drift from what `zbi plan` accepts.
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import re
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from zbi_infra.config.access import AccessFile
from zbi_infra.config.stack import StackConfig


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type inside Optional, whether None is allowed)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True  # noqa: UP007
    return annotation, False


def _type_name(annotation: Any) -> str:
    annotation, optional = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0]) + (" or null" if optional else "")
    if origin in (list, tuple):
        name = f"list of {_type_name(typing.get_args(annotation)[0])}"
    elif origin is dict:
        key, value = typing.get_args(annotation)
        name = f"map of {_type_name(key)} to {_type_name(value)}"
    elif origin is typing.Literal:
        name = " or ".join(json.dumps(a) for a in typing.get_args(annotation))
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        name = " or ".join(json.dumps(m.value) for m in annotation)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        name = "mapping"
    elif isinstance(annotation, type):
        name = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    else:
        name = str(annotation).replace("typing.", "")
    return name + (" or null" if optional else "")


def _limits(field: FieldInfo) -> str:
    found = []
    annotation, _ = _unwrap(field.annotation)
    metadata = list(field.metadata)
    if typing.get_origin(annotation) is typing.Annotated:
        metadata += list(typing.get_args(annotation)[1:])
    for item in metadata:
        for attribute, word in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("max_length", "length ≤")):
            value = getattr(item, attribute, None)
            if value is not None:
                found.append(f"{word} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            found.append(f"matches `{pattern}`".replace("|", "\\|"))
    return "; ".join(found)


def _default(field: FieldInfo) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return ""
    else:
        return "required"
    if isinstance(value, BaseModel) or (
        isinstance(value, dict) and any(isinstance(v, BaseModel) for v in value.values())
    ):
        return "see below"
    if value in ({}, []):
        return "empty"
    return f"`{json.dumps(value, default=lambda v: v.value if isinstance(v, enum.Enum) else str(v))}`"


def _models(annotation: Any) -> list[type[BaseModel]]:
    annotation, _ = _unwrap(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


@functools.cache
def _comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> the comment lines right above its declaration in the model's class body."""
    try:
        source = inspect.getsource(model)
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"^    ([a-z_][a-z0-9_]*)\s*:", line)
        if match and pending:
            found[match.group(1)] = " ".join(pending)
        pending = []
    return found


def _summary(model: type[BaseModel]) -> str:
    """The first sentence of the model's own docstring (never one inherited from the base model)."""
    doc = inspect.cleandoc(model.__dict__.get("__doc__") or "")
    return doc.split("\n\n")[0].replace("\n", " ").split(". ")[0].rstrip(".")


def _description(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    # A field declared in a base model (MethodSet.methods) has its comment there.
    declared_in = [m for m in model.__mro__ if m.__module__.startswith("zbi_infra.config")]
    text = field.description or next((c for m in declared_in if (c := _comments(m).get(name))), "")
    if not text:
        nested = _models(field.annotation)
        text = _summary(nested[0]) if nested else ""
    return text.replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str, rows: list[str]) -> None:
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        rows.append(
            f"| `{path}` | {_type_name(field.annotation)} | {_default(field)} | {_limits(field)} | "
            f"{_description(model, name, field)} |"
        )
        for nested in _models(field.annotation):
            container = typing.get_origin(_unwrap(field.annotation)[0])
            inner = f"{path}.<name>." if container is dict else f"{path}[]." if container is list else f"{path}."
            if container is dict:
                summary = _summary(nested).replace("|", "\\|") or "one entry per name"
                rows.append(f"| `{path}.<name>` | mapping (one per name) | | | {summary} |")
            _rows(nested, inner, rows)


def render_reference() -> str:
    rows: list[str] = []
    _rows(StackConfig, "zbi:", rows)
    header = [
        "# Stack file reference",
        "",
        "Generated from zBI's config models by `python -m zbi_infra.config.reference` — do not edit. Every key below "
        "sits under `config:` in a `Pulumi.<stack>.yaml`; unknown keys are errors, numbers and switches are never "
        "coerced, and `zbi plan <stack>` validates a file before anything is created.",
        "",
        "| key | type | default | limits | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    access: list[str] = []
    _rows(AccessFile, "", access)
    access_header = [
        "",
        "## Access files (`access/<instance>.yaml`)",
        "",
        "The instance administrator's file: the methods the instance's gateway exposes and who may call them "
        "(`zbi access init <instance>` writes a commented one). Validated by `zbi access check` and by every plan.",
        "",
        "| key | type | default | limits | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    return "\n".join(header + rows + access_header + access) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
