"""Subnet addressing: a pure function of the VPC CIDR and the zone number.

Layout of a VPC of prefix length P (P = 16 gives the figures in brackets):
- the VPC is cut into 8 blocks of /(P+3) [/19, 8190 addresses];
- private subnet of zone azN = block N-1 (N = 1..6): pods take VPC addresses under the VPC CNI, so private
  subnets get the room;
- block 6 is cut into 8 public subnets of /(P+6) [/22, 1022 addresses]: public subnet of zone azN = slice N-1,
  enough for NAT gateways and load balancers;
- block 7 is left free for growth (a second CIDR for pods, endpoints, a future zone layout).

Because a zone's subnets depend on its zone number only, adding or removing a zone never moves another's.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from zbi_infra.zones import AvailabilityZone

MAX_ZONE_NUMBER = 6
MIN_VPC_PREFIX = 16
MAX_VPC_PREFIX = 20
_PUBLIC_BLOCK = 6


@dataclass(frozen=True)
class ZoneSubnets:
    zone: AvailabilityZone
    public_cidr: str
    private_cidr: str


def plan_subnets(vpc_cidr: str, zones: list[AvailabilityZone]) -> list[ZoneSubnets]:
    network = ipaddress.IPv4Network(vpc_cidr)
    if not MIN_VPC_PREFIX <= network.prefixlen <= MAX_VPC_PREFIX:
        raise ValueError(f"VPC CIDR must be /{MIN_VPC_PREFIX}../{MAX_VPC_PREFIX}, got /{network.prefixlen}")
    blocks = list(network.subnets(prefixlen_diff=3))
    public_slices = list(blocks[_PUBLIC_BLOCK].subnets(prefixlen_diff=3))
    planned = []
    for zone in sorted(zones):
        if not 1 <= zone.number <= MAX_ZONE_NUMBER:
            raise ValueError(f"zone {zone.zone_id}: zone numbers 1..{MAX_ZONE_NUMBER} have an address slot")
        planned.append(
            ZoneSubnets(
                zone=zone,
                public_cidr=str(public_slices[zone.number - 1]),
                private_cidr=str(blocks[zone.number - 1]),
            )
        )
    return planned
