"""The AWS regions zBI builds in, and the availability-zone IDs each one has.

Commercial regions only (partition `aws`): every ARN zBI writes (managed policies, EKS access policies) is in that
partition. GovCloud and China regions are refused with the reason rather than failing at deploy time.

Zone IDs per region are from AWS's published "AZ IDs" lists (RAM user guide, "Availability Zone IDs for your AWS
resources", and each region's EC2 documentation), as of 2026-11. A live `pulumi up` asks AWS instead
(`aws.get_availability_zones`); this table is what the offline plan answers with, and what a region name is
checked against before anything is registered.
"""

from __future__ import annotations

from types import MappingProxyType

_THREE = (1, 2, 3)
_ZONE_NUMBERS: dict[str, tuple[int, ...]] = {
    "us-east-1": (1, 2, 3, 4, 5, 6),
    "us-east-2": _THREE,
    "us-west-1": (1, 3),
    "us-west-2": (1, 2, 3, 4),
    "af-south-1": _THREE,
    "ap-east-1": _THREE,
    "ap-east-2": _THREE,
    "ap-south-1": _THREE,
    "ap-south-2": _THREE,
    "ap-northeast-1": (1, 2, 4),
    "ap-northeast-2": (1, 2, 3, 4),
    "ap-northeast-3": _THREE,
    "ap-southeast-1": _THREE,
    "ap-southeast-2": _THREE,
    "ap-southeast-3": _THREE,
    "ap-southeast-4": _THREE,
    "ap-southeast-5": _THREE,
    "ap-southeast-7": _THREE,
    "ca-central-1": (1, 2, 4),
    "ca-west-1": _THREE,
    "eu-central-1": _THREE,
    "eu-central-2": _THREE,
    "eu-north-1": _THREE,
    "eu-south-1": _THREE,
    "eu-south-2": _THREE,
    "eu-west-1": _THREE,
    "eu-west-2": _THREE,
    "eu-west-3": _THREE,
    "il-central-1": _THREE,
    "me-central-1": _THREE,
    "me-south-1": _THREE,
    "mx-central-1": _THREE,
    "sa-east-1": _THREE,
}
COMMERCIAL_REGIONS = MappingProxyType(_ZONE_NUMBERS)
OTHER_PARTITIONS = {"gov": "aws-us-gov (GovCloud)", "cn": "aws-cn (China)", "iso": "aws-iso", "isob": "aws-iso-b"}


def region_problem(region: str) -> str | None:
    """Why `region` cannot host a zBI platform, with the fix; None when it can."""
    if region in COMMERCIAL_REGIONS:
        return None
    parts = region.split("-")
    other = next((OTHER_PARTITIONS[p] for p in parts[:2] if p in OTHER_PARTITIONS), None)
    if other and len(region) <= 20:
        return (
            f"'{region}' is in the {other} partition; zBI writes ARNs of the commercial `aws` partition only. "
            "Fix: use a commercial region such as us-east-1"
        )
    shown = region if len(region) <= 40 else f"{region[:40]}…"
    return (
        f"{shown!r} is not an AWS commercial region. Fix: use a region such as us-east-1 or eu-west-1 "
        "(the full list is in zbi_infra/regions.py)"
    )


def zone_ids(region: str) -> list[str]:
    from zbi_infra.zones import zone_id_prefix

    prefix = zone_id_prefix(region)
    return [f"{prefix}-az{n}" for n in COMMERCIAL_REGIONS[region]]
