from __future__ import annotations

import pytest

from zbi_infra.errors import ConfigError
from zbi_infra.plan.mocks import zones_of
from zbi_infra.zones import AvailabilityZone, select_zones, zone_id_prefix

US_EAST_1 = [AvailabilityZone(zone_id=i, name=n) for n, i in zones_of("us-east-1")]
US_WEST_2 = [AvailabilityZone(zone_id=i, name=n) for n, i in zones_of("us-west-2")]


@pytest.mark.parametrize(
    ("region", "prefix"),
    [
        ("us-east-1", "use1"),
        ("us-west-2", "usw2"),
        ("eu-central-1", "euc1"),
        ("ap-southeast-2", "apse2"),
        ("ap-northeast-1", "apne1"),
        ("sa-east-1", "sae1"),
        ("us-gov-west-1", "usgw1"),
        ("us-gov-east-1", "usge1"),
        ("ca-west-1", "caw1"),
        ("ap-southeast-5", "apse5"),
        ("il-central-1", "ilc1"),
        ("mx-central-1", "mxc1"),
    ],
)
def test_zone_id_prefix(region: str, prefix: str) -> None:
    assert zone_id_prefix(region) == prefix


def test_five_zones_in_us_east_1_skip_the_one_eks_cannot_use() -> None:
    zones = select_zones(US_EAST_1, region="us-east-1", count=5, zone_ids=None, config_key="zbi:platform")
    assert [z.zone_id for z in zones] == ["use1-az1", "use1-az2", "use1-az4", "use1-az5", "use1-az6"]
    assert "us-east-1e" not in {z.name for z in zones}


def test_six_zones_in_us_east_1_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"zbi:platform.availabilityZoneCount: us-east-1 has only 5"):
        select_zones(US_EAST_1, region="us-east-1", count=6, zone_ids=None, config_key="zbi:platform")


def test_dr_region_has_four() -> None:
    with pytest.raises(ConfigError, match="has only 4"):
        select_zones(US_WEST_2, region="us-west-2", count=5, zone_ids=None, config_key="zbi:platform")


def test_explicit_unsupported_zone_is_named() -> None:
    with pytest.raises(ConfigError, match=r"zoneIds: use1-az3 cannot be used \(EKS cannot place"):
        select_zones(
            US_EAST_1, region="us-east-1", count=2, zone_ids=["use1-az1", "use1-az3"], config_key="zbi:platform"
        )


def test_explicit_zones_are_used_in_zone_id_order() -> None:
    zones = select_zones(US_EAST_1, region="us-east-1", count=5, zone_ids=["use1-az6", "use1-az2"], config_key="x")
    assert [(z.zone_id, z.name) for z in zones] == [("use1-az2", "us-east-1d"), ("use1-az6", "us-east-1b")]
