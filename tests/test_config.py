"""Stack config validation: every bad input is rejected with a message naming the key and the fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import deep_merge
from zbi_infra.config import StackConfig, load_stack_config
from zbi_infra.errors import ConfigError

GOOD: dict[str, Any] = {
    "aws:region": "us-east-1",
    "zbi:role": "primary",
    "zbi:platform": {"region": "us-east-1", "availabilityZoneCount": 5, "vpcCidr": "10.20.0.0/16"},
    "zbi:cluster": {
        "name": "zbi-test",
        "admins": [{"name": "ops", "principalArn": "arn:aws:iam::123456789012:role/ops"}],
        "nodeGroups": {"general": {"minSize": 1, "desiredSize": 2, "maxSize": 3}},
    },
}


def with_patch(key: str, patch: Any) -> dict[str, Any]:
    raw = copy.deepcopy(GOOD)
    raw[key] = deep_merge(raw[key], patch) if isinstance(patch, dict) and isinstance(raw.get(key), dict) else patch
    return raw


BAD_INPUTS = [
    # (config key patched, patch, the key the message must name, a word of the fix)
    ("zbi:platform", {"regoin": "us-east-1"}, "zbi:platform.regoin", "region"),
    ("zbi:platform", {"region": "us-east-9x"}, "zbi:platform.region", "us-east-1"),
    ("zbi:platform", {"availabilityZoneCount": 1}, "zbi:platform.availabilityZoneCount", "2"),
    ("zbi:platform", {"availabilityZoneCount": 7}, "zbi:platform.availabilityZoneCount", "6"),
    ("zbi:platform", {"zoneIds": ["usw2-az1", "usw2-az2"]}, "zbi:platform.zoneIds", "use1-"),
    ("zbi:platform", {"zoneIds": ["us-east-1a", "us-east-1b"]}, "zbi:platform.zoneIds", "zone IDs"),
    ("zbi:platform", {"zoneIds": ["use1-az1", "use1-az1"]}, "zbi:platform.zoneIds", "once"),
    ("zbi:platform", {"vpcCidr": "10.0.0.0/8"}, "zbi:platform.vpcCidr", "/16"),
    ("zbi:platform", {"vpcCidr": "10.20.0.0/24"}, "zbi:platform.vpcCidr", "/20"),
    ("zbi:platform", {"vpcCidr": "10.20.0.1/16"}, "zbi:platform.vpcCidr", "10.20.0.0/16"),
    ("zbi:platform", {"vpcCidr": "8.8.0.0/16"}, "zbi:platform.vpcCidr", "RFC 1918"),
    ("zbi:platform", {"natStrategy": "none"}, "zbi:platform.natStrategy", "per-az"),
    ("zbi:platform", {"flowLogs": {"retentionDays": 42}}, "zbi:platform.flowLogs.retentionDays", "30"),
    ("zbi:cluster", {"name": "1-bad"}, "zbi:cluster.name", "'1-bad' has the wrong form"),
    ("zbi:cluster", {"version": "1.24"}, "zbi:cluster.version", "EKS does not offer Kubernetes '1.24'"),
    ("zbi:cluster", {"endpoint": {"publicAccess": True}}, "zbi:cluster.endpoint.publicAccessCidrs", "CIDR"),
    (
        "zbi:cluster",
        {"endpoint": {"publicAccess": True, "publicAccessCidrs": ["1.2.3.4/40"]}},
        "zbi:cluster.endpoint.publicAccessCidrs",
        "CIDR",
    ),
    (
        "zbi:cluster",
        {"admins": [{"name": "ops", "principalArn": "arn:aws:iam::123:role/x"}]},
        "zbi:cluster.admins[0].principalArn",
        "is not an IAM role or user ARN",
    ),
    (
        "zbi:cluster",
        {
            "admins": [
                {"name": "a", "principalArn": "arn:aws:iam::123456789012:role/a"},
                {"name": "a", "principalArn": "arn:aws:iam::123456789012:role/b"},
            ]
        },
        "zbi:cluster.admins",
        "unique",
    ),
    (
        "zbi:cluster",
        {"admins": [{"name": "a", "principalArn": "arn:aws:iam::123456789012:role/a", "namespaces": ["x"]}]},
        "zbi:cluster.admins[0].namespaces",
        "policy",
    ),
    (
        "zbi:cluster",
        {"nodeGroups": {"general": {"minSize": 3}}},
        "zbi:cluster.nodeGroups.general.desiredSize",
        "raise desiredSize",
    ),
    (
        "zbi:cluster",
        {"nodeGroups": {"general": {"maxSize": 1}}},
        "zbi:cluster.nodeGroups.general.maxSize",
        "raise maxSize",
    ),
    (
        "zbi:cluster",
        {"nodeGroups": {"general": {"amiType": "AL2_x86_64"}}},
        "zbi:cluster.nodeGroups.general.amiType",
        "AL2023",
    ),
    (
        "zbi:cluster",
        {"nodeGroups": {"general": {"instanceTypes": []}}},
        "zbi:cluster.nodeGroups.general.instanceTypes",
        "at least 1 item",
    ),
    (
        "zbi:cluster",
        {"nodeGroups": {"general": {"instanceTypes": ["large"]}}},
        "zbi:cluster.nodeGroups.general.instanceTypes[0]",
        "'large' has the wrong form",
    ),
    ("zbi:cluster", {"nodeGroups": {"general": {"minsize": 1}}}, "zbi:cluster.nodeGroups.general.minsize", "minSize"),
    ("zbi:cluster", {"nodeGroups": {"Bad_Name": {}}}, "zbi:cluster.nodeGroups.Bad_Name", "write a name matching"),
    (
        "zbi:cluster",
        {"nodeGroups": {"general": {"labels": {"bad key!": "x"}}}},
        "zbi:cluster.nodeGroups.general.labels",
        "label key",
    ),
    (
        "zbi:cluster",
        {"nodeGroups": {"general": {"taints": [{"key": "a", "effect": "Sometimes"}]}}},
        "zbi:cluster.nodeGroups.general.taints[0].effect",
        "NoSchedule",
    ),
    (
        "zbi:cluster",
        {"nodeGroups": {"general": {"diskSizeGib": 5}}},
        "zbi:cluster.nodeGroups.general.diskSizeGib",
        "20",
    ),
    ("zbi:role", "staging", "zbi:role", "primary"),
    ("zbi:instances", {"a": {"network": "regtest", "node": {"replicas": 1}}}, "zbi:instances.a", "replicas >= 2"),
    (
        "zbi:instances",
        {"a": {"network": "mainnet", "gateway": {"maxBodyKib": 4096}}},
        "zbi:instances.a.gateway",
        "lower maxBodyKib to 1638 or less, or raise resources.memoryLimit to 640Mi",
    ),
    (
        "zbi:instances",
        {"a": {"network": "mainnet", "node": {"bootstrapSnapshotId": "vol-1"}}},
        "zbi:instances.a.node.bootstrapSnapshotId",
        "'vol-1' has the wrong form",
    ),
    (
        "zbi:instances",
        {"a": {"network": "mainnet", "node": {"image": {"tag": "latest"}}}},
        "zbi:instances.a.node.image.tag",
        "pin",
    ),
    (
        "zbi:instances",
        {"a": {"network": "mainnet", "node": {"extraOptions": {"rpc.listen_addr": "x"}}}},
        "zbi:instances.a.node.extraOptions",
        "set by zBI",
    ),
    (
        "zbi:instances",
        {"a": {"network": "mainnet", "node": {"storage": {"iops": 3000, "throughputMibps": 1000}}}},
        "zbi:instances.a.node.storage.throughputMibps",
        "raise iops",
    ),
    (
        "zbi:instances",
        {"a": {"network": "mainnet", "lightwallet": {"minReplicas": 4, "maxReplicas": 2}}},
        "zbi:instances.a.lightwallet.maxReplicas",
        "raise maxReplicas",
    ),
    (
        "zbi:instances",
        {"a": {"network": "mainnet", "node": {"resources": {"cpu": "2", "memory": "8Gi", "memoryLimit": "4Gi"}}}},
        "zbi:instances.a.node.resources.memoryLimit",
        "raise memoryLimit",
    ),
    ("zbi:instances", {"a": {"network": "devnet"}}, "zbi:instances.a.network", "mainnet"),
    ("zbi:instances", {"Bad": {"network": "mainnet"}}, "zbi:instances.Bad", "'Bad' has the wrong form"),
    ("zbi:backup", {"intervalHours": 5}, "zbi:backup.intervalHours", "12"),
    ("zbi:dns", {"hostedZoneId": "nope"}, "zbi:dns.hostedZoneId", "'nope' has the wrong form"),
    ("aws:region", "us-west-2", "aws:region", "same region"),
]


@pytest.mark.parametrize(("key", "patch", "named", "hint"), BAD_INPUTS, ids=[b[2] for b in BAD_INPUTS])
def test_bad_input_is_rejected_naming_the_key(key: str, patch: Any, named: str, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_config(with_patch(key, patch))
    message = str(caught.value)
    assert f"{named}:" in message, message
    assert hint in message, message


def test_at_least_twenty_distinct_bad_inputs() -> None:
    assert len({b[2] for b in BAD_INPUTS}) >= 20


def test_every_hint_tells_its_rejection_apart() -> None:
    """A hint that every message contains (the key's namespace, "Fix") would pass for any rejection."""
    messages = {}
    for key, patch, named, _ in BAD_INPUTS:
        with pytest.raises(ConfigError) as caught:
            load_stack_config(with_patch(key, patch))
        messages[named] = str(caught.value)
    for _, _, named, hint in BAD_INPUTS:
        others = [m for other, m in messages.items() if other != named]
        assert hint and not all(hint in m for m in others), (named, hint)


def test_unknown_top_level_key_is_rejected() -> None:
    raw = {**GOOD, "zbi:clutser": {"name": "x"}}
    with pytest.raises(ConfigError, match=r"zbi:clutser: unknown key.*'cluster'"):
        load_stack_config(raw)


def test_primary_without_cluster_is_a_role_error() -> None:
    raw = {k: v for k, v in GOOD.items() if k != "zbi:cluster"}
    with pytest.raises(ConfigError, match="zbi:cluster is not set"):
        load_stack_config(raw)


def test_every_problem_is_reported_at_once() -> None:
    raw = with_patch("zbi:platform", {"vpcCidr": "bad", "natStrategy": "x"})
    with pytest.raises(ConfigError) as caught:
        load_stack_config(raw)
    assert len(caught.value.problems) == 2


def test_json_text_config_as_pulumi_passes_it() -> None:
    import json

    raw = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in GOOD.items()}
    config = load_stack_config(raw)
    assert config.cluster is not None and config.cluster.node_groups["general"].desired_size == 2


def test_good_config_round_trips() -> None:
    config = load_stack_config(GOOD)
    dumped = config.model_dump(by_alias=True, mode="json", exclude_none=True)
    again = StackConfig.model_validate(dumped)
    assert again == config
    assert dumped["cluster"]["nodeGroups"]["general"]["desiredSize"] == 2
    assert dumped["platform"]["natStrategy"] == "per-az"


def test_defaults_are_the_safe_ones() -> None:
    config = load_stack_config(GOOD)
    assert config.platform is not None and config.cluster is not None
    assert config.platform.nat_strategy.value == "per-az"
    assert config.cluster.endpoint.public_access is False
    assert config.cluster.imds_hop_limit == 1
    assert config.platform.flow_logs.enabled


def test_the_gateways_body_buffers_fit_half_its_memory_limit_exactly_at_the_bound() -> None:
    """40 bodies (8 anonymous, one caller's 32), each in nginx's buffer of twice maxBodyKib, within half the limit:
    at the default 256Mi limit 1638 KiB passes and 1639 does not; the limit the refusal names lets 4096 pass."""
    from zbi_infra.config.instance import GatewayConfig

    assert GatewayConfig(max_body_kib=1638).max_body_kib == 1638
    with pytest.raises(ValueError, match="lower maxBodyKib to 1638 or less"):
        GatewayConfig(max_body_kib=1639)
    resources = {"cpu": "100m", "memory": "128Mi", "memory_limit": "640Mi"}
    assert GatewayConfig(max_body_kib=4096, resources=resources).max_body_kib == 4096
    with pytest.raises(ValueError, match=r"raise resources\.memoryLimit to 640Mi"):
        GatewayConfig(max_body_kib=4096, resources={**resources, "memory_limit": "639Mi"})
