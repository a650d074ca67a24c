"""Find the Pulumi project and its stack files, without the Pulumi CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zbi_infra.config.stack_file import (
    SECRET_PLACEHOLDER,
    StackFile,
    StackFileError,
    decode_text,
    parse_yaml_document,
    read_bounded,
    read_stack_file,
)
from zbi_infra.errors import ConfigError

__all__ = ["SECRET_PLACEHOLDER", "Project", "StackFile", "find_project", "read_stack_file"]

STACK_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"


@dataclass(frozen=True)
class Project:
    root: Path
    name: str
    main: Path
    # `main` as Pulumi.yaml writes it: checked by program(), when a command runs the program.
    main_setting: object = "."

    def program(self) -> Path:
        """The program's directory, refused with a fix when Pulumi.yaml's `main` cannot be run."""
        return _program(self.root, self.main_setting)

    def stack_names(self) -> list[str]:
        return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in self.root.glob("Pulumi.*.yaml"))

    def stacks_declaring(self, instance: str, *, what: str) -> list[str]:
        """The stacks whose zbi:instances declare `instance`; none is a ConfigError with "did you mean"."""
        import difflib

        declared: dict[str, list[str]] = {}
        for stack in self.stack_names():
            instances = self.stack_file(stack).config.get("zbi:instances")
            for name in instances if isinstance(instances, dict) else {}:
                declared.setdefault(str(name), []).append(stack)
        if instance in declared:
            return declared[instance]
        close = difflib.get_close_matches(instance, sorted(declared), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"declared: {', '.join(sorted(declared)) or 'none'}"
        raise ConfigError(
            [f"instance {instance[:80]!r} is declared in no stack's zbi:instances ({hint}). Fix: name a declared "
             "instance, or add it first (zbi instance add)"],
            what=what,
        )  # fmt: skip

    def stack_file(self, stack: str) -> StackFile:
        import re

        known = ", ".join(self.stack_names()) or "none"
        if not re.match(STACK_NAME_PATTERN, stack) or stack in (".", ".."):
            raise ConfigError([f"stack {stack[:80]!r}: not a stack name. Fix: use one of: {known}"])
        path = self.root / f"Pulumi.{stack}.yaml"
        if not path.is_file():
            raise ConfigError([f"stack '{stack}': no {path.name} in {self.root}. Fix: use one of: {known}"])
        return read_stack_file(stack, path)


def find_project(start: Path | None = None) -> Project:
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "Pulumi.yaml"
        if candidate.is_file():
            document = parse_yaml_document(decode_text(read_bounded(candidate), "Pulumi.yaml"), "Pulumi.yaml")
            if not isinstance(document, dict) or not isinstance(document.get("name"), str):
                raise StackFileError(["Pulumi.yaml: no project `name`. Fix: set `name:` at the top of Pulumi.yaml"])
            main = document.get("main", ".")
            return Project(root=directory, name=document["name"], main=directory / str(main), main_setting=main)
    raise ConfigError([f"no Pulumi.yaml in {here} or its parents. Fix: run zbi from the zBI project directory"])


def _program(root: Path, main: object) -> Path:
    """Pulumi.yaml's `main`: the directory of the Python program (its __main__.py), inside the project."""
    if not isinstance(main, str) or not main.strip():
        raise StackFileError(
            [f"Pulumi.yaml: main is {str(main)[:40]!r}, not a path. Fix: write the program's directory (main: stacks)"]
        )
    program = root / main
    entry = program / "__main__.py" if program.is_dir() else program
    if not entry.is_file() or entry.suffix != ".py":
        raise StackFileError(
            [f"Pulumi.yaml: main {main[:60]!r} is not a Python program (a directory holding __main__.py, or a .py "
             "file). Fix: point main at the program's directory, e.g. main: stacks"]
        )  # fmt: skip
    try:
        entry.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        raise StackFileError(
            [f"Pulumi.yaml: main {main[:60]!r}: {entry.name} is not readable text. Fix: point main at the program"]
        ) from None
    return program
