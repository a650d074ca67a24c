"""ZbiCluster as the dev stack builds it: the inputs we hand to EKS, under Pulumi's mocks."""

from __future__ import annotations

import json

from tests.conftest import PlanStack

MNG = "eks:index:ManagedNodeGroup"


def test_a_node_group_in_every_zone(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    subnet_zone = {s.id: s.inputs["availabilityZoneId"] for s in plan.of_type("aws:ec2/subnet:Subnet")}
    groups = plan.of_type(MNG)
    assert len(groups) == 5
    zones = [subnet_zone[g.inputs["subnetIds"][0]] for g in groups]
    assert all(len(g.inputs["subnetIds"]) == 1 for g in groups)
    assert sorted(zones) == ["use1-az1", "use1-az2", "use1-az4", "use1-az5", "use1-az6"]
    for group in groups:
        assert group.inputs["nodeGroupName"].endswith(subnet_zone[group.inputs["subnetIds"][0]])
        assert group.inputs["amiType"].startswith("AL2023")
        assert group.inputs["scalingConfig"] == {"minSize": 1, "desiredSize": 1, "maxSize": 3}
        assert group.inputs["tags"]["k8s.io/cluster-autoscaler/enabled"] == "true"
        assert group.inputs["tags"]["k8s.io/cluster-autoscaler/zbi-dev"] == "owned"


def test_node_groups_per_group_and_zone(plan_stack: PlanStack) -> None:
    plan = plan_stack(
        "dev",
        merge={
            "zbi:cluster": {
                "nodeGroups": {
                    "chain": {
                        "instanceTypes": ["r7i.xlarge"],
                        "taints": [{"key": "zbi.io/chain", "value": "true", "effect": "NoSchedule"}],
                        "labels": {"zbi.io/pool": "chain"},
                    }
                }
            }
        },
    )
    chain = [g for g in plan.of_type(MNG) if "-chain-" in g.name]
    assert len(chain) == 5 and len(plan.of_type(MNG)) == 10
    assert chain[0].inputs["taints"] == [{"key": "zbi.io/chain", "value": "true", "effect": "NO_SCHEDULE"}]
    assert chain[0].inputs["labels"]["zbi.io/pool"] == "chain"


def test_launch_template_requires_imdsv2_and_encrypts_the_root_volume(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    (template,) = plan.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    metadata = template.inputs["metadataOptions"]
    assert metadata["httpTokens"] == "required"
    assert metadata["httpPutResponseHopLimit"] == 1
    (device,) = template.inputs["blockDeviceMappings"]
    assert device["ebs"]["encrypted"] == "true"
    assert device["ebs"]["volumeType"] == "gp3"
    assert device["ebs"]["volumeSize"] == 50
    for group in plan.of_type(MNG):
        assert group.inputs["launchTemplate"]["id"] == template.id


def test_cluster_logging_encryption_endpoint_and_access_entries(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    (cluster,) = plan.of_type("eks:index:Cluster")
    inputs = cluster.inputs
    assert inputs["name"] == "zbi-dev"
    assert set(inputs["enabledClusterLogTypes"]) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    secrets_key = plan.named("zbi-dev-secrets-key")
    assert inputs["encryptionConfigKeyArn"] == f"arn:aws:kms:us-east-1:123456789012:key/{secrets_key.id}"
    assert inputs["endpointPrivateAccess"] is True
    assert inputs["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in inputs
    assert inputs["authenticationMode"] == "API"
    assert inputs["skipDefaultNodeGroup"] is True
    assert inputs["createOidcProvider"] is True
    assert inputs["storageClasses"] == {}
    entry = inputs["accessEntries"]["platform-admins"]
    assert entry["principalArn"] == "arn:aws:iam::123456789012:role/zbi-platform-admin"
    (policy,) = entry["accessPolicies"].values()
    assert policy["policyArn"].endswith("AmazonEKSClusterAdminPolicy")
    assert policy["accessScope"] == {"type": "cluster"}


def test_namespaced_admin_gets_a_namespaced_scope(plan_stack: PlanStack) -> None:
    plan = plan_stack(
        "dev",
        merge={
            "zbi:cluster": {
                "admins": [
                    {
                        "name": "builder",
                        "policy": "edit",
                        "namespaces": ["zbi-lease-1"],
                        "principalArn": "arn:aws:iam::123456789012:role/builder",
                    }
                ]
            }
        },
    )
    (cluster,) = plan.of_type("eks:index:Cluster")
    (policy,) = cluster.inputs["accessEntries"]["builder"]["accessPolicies"].values()
    assert policy["accessScope"] == {"type": "namespace", "namespaces": ["zbi-lease-1"]}
    assert policy["policyArn"].endswith("AmazonEKSEditPolicy")


def test_private_endpoint_only_when_public_access_is_off(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev", merge={"zbi:cluster": {"endpoint": {"publicAccess": False, "publicAccessCidrs": []}}})
    (cluster,) = plan.of_type("eks:index:Cluster")
    assert cluster.inputs["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in cluster.inputs


def test_ebs_csi_driver_runs_under_its_own_irsa_role(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    addons = {a.inputs["addonName"]: a for a in plan.of_type("aws:eks/addon:Addon")}
    assert {"aws-ebs-csi-driver", "snapshot-controller"} <= set(addons)
    role = plan.named("zbi-dev-ebs-csi-role")
    assert addons["aws-ebs-csi-driver"].inputs["serviceAccountRoleArn"].endswith(f"role/{role.id}")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    (sub_key,) = [k for k in condition if k.endswith(":sub")]
    assert not sub_key.startswith("https://")
    assert condition[sub_key] == "system:serviceaccount:kube-system:ebs-csi-controller-sa"
    kms = json.loads(plan.named("zbi-dev-ebs-csi-kms").inputs["policy"])
    ebs_key = plan.named("zbi-dev-ebs-key")
    assert kms["Statement"][0]["Resource"] == [f"arn:aws:kms:us-east-1:123456789012:key/{ebs_key.id}"]


def test_keys_rotate_and_the_data_key_is_protected(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    keys = plan.of_type("aws:kms/key:Key")
    assert all(k.inputs["enableKeyRotation"] is True for k in keys)
    assert plan.named("zbi-dev-ebs-key").protect


def test_kubeconfig_reaches_the_provider_only_as_a_secret(plan_stack: PlanStack) -> None:
    (provider,) = plan_stack("dev").of_type("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "[secret]"


def test_everything_runs_on_an_explicit_regional_provider(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    providers = {p.inputs["region"]: p for p in plan.of_type("pulumi:providers:aws")}
    assert set(providers) == {"us-east-1", "us-west-2"}  # the platform, and the DR region for snapshot copies
    primary, dr = providers["us-east-1"].urn, providers["us-west-2"].urn
    custom_aws = [r for r in plan.resources if r.custom and r.type.startswith("aws:")]
    assert custom_aws and all(r.provider and r.provider.startswith((primary, dr)) for r in custom_aws)
    in_dr = {r.type for r in custom_aws if r.provider and r.provider.startswith(dr)}
    assert in_dr == {"aws:kms/key:Key", "aws:kms/alias:Alias"}


def test_a_public_endpoint_is_open_to_exactly_the_allowlist(plan_stack: PlanStack) -> None:
    allowlist = ["52.94.0.0/22", "2600:1f00::/40"]
    plan = plan_stack(
        "dev", merge={"zbi:cluster": {"endpoint": {"publicAccess": True, "publicAccessCidrs": allowlist}}}
    )
    (cluster,) = plan.of_type("eks:index:Cluster")
    assert cluster.inputs["endpointPublicAccess"] is True
    assert cluster.inputs["publicAccessCidrs"] == allowlist
