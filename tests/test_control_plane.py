"""ZbiControlPlane: the Pulumi Kubernetes Operator from its pinned chart, one Stack per reconciled zBI stack (valid
against the operator's CRD), each on its own IRSA role whose policy is scoped to that stack."""

from __future__ import annotations

import json

import pytest

from tests.conftest import UPSTREAM, PlanStack
from tests.k8s_objects import objects, one
from tests.test_iam_analysers import PRIMARY_OUTPUTS, WORKSPACE_IMAGE
from zbi_infra.control_plane import OPERATOR_CHART
from zbi_infra.errors import ConfigError
from zbi_infra.plan.engine import Plan
from zbi_infra.reconciler_access import READ_ACTIONS

CHART = json.loads((UPSTREAM / "pulumi-kubernetes-operator" / "chart.json").read_text())
CONTROL = {
    "repository": "https://github.com/zbi-example/zbi",
    "organization": "zbi-example",
    "stacks": ["dev"],
    "workspaceImage": WORKSPACE_IMAGE,
}


@pytest.fixture(scope="module")
def dev(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:controlPlane": CONTROL})


def test_the_operator_is_the_pinned_chart_with_values_it_reads(dev: Plan) -> None:
    (release,) = [r.inputs for r in dev.of_type("kubernetes:helm.sh/v3:Release") if "operator" in r.inputs["chart"]]
    assert (release["chart"], release["version"]) == (CHART["repository"], CHART["version"]) == OPERATOR_CHART
    assert set(release["values"]) <= set(CHART["valueKeys"])
    # The chart's ServiceMonitor exists only if the monitoring CRDs did at install; zBI's own replaces it.
    assert release["values"]["serviceMonitor"]["enabled"] is False


def test_the_operator_is_scraped_by_zbis_monitor_after_the_monitoring_crds(dev: Plan) -> None:
    """StackReconcileFailing reads the operator's stacks_failing: a ServiceMonitor made after the CRDs (not the
    chart's, which chart 2.9.0 renders only if they already exist) selects the chart's metrics Service."""
    evidence = json.loads((UPSTREAM / "pulumi-kubernetes-operator" / "servicemonitor.json").read_text())
    assert "Capabilities.APIVersions.Has" in evidence["created_only_if_crd_present_at_render"][1]
    (monitor,) = [
        r for r in dev.of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor") if "control-plane" in r.name
    ]
    spec = monitor.inputs["spec"]
    assert spec["namespaceSelector"] == {"matchNames": ["pulumi-kubernetes-operator"]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == evidence["service_metrics_port"]["name"]
    # The chart's selector labels for a release named as the chart (fullname = release name).
    (release,) = [r.inputs for r in dev.of_type("kubernetes:helm.sh/v3:Release") if "operator" in r.inputs["chart"]]
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": evidence["chart_name"],
        "app.kubernetes.io/instance": release["name"],
    }
    stack_chart = next(r for r in dev.of_type("kubernetes:helm.sh/v3:Release") if "prometheus-stack" in r.name)
    assert stack_chart.urn in monitor.depends_on


def test_one_stack_per_reconciled_stack_converges_and_never_destroys(dev: Plan) -> None:
    stacks = {s["metadata"]["name"]: s["spec"] for s in objects(dev, "Stack", "zbi-control-plane")}
    assert set(stacks) == {"zbi-dev"}
    spec = stacks["zbi-dev"]
    assert spec["stack"] == "zbi-example/zbi/dev" and spec["projectRepo"] == CONTROL["repository"]
    assert (spec["branch"], spec["repoDir"], spec["resyncFrequencySeconds"]) == ("main", ".", 600)
    assert spec["refresh"] is True and spec["destroyOnFinalize"] is False
    # Pulumi Cloud: the token comes from a Secret made by hand, never from git or the stack's state.
    assert spec["envRefs"]["PULUMI_ACCESS_TOKEN"] == {
        "type": "Secret",
        "secret": {"name": "pulumi-credentials", "key": "accessToken"},
    }


def test_each_workspace_runs_as_its_stacks_own_role(dev: Plan) -> None:
    roles = {r.name: r for r in dev.of_type("aws:iam/role:Role")}
    for stack in ("dev",):
        spec = one(dev, "Stack", f"zbi-{stack}", "zbi-control-plane")["spec"]
        account = one(dev, "ServiceAccount", spec["serviceAccountName"], "zbi-control-plane")
        role = roles[f"dev-{stack}-reconciler"]
        assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] != ""
        trust = json.loads(role.inputs["assumeRolePolicy"])
        subjects = [v for s in trust["Statement"] for v in s["Condition"]["StringEquals"].values()]
        assert f"system:serviceaccount:zbi-control-plane:{stack}-reconciler" in subjects
        # The operator's workspaces must be able to delegate authentication (its docs/migration.md).
        assert CHART["workspaceNeedsAuthDelegator"]
        (binding,) = [
            b
            for b in objects(dev, "ClusterRoleBinding")
            if b["subjects"]
            == [{"kind": "ServiceAccount", "name": f"{stack}-reconciler", "namespace": "zbi-control-plane"}]
        ]
        assert binding["roleRef"]["name"] == "system:auth-delegator"
    # Only this stack's reconciler administers this cluster.
    admins = [
        a.name
        for a in dev.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        if a.inputs["policyArn"].endswith("AmazonEKSClusterAdminPolicy")
    ]
    assert admins == ["dev-reconciler-cluster-admin"]


def test_the_workspace_runs_the_image_pinned_by_digest(dev: Plan) -> None:
    spec = one(dev, "Stack", "zbi-dev", "zbi-control-plane")["spec"]["workspaceTemplate"]["spec"]
    assert spec["image"] == WORKSPACE_IMAGE and spec["securityProfile"] == "restricted"


def test_the_reconcilers_reads_cover_every_aws_resource_and_invoke_of_the_plans(plan_stack: PlanStack) -> None:
    """Sufficient for what it reconciles: its refresh reads every AWS resource type and invoke the plans contain
    (a type the table does not know fails here, not in the cluster at 3 am)."""
    dr = plan_stack("dr", merge={"zbi:dr": {"activate": True}, "zbi:dns": {"hostedZoneId": "Z0123456789ABCDEFGHIJ"}},
                    stack_outputs=PRIMARY_OUTPUTS)  # fmt: skip
    types: set[str] = set()
    for plan in (plan_stack("dev", merge={"zbi:controlPlane": CONTROL}), dr):
        types |= {r.type for r in plan.resources if r.type.startswith(("aws:", "eks:"))}
        types |= {token for token, _ in plan.invokes if token.startswith("aws:")}
    assert types - set(READ_ACTIONS) == set()


@pytest.mark.parametrize(
    ("stack", "merge", "message"),
    [
        (
            "local",
            {"zbi:controlPlane": {"repository": "https://github.com/x/y", "workspaceImage": WORKSPACE_IMAGE}},
            "a local stack",
        ),
        ("dev", {"zbi:controlPlane": {**CONTROL, "stacks": ["dev", "nope"]}}, "no Pulumi.nope.yaml"),
        ("dev", {"zbi:controlPlane": {**CONTROL, "stacks": ["dev", "local"]}}, "local is a local stack"),
        ("dev", {"zbi:controlPlane": {"repository": "git@github.com:x/y"}}, "zbi:controlPlane.repository"),
        ("dev", {"zbi:controlPlane": {**CONTROL, "stacks": ["dev", "dev"]}}, "listed twice"),
        # The DR stack's reconciler would run in the primary's cluster, without access to the DR cluster's API.
        ("dev", {"zbi:controlPlane": {**CONTROL, "stacks": ["dev", "dr"]}}, "dr runs on another cluster"),
        ("dev", {"zbi:controlPlane": {**CONTROL, "workspaceImage": "pulumi/pulumi:latest-nonroot"}}, "by digest"),
        ("dev", {"zbi:controlPlane": {k: v for k, v in CONTROL.items() if k != "workspaceImage"}}, "workspaceImage"),
    ],
)
def test_bad_control_plane_config_is_refused_before_anything(
    plan_stack: PlanStack, stack: str, merge: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_stack(stack, merge=merge)


def test_without_stacks_the_control_plane_reconciles_its_own_stack(plan_stack: PlanStack) -> None:
    plan = plan_stack(
        "dev", merge={"zbi:controlPlane": {"repository": CONTROL["repository"], "workspaceImage": WORKSPACE_IMAGE}}
    )
    (stack,) = objects(plan, "Stack", "zbi-control-plane")
    assert stack["spec"]["stack"] == "dev"  # no organization: a self-managed backend's name
    alerts = one(plan, "PrometheusRule", "zbi-alerts", "monitoring")["spec"]["groups"]
    assert any(r["alert"] == "StackReconcileFailing" for g in alerts for r in g["rules"])
