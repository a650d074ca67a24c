"""Whether an instance's node release may run, today, on its network: one check for the stack file and the library.

- Mainnet runs only a release whose height and end of support zBI knows: from the release table, or from release
  data the operator supplies under `node.release` (checked against the table's chain anchor). Unknown tags and
  releases past their end of support are refused; the refusal names a release to move to, or how to add one.
- Every network: the image tag follows the image's own convention (Zebra and Zakura publish `6.3.0`, not the git
  tag `v6.3.0`), and a known release must accept every key zBI renders into its config (deny_unknown_fields: the
  node would refuse to start). A release whose config schema zBI has not read gets a warning that says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from zbi_infra.releases import (
    BLOCKS_PER_DAY,
    WARN_DAYS_BEFORE_END_OF_SUPPORT,
    ChainAnchor,
    NodeRelease,
    NodeReleases,
    chain_anchor,
    release_table,
)

if TYPE_CHECKING:
    from zbi_infra.config.instance import InstanceConfig

# How far (in days of blocks) supplied release data may sit from where the anchor puts the chain on its date.
SUPPLIED_HEIGHT_TOLERANCE_DAYS = 7


@dataclass
class ReleaseProblems:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def instance_release_problems(
    name: str, instance: InstanceConfig, today: date, *, key: str | None = None
) -> ReleaseProblems:
    """The errors (each naming its key and a fix) and warnings about instance `name`'s node release. `key` names
    the node config in messages (the stack file's zbi:instances.<name>.node by default)."""
    from zbi_infra.config.instance import Network

    problems = ReleaseProblems()
    node = instance.node
    table = release_table().get(node.kind.value)
    if table is None:  # zcashd: regtest only, pinned to its last release (config/instance.py refuses the rest)
        return problems
    key = key or f"zbi:instances.{name}.node"
    mainnet = instance.network is Network.MAINNET
    official = node.image.repository in (None, table.image)
    tag = node.image.tag or table.newest.version
    label = f"{table.kind} {tag}"
    if official and tag.startswith("v"):
        problems.errors.append(
            f"{key}.image.tag: {table.image} publishes its images without the git tag's 'v' (its release workflow "
            f"tags the version, e.g. {table.image}:{table.newest.version}), so {table.image}:{tag} does not exist. "
            f"Fix: write tag: {tag.removeprefix('v')}"
        )
        return problems
    release = table.releases.get(tag if official else tag.removeprefix("v"))
    if not official:
        problems.warnings.append(
            f"instance {name}: {node.image.repository}:{tag} is taken to be {table.repository}'s release "
            f"{tag.removeprefix('v')} rebuilt or mirrored; zBI checks that release's facts, not the image"
        )
    if node.release is not None:
        if release is not None:
            problems.errors.append(
                f"{key}.release: {label} is in zBI's release table (height {release.estimated_release_height}, "
                f"released {release.released}, from {release.source}). Fix: remove node.release"
            )
            return problems
        release, error = _supplied_release(table, tag, instance, today)
        if error:
            problems.errors.append(f"{key}.release.{error}")
            return problems
    if release is None:
        if mainnet:
            problems.errors.append(
                f"{key}.image.tag: {label} is not a release zBI knows, so its Mainnet end of support (the height "
                f"where it halts) cannot be checked. Fix: {_how_to_add(table)}"
            )
            return problems
        problems.warnings.append(
            f"instance {name}: {label} is not in zBI's release table: its config schema was not checked (the "
            f"rendered {table.kind} config and extraOptions were checked against {table.newest.version}'s keys, "
            f"and {table.kind} refuses unknown keys at start). Add it with tools/add_release.py"
        )
        return problems
    problems.errors.extend(_config_key_errors(key, label, release, instance))
    if release.config_keys is None:
        problems.warnings.append(
            f"instance {name}: {label} comes from node.release: zBI has not read its config schema (the rendered "
            f"config and extraOptions were checked against {table.newest.version}'s keys). Add it with "
            "tools/add_release.py to check them"
        )
    if mainnet:
        _end_of_support(problems, key, name, label, release, table, today)
    return problems


def _end_of_support(
    problems: ReleaseProblems, key: str, name: str, label: str, release: NodeRelease, table: NodeReleases, today: date
) -> None:
    end = release.end_of_support
    if today > end:
        replacement = next(
            (
                r
                for r in table.releases.values()
                if r.end_of_support >= today and r.estimated_release_height > release.estimated_release_height
            ),
            None,
        )
        fix = (
            f"set node.image.tag: {replacement.version} (supported on Mainnet until about {replacement.end_of_support})"
            if replacement
            else f"every {table.kind} release zBI knows is past its end of support on {today}; {_how_to_add(table)}"
        )
        problems.errors.append(
            f"{key}.image.tag: {label} reached its Mainnet end of support on about {end} (height "
            f"{release.end_of_support_height}) and refuses to run past it. Fix: {fix}"
        )
    elif today >= end - timedelta(days=WARN_DAYS_BEFORE_END_OF_SUPPORT):
        problems.warnings.append(
            f"instance {name}: {label} stops on Mainnet around {end} ({(end - today).days} days): plan the upgrade "
            "(docs/releases.md)"
        )


def _how_to_add(table: NodeReleases) -> str:
    return (
        f"pin a newer release from https://github.com/{table.repository}/releases and either add it to zBI's table "
        f"(python tools/add_release.py --kind {table.kind} --tag vX.Y.Z --git-dir <a clone of {table.repository}>) "
        f"or state it under node.release: estimatedReleaseHeight (ESTIMATED_RELEASE_HEIGHT in "
        f"{table.end_of_support_path} at that tag), released (the tag's date) and source (the URL you read them "
        "from); see docs/releases.md"
    )


def _supplied_release(
    table: NodeReleases, tag: str, instance: InstanceConfig, today: date
) -> tuple[NodeRelease | None, str | None]:
    supplied = instance.node.release
    assert supplied is not None
    anchor = chain_anchor()
    if supplied.released > today:
        return None, f"released: {supplied.released} is after today ({today}). Fix: the day the tag was published"
    expected = anchor.height_on(supplied.released)
    off_by_days = abs(supplied.estimated_release_height - expected) / BLOCKS_PER_DAY
    if off_by_days > SUPPLIED_HEIGHT_TOLERANCE_DAYS:
        return None, (
            f"estimatedReleaseHeight: {supplied.estimated_release_height} is {off_by_days:.0f} days of blocks from "
            f"where the chain was on {supplied.released} (about {expected}, counting 75 s blocks from height "
            f"{anchor.height} on {anchor.day}: {anchor.source}). Fix: copy ESTIMATED_RELEASE_HEIGHT from "
            f"{table.end_of_support_path} at the tag, and the tag's date"
        )
    newest = table.newest
    release = NodeRelease(
        kind=table.kind,
        version=tag,
        released=supplied.released,
        estimated_release_height=supplied.estimated_release_height,
        # The window is the kind's rule as of the newest release zBI has read (105 days for Zebra, 40 for Zakura).
        eos_after_days=newest.eos_after_days,
        # The release's own (height, day) is a newer observation of the chain than the table's anchor.
        anchor=ChainAnchor(supplied.estimated_release_height, supplied.released, supplied.source),
        config_keys=None,
        source=supplied.source,
    )
    return release, None


def _config_key_errors(key: str, label: str, release: NodeRelease, instance: InstanceConfig) -> list[str]:
    if release.config_keys is None:
        return []
    rendered = rendered_config_keys(instance)
    missing = sorted(k for k in rendered if k.split(".")[1] not in release.config_keys.get(k.split(".")[0], ()))
    if not missing:
        return []
    return [
        f"{key}.image.tag: {label} does not accept {', '.join(missing[:6])} (its config structs deny unknown fields, "
        f"so it would refuse to start with zBI's config). Fix: pin a newer release, or remove those extraOptions"
    ]


def rendered_config_keys(instance: InstanceConfig) -> set[str]:
    """Every `section.key` zBI writes into the node's config file for this instance."""
    from zbi_infra.config.instance import NodeKind
    from zbi_infra.render.zakurad import zakurad_config
    from zbi_infra.render.zebrad import zebrad_config

    node = instance.node
    if node.kind is NodeKind.ZAKURAD:
        retention = node.pruning.tx_retention_blocks if node.pruning else None
        config = zakurad_config(
            instance.network,
            extra_options=node.extra_options,
            prune_retention_blocks=retention,
            zcashd_compat=node.zcashd_compat is not None,
        )
    else:
        config = zebrad_config(instance.network, regtest_peers=["127.0.0.1:1"], extra_options=node.extra_options)
    return {f"{section}.{name}" for section, keys in config.items() for name in keys}
