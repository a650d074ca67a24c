"""Self-healing and scaling: the Cluster Autoscaler on least privilege, matched to the cluster's version, balancing
the per-zone groups; PriorityClasses that bring full nodes back first."""

from __future__ import annotations

import json

import pytest

from tests.conftest import UPSTREAM, PlanStack
from tests.k8s_objects import one, pod_spec
from zbi_infra.autoscaler import ownership_tag
from zbi_infra.plan.engine import Plan

EVIDENCE = json.loads((UPSTREAM / "autoscaler" / "cluster-autoscaler.json").read_text())


@pytest.fixture(scope="module")
def dev(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev")


def test_the_autoscaler_matches_the_clusters_kubernetes_version(dev: Plan, plan_stack: PlanStack) -> None:
    release = dev.named("zbi-dev-cluster-autoscaler")
    assert release.inputs["chart"] == EVIDENCE["chart"]["name"]
    assert release.inputs["version"] == EVIDENCE["chart"]["version"]
    assert release.inputs["repositoryOpts"]["repo"] == EVIDENCE["chart"]["repository"]
    values = release.inputs["values"]
    assert values["image"]["tag"] == EVIDENCE["releases_by_kubernetes_minor"]["1.33"]["image_tag"]
    newer = plan_stack("dev", merge={"zbi:cluster": {"version": "1.35"}}).named("zbi-dev-cluster-autoscaler")
    assert newer.inputs["values"]["image"]["tag"] == EVIDENCE["releases_by_kubernetes_minor"]["1.35"]["image_tag"]
    assert values["autoDiscovery"] == {"clusterName": "zbi-dev"} and values["awsRegion"] == "us-east-1"
    assert values["extraArgs"]["balance-similar-node-groups"] is True
    assert values["extraArgs"]["skip-nodes-with-local-storage"] is False
    groups = dev.of_type("eks:index:ManagedNodeGroup")
    assert groups and all(g.urn in release.depends_on for g in groups)


def test_the_autoscaler_may_resize_only_this_clusters_node_groups(dev: Plan) -> None:
    role = dev.named("zbi-dev-autoscaler-role")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert "system:serviceaccount:kube-system:cluster-autoscaler" in trust["Condition"]["StringEquals"].values()
    release = dev.named("zbi-dev-cluster-autoscaler")
    service_account = release.inputs["values"]["rbac"]["serviceAccount"]
    assert service_account["name"] == "cluster-autoscaler"
    assert service_account["annotations"]["eks.amazonaws.com/role-arn"].endswith(f"role/{role.id}")
    read, write = json.loads(dev.named("zbi-dev-autoscaler-policy").inputs["policy"])["Statement"]
    assert "Condition" not in read and all(a.split(":")[1].startswith(("Describe", "Get")) for a in read["Action"])
    assert set(write["Action"]) == {"autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"}
    (key,) = write["Condition"]["StringEquals"]
    # The tag the writes are conditioned on is the tag every node group of this cluster carries.
    assert key == f"aws:ResourceTag/{ownership_tag('zbi-dev')}"
    for group in dev.of_type("eks:index:ManagedNodeGroup"):
        assert group.inputs["tags"][ownership_tag("zbi-dev")] == write["Condition"]["StringEquals"][key]


def test_full_nodes_come_back_first_and_are_never_drained_to_save_money(dev: Plan, plan_stack: PlanStack) -> None:
    classes = {
        c.inputs["metadata"]["name"]: c.inputs for c in dev.of_type("kubernetes:scheduling.k8s.io/v1:PriorityClass")
    }
    order = sorted(classes, key=lambda n: -classes[n]["value"])
    assert order == ["zbi-full-node", "zbi-light-wallet", "zbi-gateway", "zbi-monitoring"]
    assert not any(c["globalDefault"] for c in classes.values())
    node = one(dev, "StatefulSet", "zebrad", "zbi-testnet")
    assert pod_spec(node)["priorityClassName"] == "zbi-full-node"
    assert (
        node["spec"]["template"]["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    )
    wallet = one(dev, "StatefulSet", "lightwalletd", "zbi-testnet")
    assert pod_spec(wallet)["priorityClassName"] == "zbi-light-wallet"
    local = plan_stack("local")
    assert pod_spec(one(local, "StatefulSet", "zebrad", "zbi-regnet"))["priorityClassName"] == "zbi-full-node"
