"""Availability zones, chosen and keyed by zone ID.

Zone names (us-east-1a) map to different physical zones in every AWS account; zone IDs (use1-az1) do not.
Every per-AZ child and its CIDR is keyed by zone ID so that adding a zone never renames or re-addresses another
(the subnet churn reported in pulumi-awsx #1204, #1152, #520, #910).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from zbi_infra.errors import ConfigError

_DIRECTIONS = {
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
    "central": "c",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
}
_REGION_PATTERN = re.compile(r"^(?P<geo>[a-z]{2})(?:-(?P<gov>gov|iso|isob))?-(?P<dir>[a-z]+)-(?P<num>\d)$")
# AWS's zone-ID form: the region's prefix (use1, apse2, usgw1), "-az" and a number.
ZONE_ID_PATTERN = re.compile(r"^(?P<prefix>[a-z]+\d)-az(?P<number>\d{1,2})$")

# Zones where EKS cannot place a control plane (EKS user guide, "Amazon EKS networking requirements";
# pulumi-eks #1401). Subnets there would make cluster creation fail late and obscurely.
EKS_UNSUPPORTED_ZONE_IDS = frozenset({"use1-az3", "usw1-az2", "cac1-az3"})


def zone_id_prefix(region: str) -> str:
    """The zone-ID prefix AWS uses for a region: us-east-1 -> use1, ap-southeast-2 -> apse2, us-gov-west-1 -> usgw1."""
    match = _REGION_PATTERN.match(region)
    if not match or match["dir"] not in _DIRECTIONS:
        raise ValueError(f"'{region}' is not an AWS region name (expected e.g. us-east-1)")
    partition = {"gov": "g", "iso": "iso", "isob": "isob"}.get(match["gov"] or "", "")
    return f"{match['geo']}{partition}{_DIRECTIONS[match['dir']]}{match['num']}"


def zone_number(zone_id: str) -> int:
    """use1-az4 -> 4. The number is stable for the life of the region, so CIDR slots hang off it."""
    match = ZONE_ID_PATTERN.match(zone_id)
    if not match:
        raise ValueError(f"'{zone_id}' is not an availability zone ID (expected e.g. use1-az1)")
    return int(match["number"])


@dataclass(frozen=True, order=True)
class AvailabilityZone:
    """One zone: its ID (stable key) and its name in this account (what EC2 APIs take)."""

    zone_id: str
    name: str

    @property
    def number(self) -> int:
        return zone_number(self.zone_id)

    @property
    def key(self) -> str:
        """The suffix of every per-zone child's resource name."""
        return self.zone_id


def select_zones(
    available: list[AvailabilityZone],
    *,
    region: str,
    count: int,
    zone_ids: list[str] | None,
    config_key: str,
) -> list[AvailabilityZone]:
    """Pick the zones a platform spans, sorted by zone ID.

    `available` is what the region offers this account (already filtered to opted-in, standard zones).
    Raises ConfigError naming `config_key` when the region cannot satisfy the request.
    """
    usable = {z.zone_id: z for z in available if z.zone_id not in EKS_UNSUPPORTED_ZONE_IDS}
    if zone_ids:
        missing = [z for z in zone_ids if z not in usable]
        if missing:
            excluded = sorted(set(missing) & EKS_UNSUPPORTED_ZONE_IDS)
            why = (
                f"EKS cannot place a control plane in {', '.join(excluded)}"
                if excluded
                else f"{region} does not offer them to this account"
            )
            raise ConfigError(
                [
                    f"{config_key}.zoneIds: {', '.join(missing)} cannot be used ({why}). "
                    f"Fix: choose from {', '.join(sorted(usable))}."
                ]
            )
        return sorted(usable[z] for z in zone_ids)
    if count > len(usable):
        raise ConfigError(
            [
                f"{config_key}.availabilityZoneCount: {region} has only {len(usable)} availability zones usable by EKS "
                f"({', '.join(sorted(usable))}), {count} were asked for. Fix: set availabilityZoneCount to "
                f"{len(usable)} or less."
            ]
        )
    return sorted(usable.values())[:count]


def lookup_zones(region: str, provider: Any = None) -> list[AvailabilityZone]:
    """Ask AWS which standard, opted-in, available zones the region has (an invoke, no resource), through
    `provider` when one is given."""
    import pulumi
    import pulumi_aws as aws

    result = aws.get_availability_zones(
        region=region,
        state="available",
        filters=[
            aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"]),
            aws.GetAvailabilityZonesFilterArgs(name="zone-type", values=["availability-zone"]),
        ],
        opts=pulumi.InvokeOptions(provider=provider) if provider is not None else None,
    )
    return [AvailabilityZone(zone_id=i, name=n) for i, n in zip(result.zone_ids, result.names, strict=True)]
