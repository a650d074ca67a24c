"""Find the Pulumi project and read a stack's settings file, strictly, without the Pulumi CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zbi_infra.errors import ConfigError

SECRET_PLACEHOLDER = "[secret]"


class _StrictLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; Pulumi's YAML parser rejects them, and so do we."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(
                [f"{key}: defined twice (line {key_node.start_mark.line + 1}). Fix: keep one definition of the key"]
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


@dataclass(frozen=True)
class Project:
    root: Path
    name: str
    main: Path

    def stack_names(self) -> list[str]:
        return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in self.root.glob("Pulumi.*.yaml"))

    def stack_file(self, stack: str) -> StackFile:
        path = self.root / f"Pulumi.{stack}.yaml"
        if not path.is_file():
            known = ", ".join(self.stack_names()) or "none"
            raise ConfigError([f"stack '{stack}': no {path.name} in {self.root}. Fix: use one of: {known}"])
        return read_stack_file(stack, path)


@dataclass(frozen=True)
class StackFile:
    stack: str
    config: dict[str, Any]
    secret_keys: frozenset[str] = field(default_factory=frozenset)


def read_stack_file(stack: str, path: Path) -> StackFile:
    document = yaml.load(path.read_text(), Loader=_StrictLoader) or {}  # noqa: S506 (a SafeLoader subclass)
    raw = document.get("config") or {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path.name}: 'config' must be a mapping of keys to values"])
    config: dict[str, Any] = {}
    secrets: set[str] = set()
    for key, value in raw.items():
        # `secure:` values are ciphertext for the stack's secrets provider; offline they stay opaque.
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = SECRET_PLACEHOLDER
            secrets.add(key)
        else:
            config[key] = value
    return StackFile(stack=stack, config=config, secret_keys=frozenset(secrets))


def find_project(start: Path | None = None) -> Project:
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "Pulumi.yaml"
        if candidate.is_file():
            document = yaml.safe_load(candidate.read_text()) or {}
            return Project(root=directory, name=str(document["name"]), main=directory / str(document.get("main", ".")))
    raise ConfigError([f"no Pulumi.yaml in {here} or its parents. Fix: run zbi from the zBI project directory"])
