"""Bad config values never crash and never slip through: one message naming the key and the fix, before anything is
registered, for every value AWS, EKS, EBS or Kubernetes would refuse only at deploy time. Valid but unusual values
stay accepted."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from tests.conftest import ROOT, PlanStack, deep_merge
from tests.stack_input import DEV, TODAY, config_with, rejection
from zbi_infra.config.stack import load_stack_config
from zbi_infra.config.stack_file import decode_text, parse_yaml_document, read_stack_file
from zbi_infra.errors import ConfigError
from zbi_infra.zones import zone_id_prefix

# ---- every key of the dev stack, mutated ------------------------------------------------------------------------

MUTATIONS = [True, False, None, -1, 0, 10**30, 1.5, "", "2024-01-01", "x" * 300, [], {}, ["a"], {"x": 1}, "not-a-cidr"]


def leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for key, child in value.items() for p in leaves(child, (*path, key))] or [path]
    if isinstance(value, list):
        return [p for index, child in enumerate(value) for p in leaves(child, (*path, index))] or [path]
    return [path]


def mutated(path: tuple[Any, ...], replacement: Any) -> dict[str, Any]:
    config = copy.deepcopy(DEV)
    target: Any = config
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = replacement
    return config


def test_every_leaf_mutated_is_a_clear_rejection_or_a_valid_config() -> None:
    paths = [p for p in leaves(DEV) if p[0].startswith("zbi:")]
    outcomes = {"accepted": 0, "rejected": 0}
    for path in paths:
        for replacement in MUTATIONS:
            try:
                load_stack_config(mutated(path, replacement), today=TODAY)
                outcomes["accepted"] += 1
            except ConfigError as exc:
                outcomes["rejected"] += 1
                for problem in exc.problems:
                    assert "Fix:" in problem, (path, replacement, problem)
                    assert problem.startswith(("zbi:", "aws:")), (path, replacement, problem)
                    assert len(problem) < 600, (path, replacement, problem)
    assert outcomes["rejected"] > 400 and outcomes["accepted"] > 0, outcomes


def test_switches_and_numbers_are_never_coerced() -> None:
    assert "write a whole number" in rejection(config_with(zbi__instances={"testnet": {"node": {"replicas": True}}}))
    assert "write true or false" in rejection(
        config_with(zbi__instances={"testnet": {"endpoints": {"publicGrpc": "yes"}}})
    )
    assert "write a whole number" in rejection(
        config_with(zbi__instances={"testnet": {"node": {"storage": {"sizeGib": "2024-01-01"}}}})
    )


# ---- what AWS, EKS, EBS or Kubernetes would refuse only at deploy time ------------------------------------------

PUBLIC = {"publicAccess": True}
REJECTED = {
    "unknown region": (dict(zbi__platform={"region": "us-east-9"}), "not an AWS commercial region"),
    "GovCloud region": (dict(zbi__platform={"region": "us-gov-west-1"}), "aws-us-gov (GovCloud) partition"),
    "zone of another region": (dict(zbi__platform={"zoneIds": ["usw2-az1", "usw2-az2"]}), "is not in region"),
    "zone IDs and a count": (
        dict(zbi__platform={"zoneIds": ["use1-az1", "use1-az2"], "availabilityZoneCount": 2}),
        "remove availabilityZoneCount",
    ),
    "a CIDR that is not one": (
        dict(zbi__instances={"testnet": {"endpoints": {"allowedCidrs": ["not-a-cidr"]}}}),
        "'not-a-cidr' is not a CIDR",
    ),
    "a private range as a public allowlist": (
        dict(zbi__cluster={"endpoint": {**PUBLIC, "publicAccessCidrs": ["10.0.0.0/8"]}}),
        "private or reserved range",
    ),
    "too many endpoint CIDRs": (
        dict(zbi__cluster={"endpoint": {**PUBLIC, "publicAccessCidrs": [f"52.{i}.0.0/16" for i in range(41)]}}),
        "at most 40",
    ),
    "too many load balancer ranges": (
        dict(zbi__instances={"testnet": {"endpoints": {"allowedCidrs": [f"52.{i}.0.0/16" for i in range(61)]}}}),
        "at most 60",
    ),
    "a cluster name too long for its IAM roles": (dict(zbi__cluster={"name": "a" * 50}), "IAM role names over 64"),
    "a node group name too long": (
        dict(zbi__cluster={"name": "zbi-development-cluster-primary-use", "nodeGroups": {"general-purpose-pool": {}}}),
        "EKS allows 63",
    ),
    "the reserved aws: tag prefix": (dict(zbi__tags={"aws:team": "x"}), "reserved for AWS"),
    "more than 50 tags": (dict(zbi__tags={f"t{i}": "x" for i in range(45)}), "50 per resource"),
    "a tag key over 128 characters": (dict(zbi__tags={"k" * 129: "x"}), "1 to 128 characters"),
    "a taint key": (
        dict(zbi__cluster={"nodeGroups": {"general": {"taints": [{"key": "bad key", "effect": "NoSchedule"}]}}}),
        "is not a Kubernetes taint key",
    ),
    "a snapshot ID": (
        dict(zbi__instances={"testnet": {"node": {"bootstrapSnapshotId": "snap-123"}}}),
        "bootstrapSnapshotId",
    ),
    "an ARN of another partition": (
        dict(zbi__instances={"testnet": {"admins": ["arn:aws-cn:iam::123456789012:role/x"]}}),
        "partition 'aws-cn'",
    ),
    "a Kubernetes version EKS does not offer": (dict(zbi__cluster={"version": "1.29"}), "EKS does not offer"),
    "an AMI of the wrong architecture": (
        dict(zbi__cluster={"nodeGroups": {"general": {"instanceTypes": ["m7g.large"]}}}),
        "cannot boot the x86_64 image",
    ),
    "two instances with one hostname": (
        dict(zbi__instances={"other": {"network": "testnet", "endpoints": {"hostnames": ["testnet.lwd.zbi.example"]}}}),
        "is also testnet's",
    ),
    "a hostname twice": (
        dict(zbi__instances={"testnet": {"endpoints": {"hostnames": ["a.example.com", "a.example.com"]}}}),
        "listed twice",
    ),
    "a tag inside the image repository": (
        dict(zbi__instances={"testnet": {"node": {"image": {"repository": "zfnd/zebra:latest"}}}}),
        "carries a tag or digest",
    ),
    "a cluster admin as instance admin": (
        dict(zbi__instances={"testnet": {"admins": ["arn:aws:iam::123456789012:role/zbi-platform-admin"]}}),
        "already cluster admin",
    ),
    "one role administering two instances": (
        dict(
            zbi__instances={
                "other": {"network": "testnet", "admins": ["arn:aws:iam::123456789012:role/zbi-testnet-operators"]}
            }
        ),
        "also administers testnet",
    ),
    "a principal listed twice": (
        dict(zbi__instances={"testnet": {"admins": ["arn:aws:iam::123456789012:role/a"] * 2}}),
        "listed twice",
    ),
    "gp3 IOPS over 500 per GiB": (
        dict(zbi__instances={"testnet": {"node": {"storage": {"sizeGib": 10, "iops": 6000}}}}),
        "at most 500 IOPS per GiB",
    ),
    "bootstrapCreatorAdmin false": (dict(zbi__cluster={"bootstrapCreatorAdmin": False}), "silently ignored"),
    "both min_size and minSize": (
        dict(zbi__cluster={"nodeGroups": {"general": {"min_size": 1}}}),
        "write 'minSize' instead",
    ),
    "a nested extra option": (
        dict(zbi__instances={"testnet": {"node": {"extraOptions": {"network.network.x": 1}}}}),
        "one dot",
    ),
    "a misspelled zebrad key": (
        dict(zbi__instances={"testnet": {"node": {"extraOptions": {"sync.downlaod_concurrency_limit": 5}}}}),
        "did you mean 'download_concurrency_limit'",
    ),
    "an extra option that weakens readiness": (
        dict(zbi__instances={"testnet": {"node": {"extraOptions": {"health.min_connected_peers": 0}}}}),
        "is set by zBI",
    ),
    "a readiness threshold as an extra option": (
        dict(zbi__instances={"testnet": {"node": {"extraOptions": {"health.ready_max_blocks_behind": 10000}}}}),
        "tuned under node.readiness",
    ),
    "a readiness threshold that empties the RPC Service in block gaps": (
        dict(zbi__instances={"testnet": {"node": {"readiness": {"readyMaxBlocksBehind": 2, "readyMaxTipAge": "15m"}}}}),
        "greater than or equal to 10",
    ),
    "a readiness tip age below its bound": (
        dict(zbi__instances={"testnet": {"node": {"readiness": {"readyMaxBlocksBehind": 12, "readyMaxTipAge": "5m"}}}}),
        "outside 15m..2h",
    ),
    "an absurd number": (
        dict(zbi__instances={"testnet": {"node": {"extraOptions": {"sync.download_concurrency_limit": 10**30}}}}),
        "64-bit range",
    ),
    "a misspelled namespace": (dict(**{"zbi.instances": {}}), "write 'zbi:instances'"),
    "zcashd on mainnet": (
        dict(zbi__instances={"legacy": {"network": "mainnet", "node": {"kind": "zcashd"}}}),
        "zcashd is end of life",
    ),
    "no CPU": (dict(zbi__instances={"testnet": {"node": {"resources": {"cpu": "0"}}}}), "0 is no CPU at all"),
    "a CPU below a millicore": (
        dict(zbi__instances={"testnet": {"lightwallet": {"resources": {"cpu": "0.0001", "memory": "1Gi"}}}}),
        "at least 1m",
    ),
    "no memory": (dict(zbi__instances={"testnet": {"node": {"resources": {"memory": "0Mi"}}}}), "no memory at all"),
    "a zero memory limit": (
        dict(zbi__instances={"testnet": {"node": {"resources": {"memoryLimit": "0Gi"}}}}),
        "memoryLimit: 0Gi is no memory",
    ),
    "a loopback VPC": (dict(zbi__platform={"vpcCidr": "127.0.0.0/16"}), "127.0.0.0/16 is not a private (RFC 1918)"),
    "a link-local VPC": (dict(zbi__platform={"vpcCidr": "169.254.0.0/16"}), "is not a private (RFC 1918)"),
    "an empty public endpoint allowlist": (
        dict(zbi__cluster={"endpoint": {**PUBLIC, "publicAccessCidrs": []}}),
        "no CIDR is allowed",
    ),
    "a role name in another script": (
        dict(zbi__instances={"testnet": {"admins": ["arn:aws:iam::123456789012:role/opérateurs"]}}),
        "ASCII letters",
    ),
    "a role name of Arabic digits": (
        dict(zbi__instances={"testnet": {"admins": ["arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:role/x"]}}),
        "is not an IAM role or user ARN",
    ),
    "a role name over 64 characters": (
        dict(zbi__instances={"testnet": {"admins": ["arn:aws:iam::123456789012:role/" + "r" * 65]}}),
        "at most 64 characters",
    ),
    "an instance in the control plane's namespace": (
        dict(
            zbi__controlPlane={
                "repository": "https://example.com/zbi.git",
                "workspaceImage": "pulumi/pulumi@sha256:" + "0" * 64,
            },
            zbi__instances={"control-plane": {"network": "testnet"}},
        ),
        "its namespace zbi-control-plane is the control plane's",
    ),
    "a primary stack that is a path": (
        dict(zbi__role="dr", zbi__dr={"primaryStack": "../dev"}, zbi__backup=None, zbi__instances=None),
        "looks like a file path",
    ),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_deploy_time_refusals_are_caught_offline(case: str) -> None:
    merges, expected = REJECTED[case]
    config = config_with(**merges)
    for key in [k for k, v in config.items() if v is None]:
        del config[key]
    message = rejection(config)
    assert expected in message, message


def test_zcashd_options_that_would_end_the_container_are_refused() -> None:
    regtest = {"network": "regtest", "node": {"kind": "zcashd", "extraOptions": {"daemon": 1}}}
    assert "is set by zBI" in rejection(config_with(zbi__instances={"legacy": regtest}))


LOCAL = read_stack_file("local", ROOT / "Pulumi.local.yaml").config


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"admins": ["arn:aws:iam::123456789012:role/x"]}, "a local stack does not have"),
        (
            {"network": "testnet", "node": {"bootstrapSnapshotId": "snap-0123456789abcdef0"}},
            "cannot be restored outside AWS",
        ),
        ({"node": {"storage": {"iops": 3000}}}, "ignores them"),
        ({"node": {"replicas": True}}, "whole number"),
    ],
)
def test_settings_a_local_stack_would_ignore_are_refused(patch: dict[str, Any], expected: str) -> None:
    config = copy.deepcopy(LOCAL)
    config["zbi:instances"]["regnet"] = deep_merge(config["zbi:instances"]["regnet"], patch)
    assert expected in rejection(config)


@pytest.mark.parametrize("name", ["Standard_SSD", "gp3 encrypted", "-local", "a" * 254])
def test_a_storage_class_kubernetes_would_refuse_is_refused(name: str) -> None:
    config = copy.deepcopy(LOCAL)
    config["zbi:local"] = {"storageClass": name}
    assert "zbi:local.storageClass" in rejection(config)


def test_storage_class_names_kubernetes_accepts_stay_accepted() -> None:
    for name in ("standard", "local-path", "csi.hostpath.sc", "gp3"):
        config = copy.deepcopy(LOCAL)
        config["zbi:local"] = {"storageClass": name}
        assert load_stack_config(config, today=TODAY).local.storage_class == name  # type: ignore[union-attr]


def test_a_zebrad_past_its_mainnet_end_of_support_is_refused_and_warned_before() -> None:
    mainnet = config_with(zbi__instances={"testnet": {"network": "mainnet"}})
    assert "reached its Mainnet end of support on about 2026-11-23" in rejection(mainnet, today=date(2026, 11, 25))
    config = load_stack_config(mainnet, today=date(2026, 11, 1))
    errors, warnings = config.release_problems(date(2026, 11, 1))
    assert not errors and warnings == [
        "instance testnet: zebrad 6.3.0 stops on Mainnet around 2026-11-23 (22 days): plan the upgrade (docs/releases.md)"
    ]
    assert load_stack_config(mainnet, today=date(2026, 9, 1)).release_problems(date(2026, 9, 1)) == ([], [])
    # Test networks never halt.
    assert load_stack_config(DEV, today=date(2030, 1, 1)).release_problems(date(2030, 1, 1)) == ([], [])


def test_the_control_plane_namespace_is_the_one_an_instance_named_control_plane_would_get() -> None:
    from zbi_infra.config.stack import CONTROL_PLANE_INSTANCE
    from zbi_infra.control_plane import STACKS_NAMESPACE
    from zbi_infra.node.context import namespace_of

    assert namespace_of(CONTROL_PLANE_INSTANCE) == STACKS_NAMESPACE


# ---- accepted on purpose ----------------------------------------------------------------------------------------


def test_unusual_but_valid_input_stays_accepted(plan_stack: PlanStack) -> None:
    accepted = config_with(
        zbi__cluster={
            "endpoint": {**PUBLIC, "publicAccessCidrs": ["52.94.0.0/22", "2600:1f00::/40"]},
            "nodeGroups": {"arm": {"instanceTypes": ["m7g.large", "c6gn.xlarge"], "amiType": "AL2023_ARM_64_STANDARD"}},
        },
        zbi__instances={
            "testnet": {"node": {"image": {"repository": "registry.example.com:5000/zfnd/zebra"}}},
        },
        zbi__tags={"cost-center": "42", "owner": "ops@example.com"},
    )
    load_stack_config(accepted, today=TODAY)
    assert parse_yaml_document("config:\n  aws:x: {n: 0o17}\n", "x")["config"]["aws:x"] == {"n": 15}
    decode_text("\ufeffconfig: {}\n".encode(), "x")  # a UTF-8 BOM is still UTF-8


@pytest.mark.parametrize(
    ("region", "platform"),
    [
        (
            "eu-west-1",
            {"region": "eu-west-1", "zoneIds": ["euw1-az1", "euw1-az2", "euw1-az3"], "availabilityZoneCount": None},
        ),
        ("ap-northeast-2", {"region": "ap-northeast-2", "availabilityZoneCount": 4}),
        ("sa-east-1", {"region": "sa-east-1", "availabilityZoneCount": 3}),
    ],
)
def test_the_offline_plan_works_in_other_commercial_regions(
    region: str, platform: dict[str, Any], plan_stack: PlanStack
) -> None:
    plan = plan_stack(
        "dev", merge={"aws:region": region, "zbi:platform": platform, "zbi:backup": {"drRegion": "us-west-2"}}
    )
    zones = sorted({s.inputs["availabilityZoneId"] for s in plan.of_type("aws:ec2/subnet:Subnet")})
    assert zones == (platform.get("zoneIds") or zones) and len(zones) == (platform.get("availabilityZoneCount") or 3)
    assert all(zone.startswith(zone_id_prefix(region) + "-az") for zone in zones)
