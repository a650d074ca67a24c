"""Instances in a stack file, edited by the platform administrator's `zbi instance` commands.

Edits keep the file's comments and key order (ruamel.yaml round trip), are validated with the same models as
`zbi plan` before anything is written, and a refused edit leaves the file as it was.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from zbi_infra.config import load_stack_config
from zbi_infra.config.instance import InstanceConfig, LightwalletKind
from zbi_infra.config.recovery import BackupConfig
from zbi_infra.config.stack import StackConfig, StackRole
from zbi_infra.config.stack_file import parse_stack_text
from zbi_infra.errors import ConfigError
from zbi_infra.node.context import DATA_VOLUME, namespace_of
from zbi_infra.snapshots import INSTANCE_TAG, STACK_TAG
from zbi_infra.yaml_roundtrip import dump, flow_list, round_trip_yaml
from zbi_infra.yaml_splice import add_entry, remove_entry

INSTANCES_KEY = "zbi:instances"
# Stack files run to 120 columns (the project's line length): longer flow lists are not folded below that.
STACK_FILE_WIDTH = 120


@dataclass(frozen=True)
class InstanceFlags:
    """What `zbi instance add` sets from flags: the settings users change most. None: the model's default."""

    network: str
    node_kind: str | None = None
    replicas: int | None = None
    storage_gib: int | None = None
    lightwallet: str | None = None
    public_grpc: bool | None = None
    hostnames: list[str] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    # node.image.tag, and node.release for a release zBI's table does not hold yet (docs/releases.md).
    image_tag: str | None = None
    release_height: int | None = None
    release_date: date | None = None
    release_source: str | None = None

    def release_flags(self) -> dict[str, object]:
        return {
            "--release-height": self.release_height,
            "--release-date": self.release_date,
            "--release-source": self.release_source,
        }

    def document(self) -> CommentedMap:
        """The instance's mapping, with only what a flag set (the stack file stays as short as the user's intent)."""
        instance = CommentedMap(network=self.network)
        node = CommentedMap()
        if self.node_kind:
            node["kind"] = self.node_kind
        if self.replicas is not None:
            node["replicas"] = self.replicas
        if self.storage_gib is not None:
            node["storage"] = CommentedMap(sizeGib=self.storage_gib)
        if self.image_tag is not None:
            node["image"] = CommentedMap(tag=self.image_tag)
        if any(value is not None for value in self.release_flags().values()):
            node["release"] = CommentedMap(
                estimatedReleaseHeight=self.release_height,
                released=self.release_date.isoformat() if self.release_date else None,
                source=self.release_source,
            )
        if node:
            instance["node"] = node
        if self.lightwallet:
            instance["lightwallet"] = CommentedMap(kind=self.lightwallet)
        endpoints = CommentedMap()
        if self.public_grpc is not None:
            endpoints["publicGrpc"] = self.public_grpc
        if self.hostnames:
            endpoints["hostnames"] = flow_list(self.hostnames)
        if endpoints:
            instance["endpoints"] = endpoints
        if self.admins:
            instance["admins"] = CommentedSeq(self.admins)
        if self.owners:
            instance["owners"] = flow_list(self.owners)
        return instance


@dataclass(frozen=True)
class Edit:
    path: Path
    before: str
    after: str
    notes: list[str] = field(default_factory=list)

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"a/{self.path.name}",
                tofile=f"b/{self.path.name}",
            )
        )


def _load(path: Path) -> tuple[str, CommentedMap]:
    text = path.read_text()
    document = round_trip_yaml(width=STACK_FILE_WIDTH).load(text)
    if not isinstance(document, CommentedMap) or not isinstance(document.get("config"), CommentedMap):
        raise ConfigError([f"{path.name}: no `config:` mapping to edit. Fix: start the file with `config:`"])
    return text, document


def validated(stack: str, path: Path, text: str) -> StackConfig:
    """The stack config `text` would give, validated as `zbi plan` validates it."""
    stack_file = parse_stack_text(stack, text, path.name)
    return load_stack_config(stack_file.config, secret_keys=set(stack_file.secret_keys))


def _own_instances(stack: str, path: Path, config: StackConfig) -> None:
    if config.role is StackRole.DR:
        raise ConfigError(
            [f"{path.name}: stack {stack} is a DR stack; it restores its primary's instances "
             f"({config.dr.primary_stack if config.dr else 'zbi:dr.primaryStack'}). Fix: edit the primary's file"]
        )  # fmt: skip


def add_instance(stack: str, path: Path, name: str, flags: InstanceFlags, *, today: date | None = None) -> Edit:
    before, document = _load(path)
    _own_instances(stack, path, validated(stack, path, before))
    config = document["config"]
    instances = config.get(INSTANCES_KEY)
    if instances is None:
        instances = config[INSTANCES_KEY] = CommentedMap()
    if not isinstance(instances, CommentedMap):
        raise ConfigError([f"{path.name}: {INSTANCES_KEY} is not a mapping. Fix: make it one, an instance per key"])
    if name in instances:
        raise ConfigError(
            [f"{INSTANCES_KEY}.{name} already exists in {path.name}. Fix: choose another name, or edit it in YAML"]
        )
    _release_flags_together(flags)
    instances[name] = flags.document()
    after = dump(document, width=STACK_FILE_WIDTH)
    try:
        config = validated(stack, path, after)
    except ConfigError as exc:
        raise ConfigError([_as_flags(problem, name) for problem in exc.problems]) from None
    warnings = _release_check(config, name, today)
    spliced = add_entry(before, instances, name, instances[name], width=STACK_FILE_WIDTH)
    return Edit(path, before, _least_change(stack, path, after, spliced), notes=warnings)


# Stack-file keys of the release data `zbi instance add` takes from flags, and the flag of each (longest first).
RELEASE_KEY_FLAGS = (
    ("node.release.estimatedReleaseHeight", "--release-height"),
    ("node.release.released", "--release-date"),
    ("node.release.source", "--release-source"),
    ("node.release", "--release-height/--release-date/--release-source"),
    ("set node.image.tag: ", "set --image-tag "),
    ("node.image.tag", "--image-tag"),
)


def _as_flags(problem: str, name: str, *, own: bool = False) -> str:
    """A stack-file message naming the flags that set the new instance's keys; `own`: the message is about the new
    instance alone (a release check's), so its fix's bare keys are the flags too."""
    for key, flag in RELEASE_KEY_FLAGS:
        problem = problem.replace(f"{INSTANCES_KEY}.{name}.{key}", flag)
        problem = problem.replace(key, flag) if own else problem
    return problem


def _release_flags_together(flags: InstanceFlags) -> None:
    given = flags.release_flags()
    missing = [flag for flag, value in given.items() if value is None]
    if len(missing) not in (0, len(given)):
        raise ConfigError(
            [f"{', '.join(missing)} missing: a release's data is its height, its date and where they were read. "
             "Fix: give --release-height (ESTIMATED_RELEASE_HEIGHT in end_of_support.rs at the tag), --release-date "
             "(the tag's date) and --release-source (the URL you read them from) together"]
        )  # fmt: skip
    if not missing and flags.image_tag is None:
        raise ConfigError(
            ["--release-height/--release-date/--release-source describe the release --image-tag names, and no "
             "--image-tag was given. Fix: add --image-tag <version> (no 'v', e.g. 6.4.0)"]
        )  # fmt: skip


def _release_check(config: StackConfig, name: str, today: date | None) -> list[str]:
    """What `zbi plan` would say of the new instance's release as of `today` (None: the plan's day): its errors
    refuse the edit, naming the flags; its warnings are returned."""
    from zbi_infra.config.stack import plan_date
    from zbi_infra.release_check import instance_release_problems

    problems = instance_release_problems(name, config.instances[name], today or plan_date())
    if problems.errors:
        raise ConfigError([_as_flags(error, name, own=True) for error in problems.errors])
    return [_as_flags(warning, name, own=True) for warning in problems.warnings]


def remove_instance(stack: str, path: Path, name: str) -> Edit:
    before, document = _load(path)
    config = validated(stack, path, before)
    _own_instances(stack, path, config)
    instance = declared(config, name, path)
    # The validated config declares it, so the document's instances are a mapping holding it.
    instances = document["config"][INSTANCES_KEY]
    if len(instances) > 1:
        spliced = remove_entry(before, instances, name)
    else:
        spliced = remove_entry(before, document["config"], INSTANCES_KEY)
    del instances[name]
    if not instances:
        del document["config"][INSTANCES_KEY]
    after = dump(document, width=STACK_FILE_WIDTH)
    validated(stack, path, after)
    after = _least_change(stack, path, after, spliced)
    return Edit(path, before, after, notes=retained(stack, name, instance, config))


def _least_change(stack: str, path: Path, redumped: str, spliced: str | None) -> str:
    """The spliced text (only the instance's lines changed) when it reads as the re-dumped document does; otherwise
    the re-dump, which keeps comments and order but may re-flow other lines."""
    if spliced is None:
        return redumped
    try:
        same = parse_stack_text(stack, spliced, path.name) == parse_stack_text(stack, redumped, path.name)
    except ConfigError:
        return redumped
    return spliced if same else redumped


def retained(stack: str, name: str, instance: InstanceConfig, config: StackConfig) -> list[str]:
    """What outlives an instance's removal, and how to delete it for good."""
    namespace = namespace_of(name)
    claims = [f"{DATA_VOLUME}-{instance.node.kind.value}-{i}" for i in range(instance.node.replicas)]
    notes = [
        f"chain volumes are retained (reclaim policy Retain): PVCs {', '.join(claims)} in namespace {namespace} and "
        "their EBS volumes; delete them by hand once you are sure (kubectl delete pvc …, then the volumes)",
    ]
    if instance.lightwallet.kind is not LightwalletKind.NONE:
        notes.append(f"the light-wallet cache volumes (cache-{instance.lightwallet.kind.value}-N) are retained too")
    backup = config.backup or BackupConfig()
    if config.role is StackRole.PRIMARY and backup.enabled:
        notes.append(
            f"its snapshots (tagged {STACK_TAG}={stack}, {INSTANCE_TAG}={name}) and their copies in "
            f"{backup.dr_region} are kept until DLM's retention expires them; the DR stack stops restoring it"
        )
    notes.append(f"access/{name}.yaml, if any, stays in the repository: remove it in the same pull request")
    return notes


def instance_rows(config: StackConfig) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "network": instance.network.value,
            "node": instance.node.kind.value,
            "replicas": instance.node.replicas,
            "storageGib": instance.node.storage.size_gib,
            "lightwallet": instance.lightwallet.kind.value,
            "publicGrpc": instance.endpoints.public_grpc,
            "hostnames": list(instance.endpoints.hostnames),
        }
        for name, instance in sorted(config.instances.items())
    ]


def show(config: StackConfig, name: str, path: Path) -> dict[str, Any]:
    """The instance as zBI reads it: every setting, defaults included, and the images that will run (an unset
    repository or tag shows the release zBI pins, not null)."""
    from zbi_infra.image_digests import recorded_digest
    from zbi_infra.node.context import DEFAULT_IMAGES
    from zbi_infra.releases import GATEWAY_ENGINE_IMAGES

    instance = declared(config, name, path)
    shown = instance.model_dump(mode="json", by_alias=True)
    tiers = [("node", DEFAULT_IMAGES[instance.node.kind], instance.node.image)]
    if instance.lightwallet.kind.value != "none":
        tiers.append(("lightwallet", DEFAULT_IMAGES[instance.lightwallet.kind], instance.lightwallet.image))
    tiers.append(("gateway", GATEWAY_ENGINE_IMAGES[instance.gateway.engine], instance.gateway.image))
    for tier, default, override in tiers:
        image = shown[tier]["image"]
        image["repository"] = override.repository or default.repository
        image["tag"] = override.tag or default.tag
        # The digest the pods pull by: the instance's own, else the table tools/pin_images.py writes (or none).
        image["digest"] = override.digest or recorded_digest(image["repository"], image["tag"])
    return shown


def declared(config: StackConfig, name: str, path: Path) -> InstanceConfig:
    """The instance `name` of the stack, or an error listing those it has."""
    if name not in config.instances:
        known = ", ".join(sorted(config.instances)) or "none"
        raise ConfigError([f"{INSTANCES_KEY} of {path.name} has no instance {name!r} (it has: {known})"])
    return config.instances[name]
