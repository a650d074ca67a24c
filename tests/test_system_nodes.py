"""With a `system` node group, the platform's own pods (the reconciler's operator and workspace, the monitoring stack)
run there and tenant pods cannot: the group is tainted, platform pods tolerate exactly its taints."""

from __future__ import annotations

import pytest

from tests.conftest import PlanStack
from tests.k8s_objects import objects, one
from tests.test_iam_analysers import WORKSPACE_IMAGE
from zbi_infra.errors import ConfigError
from zbi_infra.plan.engine import Plan

TAINT = {"key": "zbi.io/system", "value": "true", "effect": "NoSchedule"}
SYSTEM = {"nodeGroups": {"system": {"instanceTypes": ["m7i.large"], "taints": [TAINT]}}}
CONTROL = {"repository": "https://github.com/zbi-example/zbi", "workspaceImage": WORKSPACE_IMAGE}
PLACED = {"nodeSelector": {"zbi.io/node-group": "system"}, "tolerations": [{**TAINT, "operator": "Equal"}]}


@pytest.fixture(scope="module")
def dev(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:cluster": SYSTEM, "zbi:controlPlane": CONTROL})


def release_values(plan: Plan, chart: str) -> dict:
    (release,) = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if chart in r.inputs["chart"]]
    return release.inputs["values"]


def tolerates(pod: dict, taint: dict) -> bool:
    return any(
        t.get("key") == taint["key"]
        and t.get("effect") in (None, taint["effect"])
        and (t.get("operator") == "Exists" or t.get("value") == taint["value"])
        for t in pod.get("tolerations", [])
    )


def test_the_system_group_is_tainted_and_labelled(dev: Plan) -> None:
    groups = [g for g in dev.of_type("eks:index:ManagedNodeGroup") if "-system-" in g.inputs["nodeGroupName"]]
    assert groups
    for group in groups:
        assert group.inputs["labels"]["zbi.io/node-group"] == "system"
        assert group.inputs["taints"] == [{"key": "zbi.io/system", "value": "true", "effect": "NO_SCHEDULE"}]


def test_platform_pods_go_to_the_system_group(dev: Plan) -> None:
    operator = release_values(dev, "pulumi-kubernetes-operator")
    assert {k: operator[k] for k in PLACED} == PLACED
    workspace = one(dev, "Stack", "zbi-dev", "zbi-control-plane")["spec"]["workspaceTemplate"]["spec"]["podTemplate"]
    assert workspace["spec"]["containers"] == [{"name": "pulumi"}]
    assert {k: workspace["spec"][k] for k in PLACED} == PLACED
    stack = release_values(dev, "kube-prometheus-stack")
    for part in (stack["prometheus"]["prometheusSpec"], stack["alertmanager"]["alertmanagerSpec"], stack["grafana"],
                 stack["kube-state-metrics"], stack["prometheusOperator"], release_values(dev, "blackbox-exporter")):  # fmt: skip
        assert {k: part[k] for k in PLACED} == PLACED


def lands_on(pod: dict, group: dict) -> bool:
    """The scheduler's two checks: the pod's nodeSelector matches the group's node labels, and it tolerates every
    NoSchedule/NoExecute taint of the group (EKS spells the effect NO_SCHEDULE)."""
    taints = [{**t, "effect": "".join(w.title() for w in t["effect"].split("_"))} for t in group.get("taints", [])]
    selector = pod.get("nodeSelector") or {}
    return all(group["labels"].get(k) == v for k, v in selector.items()) and all(tolerates(pod, t) for t in taints)


def test_every_platform_chart_lands_on_the_system_group_only(dev: Plan) -> None:
    """Every Helm release zBI installs is a platform component: a chart added without placement fails here. The
    kube-prometheus-stack places its parts one by one (above); its node-exporter runs on every node by design."""
    groups = [g.inputs for g in dev.of_type("eks:index:ManagedNodeGroup")]
    system = [g for g in groups if g["labels"].get("zbi.io/node-group") == "system"]
    assert system and len(system) < len(groups)
    releases = {
        r.inputs["chart"].rsplit("/", 1)[-1]: r.inputs["values"] for r in dev.of_type("kubernetes:helm.sh/v3:Release")
    }
    assert {"prometheus-cloudwatch-exporter", "cluster-autoscaler", "prometheus-blackbox-exporter"} <= set(releases)
    for chart, values in releases.items():
        if chart == "kube-prometheus-stack":
            continue
        assert all(lands_on(values, g) for g in system), chart
        assert not any(lands_on(values, g) for g in groups if g not in system), chart


def test_tenant_pods_cannot_land_there(dev: Plan) -> None:
    tenant_pods = [
        w["spec"]["template"]["spec"]
        for kind in ("StatefulSet", "Deployment")
        for w in objects(dev, kind)
        if w["metadata"]["namespace"].startswith("zbi-") and w["metadata"]["namespace"] != "zbi-control-plane"
    ]
    assert tenant_pods and not any(tolerates(pod, TAINT) for pod in tenant_pods)


def test_without_a_system_group_nothing_is_placed(plan_stack: PlanStack) -> None:
    values = release_values(plan_stack("dev"), "kube-prometheus-stack")
    assert "nodeSelector" not in values["prometheus"]["prometheusSpec"]


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"system": {"taints": []}}, "no NoSchedule taint"),
        ({"system": {"taints": [{**TAINT, "effect": "PreferNoSchedule"}]}}, "no NoSchedule taint"),
        ({"general": None, "system": {"taints": [TAINT]}}, "only a system node group"),
    ],
)
def test_a_system_group_tenants_could_use_is_refused(plan_stack: PlanStack, groups: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_stack("dev", merge={"zbi:cluster": {"nodeGroups": groups}})
