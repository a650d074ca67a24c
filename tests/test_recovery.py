"""Backups, the DR stack (pilot light and activated), DNS failover, the local stack, and stack-role errors."""

from __future__ import annotations

import fnmatch
import json

import pulumi
import pytest

from tests.conftest import ROOT, PlanStack
from tests.k8s_objects import objects, one
from zbi_infra.dns import published_address
from zbi_infra.errors import ConfigError
from zbi_infra.plan.engine import Plan
from zbi_infra.plan.mocks import PlanMocks, UnknownInvokeError
from zbi_infra.snapshots import claim_volume_tags

DR_KEY = "arn:aws:kms:us-west-2:123456789012:key/dr-copies"
# What the dev stack exports for its DR stack (ZbiPlatform.disaster_recovery).
PRIMARY_OUTPUTS = {
    "dev": {"disasterRecovery": {"drKmsKeyArn": DR_KEY, "drRegion": "us-west-2", "instances": ["testnet"]}}
}
DNS = {"hostedZoneId": "Z0123456789ABCDEFGHIJ"}


@pytest.fixture(scope="module")
def dev(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev")


def test_snapshot_policy_targets_the_storage_class_tags(dev: Plan) -> None:
    (policy,) = dev.of_type("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    details = policy.inputs["policyDetails"]
    assert details["resourceTypes"] == ["VOLUME"]
    storage_class = one(dev, "StorageClass", "zbi-testnet-chain")
    volume_tags = dict(
        v.split("=", 1) for k, v in storage_class["parameters"].items() if k.startswith("tagSpecification_")
    )
    # every volume of the class is selected by the policy
    assert details["targetTags"].items() <= volume_tags.items()
    (schedule,) = details["schedules"]
    assert schedule["createRule"] == {"interval": 12, "intervalUnit": "HOURS"}
    assert schedule["retainRule"] == {"count": 14}
    assert schedule["copyTags"] is True


def test_snapshots_are_copied_to_the_dr_region_under_a_dr_key(dev: Plan) -> None:
    (policy,) = dev.of_type("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    (copy,) = policy.inputs["policyDetails"]["schedules"][0]["crossRegionCopyRules"]
    dr_key = dev.named("dev-backups-dr-key")
    dr_provider = dev.named("aws-us-west-2")
    assert dr_provider.inputs["region"] == "us-west-2"
    assert dr_key.provider and dr_key.provider.startswith(dr_provider.urn)
    assert dr_key.protect
    assert copy["target"] == "us-west-2"
    assert copy["encrypted"] is True
    assert copy["cmkArn"] == f"arn:aws:kms:us-west-2:123456789012:key/{dr_key.id}"
    assert copy["retainRule"] == {"interval": 7, "intervalUnit": "DAYS"}
    kms = json.loads(dev.named("dev-backups-dlm-kms").inputs["policy"])
    resources = kms["Statement"][0]["Resource"]
    assert copy["cmkArn"] in resources
    assert any(":us-east-1:" in arn for arn in resources)  # the source volumes' key


def test_volume_snapshot_class(dev: Plan) -> None:
    snapshot_class = one(dev, "VolumeSnapshotClass", "zbi-ebs")
    assert snapshot_class["driver"] == "ebs.csi.aws.com"
    assert snapshot_class["deletionPolicy"] == "Retain"


def test_fast_bootstrap_from_a_snapshot(plan_stack: PlanStack, dev: Plan) -> None:
    plan = plan_stack(
        "dev", merge={"zbi:instances": {"testnet": {"node": {"bootstrapSnapshotId": "snap-0123456789abcdef0"}}}}
    )
    content = one(plan, "VolumeSnapshotContent", "zbi-testnet-restore")
    assert content["spec"]["source"] == {"snapshotHandle": "snap-0123456789abcdef0"}
    assert content["spec"]["volumeSnapshotClassName"] == "zbi-ebs"
    claim = one(plan, "StatefulSet", "zebrad", "zbi-testnet")["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["dataSource"]["name"] == "restore"
    # without it, replicas start empty
    assert (
        "dataSource" not in one(dev, "StatefulSet", "zebrad", "zbi-testnet")["spec"]["volumeClaimTemplates"][0]["spec"]
    )


def test_backups_can_be_turned_off_with_a_warning(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev", merge={"zbi:backup": {"enabled": False}})
    assert not plan.of_type("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    assert "zbi:backup.enabled is false: chain data has no snapshots and no copy in another region" in plan.warnings


def volume_tags_of(
    plan: Plan, instance: str, *, namespace: str | None = None, claim: str | None = None
) -> dict[str, str]:
    """The tags the chain StorageClass writes on a volume made for the node's first claim (or the claim given):
    the driver fills the claim's namespace and name into the templated values."""
    storage_class = one(plan, "StorageClass", f"zbi-{instance}-chain")
    tags = dict(v.split("=", 1) for k, v in storage_class["parameters"].items() if k.startswith("tagSpecification_"))
    (node,) = [
        s
        for s in objects(plan, "StatefulSet", f"zbi-{instance}")
        if s["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "full-node"
    ]
    own_claim = f"{node['spec']['volumeClaimTemplates'][0]['metadata']['name']}-{node['metadata']['name']}-0"
    return claim_volume_tags(tags, namespace=namespace or node["metadata"]["namespace"], claim=claim or own_claim)


def test_backup_to_dr_is_one_contract_from_volume_to_restore(dev: Plan, activated: Plan) -> None:
    """The tags the StorageClass writes, the tags DLM selects by and copies, and the filter the DR stack looks
    copies up by: each link checked on the rendered objects of both stacks."""
    volume = volume_tags_of(dev, "testnet")
    (policy,) = dev.of_type("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    details = policy.inputs["policyDetails"]
    # 1. DLM selects the volume: every target tag is on it.
    assert details["targetTags"].items() <= volume.items()
    # 2. The snapshot and its cross-region copy keep the volume's tags.
    (schedule,) = details["schedules"]
    (copy,) = schedule["crossRegionCopyRules"]
    assert schedule["copyTags"] is True and copy["copyTags"] is True
    copy_tags = {**volume, **schedule.get("tagsToAdd", {})}
    # 3. The DR stack's lookup matches such a copy: every tag filter names a tag the copy carries, with its value.
    lookups = [args for token, args in activated.invokes if token == "aws:ebs/getSnapshotIds:getSnapshotIds"]
    (lookup,) = lookups
    tag_filters = {
        f["name"].removeprefix("tag:"): f["values"] for f in lookup["filters"] if f["name"].startswith("tag:")
    }
    assert tag_filters and matches(copy_tags, tag_filters), tag_filters
    assert {"name": "status", "values": ["completed"]} in lookup["filters"]
    # 4. ... in the region the copies go to.
    assert copy["target"] == activated.named("aws-us-west-2").inputs["region"]


def matches(tags: dict[str, str], tag_filters: dict[str, list[str]]) -> bool:
    """EC2 DescribeSnapshots tag filters: every filter, any of its values, * and ? as wildcards."""
    return all(
        key in tags and any(fnmatch.fnmatchcase(tags[key], value) for value in values)
        for key, values in tag_filters.items()
    )


def test_another_tenants_claim_on_this_instances_class_is_never_restored(
    plan_stack: PlanStack, activated: Plan
) -> None:
    """Tenant `other` claims a volume with testnet's chain class (StorageClasses are cluster-wide): the volume, its
    snapshots and their DR copies carry testnet's instance and stack tags, and are newer. The DR lookup must still
    not pick them: they were claimed in another namespace, or by a claim that is not the node's chain data."""
    dev = plan_stack("dev", merge={"zbi:instances": {"other": {"network": "testnet"}}})
    (lookup,) = [args for token, args in activated.invokes if token == "aws:ebs/getSnapshotIds:getSnapshotIds"]
    tag_filters = {
        f["name"].removeprefix("tag:"): f["values"] for f in lookup["filters"] if f["name"].startswith("tag:")
    }
    assert matches(volume_tags_of(dev, "testnet"), tag_filters)
    assert matches(volume_tags_of(dev, "testnet", claim="data-zebrad-1"), tag_filters)
    poisoned = volume_tags_of(dev, "testnet", namespace="zbi-other", claim="data-zebrad-0")
    assert poisoned["zbi.io/instance"] == "testnet" and not matches(poisoned, tag_filters)
    # Even inside testnet's namespace, a claim that is not the node's chain data: the light-wallet cache uses the
    # same class, and its snapshots were once as good a match for a chain restore as the node's own.
    assert not matches(volume_tags_of(dev, "testnet", claim="cache-lightwalletd-0"), tag_filters)


def test_a_lookup_no_copy_satisfies_restores_nothing(plan_stack: PlanStack) -> None:
    elsewhere = {"dev": {"disasterRecovery": {**PRIMARY_OUTPUTS["dev"]["disasterRecovery"], "drRegion": "eu-west-1"}}}
    plan = plan_stack("dr", merge={"zbi:dr": {"activate": True}}, stack_outputs=elsewhere)
    assert not objects(plan, "VolumeSnapshotContent")
    assert "instance testnet: no snapshot copy in us-west-2; it will sync from genesis" in plan.warnings
    with pytest.raises(pulumi.RunError, match="no completed snapshot copy in us-west-2 for testnet"):
        plan_stack("dr", merge={"zbi:dr": {"activate": True, "requireSnapshot": True}}, stack_outputs=elsewhere)


def test_mock_snapshot_lookups_honour_every_filter() -> None:
    mocks = PlanMocks(PRIMARY_OUTPUTS)
    copies = mocks.snapshots_in("us-west-2")
    assert copies and not mocks.snapshots_in("us-east-1")

    def ids(filters: list[dict]) -> list[str]:
        args = pulumi.runtime.MockCallArgs(
            token="aws:ebs/getSnapshotIds:getSnapshotIds", args={"region": "us-west-2", "filters": filters}, provider=""
        )
        return mocks.call(args)["ids"]

    assert len(ids([{"name": "tag:zbi.io/instance", "values": ["testnet"]}])) == 2
    assert len(ids([{"name": "tag:zbi.io/pvc-name", "values": ["data-*"]}])) == 2  # EC2's wildcards
    assert ids([{"name": "tag:zbi.io/pvc-name", "values": ["cache-*"]}]) == []
    assert ids([{"name": "tag:zbi.io/instance", "values": ["other"]}]) == []
    assert ids([{"name": "tag:zbi.io/never-written", "values": ["true"]}]) == []
    assert ids([{"name": "status", "values": ["pending"]}]) == []
    with pytest.raises(UnknownInvokeError, match="owner-alias"):
        ids([{"name": "owner-alias", "values": ["amazon"]}])
    with pytest.raises(UnknownInvokeError, match="no answer for invoke aws:ec2/getVpc:getVpc"):
        mocks.call(pulumi.runtime.MockCallArgs(token="aws:ec2/getVpc:getVpc", args={}, provider=""))


@pytest.fixture(scope="module")
def pilot_light(plan_stack: PlanStack) -> Plan:
    return plan_stack("dr", stack_outputs=PRIMARY_OUTPUTS)


def test_dr_pilot_light(pilot_light: Plan) -> None:
    (reference,) = pilot_light.of_type("pulumi:pulumi:StackReference")
    assert reference.inputs["name"] == "dev"
    (provider,) = pilot_light.of_type("pulumi:providers:aws")
    assert provider.inputs["region"] == "us-west-2"
    zones = {s.inputs["availabilityZoneId"] for s in pilot_light.of_type("aws:ec2/subnet:Subnet")}
    assert zones == {"usw2-az1", "usw2-az2", "usw2-az3"}
    assert len(pilot_light.of_type("eks:index:ManagedNodeGroup")) == 3
    assert len(pilot_light.of_type("aws:ec2/natGateway:NatGateway")) == 1
    assert not pilot_light.of_type("zbi:node:ZcashNode")
    assert not pilot_light.of_type("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    # the EBS CSI driver may decrypt the copies it will restore from
    kms = json.loads(pilot_light.named("zbi-dr-ebs-csi-kms").inputs["policy"])
    assert DR_KEY in kms["Statement"][0]["Resource"]


@pytest.fixture(scope="module")
def activated(plan_stack: PlanStack) -> Plan:
    return plan_stack("dr", merge={"zbi:dr": {"activate": True}, "zbi:dns": DNS}, stack_outputs=PRIMARY_OUTPUTS)


def test_activated_dr_restores_each_instance_from_its_newest_snapshot(activated: Plan) -> None:
    (node,) = activated.of_type("zbi:node:ZcashNode")
    assert node.name == "testnet"
    content = one(activated, "VolumeSnapshotContent", "zbi-testnet-restore")
    # the mock holds two copies of the instance; the newest is restored
    copies = [s for s in PlanMocks(PRIMARY_OUTPUTS).snapshots_in("us-west-2") if s.tags["zbi.io/instance"] == "testnet"]
    newest = max(copies, key=lambda s: s.created)
    assert len(copies) == 2 and content["spec"]["source"]["snapshotHandle"] == newest.id
    assert content["spec"]["deletionPolicy"] == "Retain"
    assert content["spec"]["volumeSnapshotRef"] == {"name": "restore", "namespace": "zbi-testnet"}
    snapshot = one(activated, "VolumeSnapshot", "restore", "zbi-testnet")
    assert snapshot["spec"]["source"] == {"volumeSnapshotContentName": "zbi-testnet-restore"}
    sts = one(activated, "StatefulSet", "zebrad", "zbi-testnet")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["dataSource"] == {
        "apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot",
        "name": "restore",
    }
    # spread over the DR zones, volumes created where each pod lands (WaitForFirstConsumer)
    assert sts["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "DoNotSchedule"
    storage_class = one(activated, "StorageClass", "zbi-testnet-chain")
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    assert storage_class["parameters"]["kmsKeyId"].startswith("arn:aws:kms:us-west-2:")


def test_failover_records_pair_primary_and_secondary(plan_stack: PlanStack, activated: Plan) -> None:
    primary = plan_stack("dev", merge={"zbi:dns": DNS})
    (primary_record,) = primary.of_type("aws:route53/record:Record")
    (secondary_record,) = activated.of_type("aws:route53/record:Record")
    (check,) = primary.of_type("aws:route53/healthCheck:HealthCheck")
    assert not activated.of_type("aws:route53/healthCheck:HealthCheck")
    p, s = primary_record.inputs, secondary_record.inputs
    assert p["name"] == s["name"] == "testnet.lwd.zbi.example"
    assert p["zoneId"] == s["zoneId"] == DNS["hostedZoneId"]
    assert p["type"] == s["type"] == "CNAME"
    assert p["failoverRoutingPolicies"] == [{"type": "PRIMARY"}]
    assert s["failoverRoutingPolicies"] == [{"type": "SECONDARY"}]
    assert p["setIdentifier"] != s["setIdentifier"]
    assert p["healthCheckId"] == check.id and "healthCheckId" not in s
    assert check.inputs["type"] == "TCP" and check.inputs["port"] == 443
    assert check.inputs["fqdn"] == p["records"][0]
    assert p["records"] != s["records"]  # each region's own load balancer
    assert ".elb.us-east-1." in p["records"][0] and ".elb.us-west-2." in s["records"][0]


def test_no_dns_records_without_a_hosted_zone(plan_stack: PlanStack) -> None:
    assert not plan_stack("dev", merge={"zbi:dns": None}).of_type("aws:route53/record:Record")


def test_local_stack_has_no_aws_resources(plan_stack: PlanStack) -> None:
    plan = plan_stack("local")
    assert not [r for r in plan.resources if r.type.startswith(("aws:", "eks:", "pulumi:providers:aws"))]
    (provider,) = plan.of_type("pulumi:providers:kubernetes")
    assert provider.inputs["context"] == "kind-zbi"
    sts = one(plan, "StatefulSet", "zebrad", "zbi-regnet")
    assert "storageClassName" not in sts["spec"]["volumeClaimTemplates"][0]["spec"]  # the cluster's default class
    assert not [s for s in objects(plan, "Service") if s["spec"].get("type") == "LoadBalancer"]


@pytest.mark.parametrize(
    ("stack", "merge", "message"),
    [
        ("dr", {"zbi:dr": None}, "zbi:dr is not set"),
        ("dr", {"zbi:dr": {"primaryStack": "nope"}}, "zbi:dr.primaryStack: no Pulumi.nope.yaml"),
        ("dr", {"zbi:dr": {"primaryStack": "local"}}, "has role local, not primary"),
        ("dr", {"zbi:instances": {"x": {"network": "mainnet"}}}, "declares none itself"),
        (
            "dr",
            {"zbi:platform": {"region": "eu-central-1"}, "aws:region": "eu-central-1"},
            "copies its snapshots to us-west-2",
        ),
        ("dev", {"zbi:dr": {"primaryStack": "dev"}}, "zbi:dr only applies to zbi:role dr"),
        ("dev", {"zbi:backup": {"drRegion": "us-east-1"}}, "drRegion equals"),
        ("local", {"zbi:platform": {"region": "us-east-1"}}, "creates no AWS resources"),
        ("local", {"zbi:backup": {"enabled": True}}, "creates no AWS resources"),
    ],
)
def test_stack_role_mistakes_are_config_errors(plan_stack: PlanStack, stack: str, merge: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_stack(stack, merge=merge, stack_outputs=PRIMARY_OUTPUTS)


def test_a_dns_record_never_points_at_a_placeholder(plan_stack: PlanStack) -> None:
    with pytest.raises(ValueError, match="no address yet"):
        published_address("")
    assert published_address("a1.elb.us-east-1.amazonaws.com") == "a1.elb.us-east-1.amazonaws.com"
    plan = plan_stack("dev", merge={"zbi:dns": DNS})
    (service,) = [s for s in plan.of_type("kubernetes:core/v1:Service") if s.inputs["metadata"]["name"] == "gateway"]
    (record,) = plan.of_type("aws:route53/record:Record")
    assert record.inputs["records"] != ["pending"] and record.inputs["records"][0].endswith(
        ".elb.us-east-1.amazonaws.com"
    )
    assert service.inputs["spec"]["type"] == "LoadBalancer"


def test_the_dev_stack_publishes_its_public_hostnames_and_activated_dr_answers_for_them(plan_stack: PlanStack) -> None:
    """Pulumi.dev.yaml's zbi:dns: each public hostname gets a health-checked PRIMARY record in that zone, and the DR
    stack, which sets no zone of its own, writes the SECONDARY records into the same zone when activated."""
    import yaml

    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    zone = config["zbi:dns"]["hostedZoneId"]
    assert "EXAMPLE" in zone  # an example id, and the stack file says to replace it
    hostnames = {
        hostname
        for instance in config["zbi:instances"].values()
        if instance.get("endpoints", {}).get("publicGrpc")
        for hostname in instance["endpoints"]["hostnames"]
    }
    assert hostnames
    dev = plan_stack("dev")
    records = dev.of_type("aws:route53/record:Record")
    assert {r.inputs["name"] for r in records} == hostnames
    assert {r.inputs["zoneId"] for r in records} == {zone}
    checks = {c.id for c in dev.of_type("aws:route53/healthCheck:HealthCheck")}
    assert all(r.inputs["failoverRoutingPolicies"] == [{"type": "PRIMARY"}] for r in records)
    assert {r.inputs["healthCheckId"] for r in records} == checks and len(checks) == len(records)
    dr = plan_stack("dr", merge={"zbi:dr": {"activate": True}}, stack_outputs=PRIMARY_OUTPUTS)
    secondary = dr.of_type("aws:route53/record:Record")
    assert {r.inputs["name"] for r in secondary} == hostnames and {r.inputs["zoneId"] for r in secondary} == {zone}
    assert all(r.inputs["failoverRoutingPolicies"] == [{"type": "SECONDARY"}] for r in secondary)
