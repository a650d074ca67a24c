"""Reading `access/<instance>.yaml`: the stack-file reader's rules (UTF-8, YAML 1.2 scalars, no anchors or custom
tags), then the models of access.py; checking a file against its instance; and refusing a file in access/ that names
no instance of the project's stacks, so that a misspelt file is not silently ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from zbi_infra.config.errors import describe
from zbi_infra.config.stack_file import StackFileError, decode_text, parse_yaml_document, read_bounded
from zbi_infra.errors import ConfigError

if TYPE_CHECKING:
    from zbi_infra.config.access import AccessFile
    from zbi_infra.config.instance import InstanceConfig

ACCESS_DIR = "access"
ACCESS_SUFFIX = ".yaml"
ACCESS_FILE = "access file"


def parse_access(document: object, source: str) -> AccessFile:
    """Validate an access file's parsed YAML: every error names the key in `source` and the fix."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(
            [f"{source}: the file must be a mapping of keys to values. Fix: start it with jsonRpc:, grpc: or users:"],
            what=ACCESS_FILE,
        )
    from zbi_infra.config.access import AccessFile  # access.py re-exports this module's names: imported when used

    try:
        return AccessFile.model_validate(document)
    except ValidationError as exc:
        raise describe(AccessFile, exc, prefix=f"{source}: ", where=source, what=ACCESS_FILE) from None


def read_access_file(path: Path) -> AccessFile:
    """An access file read by the stack-file reader's rules (UTF-8, YAML 1.2 scalars, no anchors, aliases, duplicate
    keys, custom tags or deep nesting), then validated: every error names the file, the line or key, and the fix."""
    return parse_access(read_access_document(path), str(path))


def read_access_document(path: Path) -> object:
    source = str(path)
    if path.is_symlink() and not path.exists():
        problem = f"{source}: a symbolic link to {path.readlink()}, which does not exist. Fix: point it at a file"
        raise ConfigError([problem], what=ACCESS_FILE)
    if not path.exists():
        problem = f"{source}: no such access file. Fix: create it (see the README's access section)"
        raise ConfigError([problem], what=ACCESS_FILE)
    if not path.is_file():
        raise ConfigError([f"{source}: not a regular file. Fix: make it the instance's YAML file"], what=ACCESS_FILE)
    try:
        data = read_bounded(path)
    except OSError as exc:
        problem = f"{source}: cannot be read ({exc.strerror}). Fix: check the file and its permissions"
        raise ConfigError([problem], what=ACCESS_FILE) from None
    return parse_access_text(data, source)


def parse_access_text(data: bytes, source: str) -> object:
    try:
        return parse_yaml_document(decode_text(data, source, kind=ACCESS_FILE), source, kind=ACCESS_FILE)
    except StackFileError as exc:
        raise ConfigError(exc.problems, what=ACCESS_FILE) from None


def check_for_instance(access: AccessFile, name: str, instance: InstanceConfig, source: str) -> None:
    """What the file asks of its instance, checked against the instance: gRPC needs a light-wallet server, zcashd
    methods a zcashd sidecar, its wallet methods the sidecar's wallet."""
    from zbi_infra.config.instance import LightwalletKind
    from zbi_infra.config.zcashd_methods import zcashd_access_problem

    if problem := zcashd_access_problem(access, instance):
        raise ConfigError([f"{source}: zcashdRpc: instance {name} {problem}"], what=ACCESS_FILE)
    if instance.lightwallet.kind is not LightwalletKind.NONE:
        return
    profiles = [access.grpc.methods, access.anonymous.grpc if access.anonymous else []]
    profiles += [user.grpc or [] for user in access.users]
    if any(profiles):
        raise ConfigError(
            [f"{source}: grpc: instance {name} has no light-wallet server (lightwallet.kind: none), so no gRPC method "
             "can be exposed. Fix: remove the grpc lists, or give the instance a light-wallet server"],
            what=ACCESS_FILE,
        )  # fmt: skip


def instance_access_files(
    root: Path, instances: Mapping[str, InstanceConfig] | Iterable[str], *, declared: Iterable[str] | None = None
) -> dict[str, AccessFile]:
    """The access file of each instance that has one (`<root>/access/<instance>.yaml`), validated: a stack program
    reads them before registering anything, so a bad file deploys nothing. Given the instances' configs, each file is
    checked against its instance; given `declared` (every instance of the project's stacks), a file in access/ that
    names none of them (`testnet.yml`, a misspelt `tesnet.yaml`) is refused rather than silently ignored."""
    found = {}
    problems = []
    configs = instances if isinstance(instances, Mapping) else {}
    names = list(instances)
    if declared is not None:
        problems += _orphans(root / ACCESS_DIR, {*declared, *names})
    for name in names:
        path = root / ACCESS_DIR / f"{name}{ACCESS_SUFFIX}"
        if not (path.exists() or path.is_symlink()):
            continue
        try:
            found[name] = read_access_file(path)
            if name in configs:
                check_for_instance(found[name], name, configs[name], str(path))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems, what=ACCESS_FILE)
    return found


def _orphans(directory: Path, declared: set[str]) -> list[str]:
    if not directory.is_dir():
        return []
    problems = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in (".yaml", ".yml"):
            continue  # lock files, a README
        if path.suffix == ACCESS_SUFFIX and path.stem in declared:
            continue
        if path.stem in declared:
            fix = f"rename it {path.stem}{ACCESS_SUFFIX}"
        elif close := difflib.get_close_matches(path.stem, sorted(declared), n=1):
            fix = f"rename it {close[0]}{ACCESS_SUFFIX} if it is {close[0]}'s, or remove it"
        else:
            fix = "remove it, or declare its instance in a Pulumi.<stack>.yaml"
        problems.append(
            f"{directory.name}/{path.name}: names no instance of the project's stacks (zBI reads "
            f"{directory.name}/<instance>{ACCESS_SUFFIX}), so no gateway would use it. Fix: {fix}"
        )
    return problems


def declared_instance_names(root: Path) -> set[str]:
    """Every instance some stack file of the project declares (a stack file that cannot be read declares none: its
    own plan says why)."""
    from zbi_infra.config.stack_file import read_stack_file

    names: set[str] = set()
    for path in root.glob("Pulumi.*.yaml"):
        try:
            instances = read_stack_file(path.name[len("Pulumi.") : -len(".yaml")], path).config.get("zbi:instances")
        except StackFileError:
            continue
        if isinstance(instances, dict):
            names.update(str(name) for name in instances)
    return names
