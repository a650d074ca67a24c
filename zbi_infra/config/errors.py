"""Turn pydantic's validation errors into messages that name the stack config key and say how to fix it."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from zbi_infra.errors import ConfigError

NAMESPACE = "zbi"


def config_key(loc: tuple[int | str, ...], prefix: str = f"{NAMESPACE}:") -> str:
    """('cluster', 'nodeGroups', 'general', 'minSize') -> 'zbi:cluster.nodeGroups.general.minSize'."""
    if not loc:
        return prefix.rstrip().removesuffix(":")
    head, *rest = loc
    key = f"{prefix}{head}"
    for part in rest:
        if part == "[key]":
            continue
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that owns the last element of `loc`, for suggesting known keys."""
    current: Any = model
    for part in loc:
        current = _unwrap_optional(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {f.alias or name: f for name, f in current.model_fields.items()}
            field = fields.get(str(part))
            if field is None:
                return current
            current = field.annotation
            continue
        current = _unwrap_container(current)
    current = _unwrap_optional(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _unwrap_container(annotation: Any) -> Any:
    """dict[str, M] / list[M] / M | None -> M."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (dict, typing.Mapping) and len(args) == 2:
        return args[1]
    if origin in (list, typing.Sequence) and args:
        return args[0]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    if origin is typing.Annotated:
        return args[0]
    return annotation


def _aliased(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Pydantic reports defaults by field name (public_access_cidrs); users write aliases (publicAccessCidrs)."""
    result: list[int | str] = []
    for index, part in enumerate(loc):
        owner = _model_at(model, loc[:index])
        field = owner.model_fields.get(str(part)) if owner and isinstance(part, str) else None
        result.append(field.alias if field is not None and field.alias else part)
    return tuple(result)


MAX_SHOWN = 60


def shown(value: Any) -> str:
    """A value as an error message may quote it: never more than a line, whatever the user pasted."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}… ({len(text)} characters)"


def _fix(error: Any, loc: tuple[int | str, ...]) -> str:
    """What to write instead, for each kind of error pydantic reports."""
    kind, ctx = error["type"], error.get("ctx") or {}
    bounds = {
        "greater_than_equal": "at least {ge}",
        "greater_than": "more than {gt}",
        "less_than_equal": "at most {le}",
        "less_than": "less than {lt}",
    }
    if kind in bounds:
        return f"use a value {bounds[kind].format(**ctx)}"
    if kind in ("int_type", "int_parsing", "int_from_float", "int_parsing_size"):
        return "write a whole number without quotes"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return "write a number without quotes"
    if kind in ("bool_type", "bool_parsing"):
        return "write true or false (without quotes)"
    if kind in ("string_type", "string_unicode"):
        return "write a text value (quote it if YAML reads it as something else)"
    if kind in ("literal_error", "enum"):
        return f"use one of {ctx.get('expected', 'the documented values')}"
    if kind in ("dict_type", "model_type", "model_attributes_type", "mapping_type"):
        return "write a mapping of keys to values (key: value, indented below)"
    if kind in ("list_type", "tuple_type", "set_type"):
        return "write a list ([a, b] or one `- item` per line)"
    if kind in ("too_short", "string_too_short"):
        return f"give at least {ctx.get('min_length')}"
    if kind in ("too_long", "string_too_long"):
        return f"give at most {ctx.get('max_length')}"
    if kind == "string_pattern_mismatch":
        what = "name" if loc and loc[-1] == "[key]" else "value"
        return f"write a {what} matching {ctx.get('pattern', '')}"
    return "see the README's configuration reference for this key"


def describe(
    model: type[BaseModel],
    exc: ValidationError,
    *,
    prefix: str = f"{NAMESPACE}:",
    where: str = "the stack's Pulumi.<stack>.yaml",
    what: str = "zBI stack configuration",
) -> ConfigError:
    """One line per problem: the key as the file spells it (after `prefix`), what is wrong, and the fix."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = _aliased(model, tuple(error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            known = sorted(f.alias or n for n, f in owner.model_fields.items()) if owner else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            if close and str(loc[-1]).replace("_", "").lower() == close[0].lower():
                hint = f"zBI stack files spell it {close[0]!r}"
                message = f"unknown key. Fix: write {close[0]!r} instead ({hint})"
            else:
                hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
                message = f"unknown key. Fix: remove it ({hint})"
        elif error["type"] == "missing":
            message = f"required but not set. Fix: set it in {where}"
        elif error["type"] == "string_pattern_mismatch":
            message = f"{shown(error.get('input'))} has the wrong form. Fix: {_fix(error, loc)}"
        elif "Fix:" not in message:
            message = f"{message} (got {shown(error.get('input'))}). Fix: {_fix(error, loc)}"
        problems.append(f"{config_key(loc, prefix)}: {message}")
    return ConfigError(problems, what=what)
