"""The stack-file reference, generated from the config models: every `zbi:` key, its type, default and limits.

`python -m zbi_infra.config.reference > docs/configuration.md` writes it; a test fails when the committed file and the
models disagree, so the reference cannot drift from what `zbi plan` accepts.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

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


def _rows(model: type[BaseModel], prefix: str, rows: list[str]) -> None:
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        rows.append(f"| `{path}` | {_type_name(field.annotation)} | {_default(field)} | {_limits(field)} |")
        for nested in _models(field.annotation):
            container = typing.get_origin(_unwrap(field.annotation)[0])
            inner = f"{path}.<name>." if container is dict else f"{path}[]." if container is list else f"{path}."
            if container is dict:
                rows.append(f"| `{path}.<name>` | mapping (one per name) | | |")
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
        "| key | type | default | limits |",
        "| --- | --- | --- | --- |",
    ]
    return "\n".join(header + rows) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
