"""Subnet addressing: properties that must hold for every zone set and VPC size."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zbi_infra.network_plan import plan_subnets
from zbi_infra.zones import AvailabilityZone

ZONES = [AvailabilityZone(zone_id=f"use1-az{n}", name=f"us-east-1{chr(96 + n)}") for n in range(1, 7)]
zone_sets = st.lists(st.sampled_from(ZONES), min_size=1, max_size=6, unique=True)
vpc_cidrs = st.builds(
    lambda second, prefix: str(ipaddress.IPv4Network(f"10.{second}.0.0/{prefix}", strict=False)),
    st.integers(0, 255),
    st.integers(16, 20),
)


@given(zone_sets, vpc_cidrs)
def test_subnets_are_inside_the_vpc_and_never_overlap(zones: list[AvailabilityZone], cidr: str) -> None:
    vpc = ipaddress.IPv4Network(cidr)
    planned = plan_subnets(cidr, zones)
    networks = [ipaddress.IPv4Network(c) for p in planned for c in (p.public_cidr, p.private_cidr)]
    assert all(n.subnet_of(vpc) for n in networks)
    for a, b in itertools.combinations(networks, 2):
        assert not a.overlaps(b), (a, b)
    # Room to grow: at least one eighth of the VPC is never handed out.
    assert sum(n.num_addresses for n in networks) <= vpc.num_addresses * 7 // 8


@given(zone_sets, st.sampled_from(ZONES), vpc_cidrs)
def test_adding_a_zone_does_not_move_the_others(
    zones: list[AvailabilityZone], extra: AvailabilityZone, cidr: str
) -> None:
    before = {p.zone: p for p in plan_subnets(cidr, zones)}
    after = {p.zone: p for p in plan_subnets(cidr, [*zones, extra] if extra not in zones else zones)}
    for zone, subnets in before.items():
        assert after[zone] == subnets


def test_private_subnets_are_larger_than_public() -> None:
    planned = plan_subnets("10.20.0.0/16", ZONES[:2])
    assert planned[0].private_cidr == "10.20.0.0/19"
    assert planned[0].public_cidr == "10.20.192.0/22"
    assert planned[1].private_cidr == "10.20.32.0/19"


def test_zone_number_beyond_the_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="zone numbers"):
        plan_subnets("10.20.0.0/16", [AvailabilityZone(zone_id="use1-az7", name="us-east-1g")])
