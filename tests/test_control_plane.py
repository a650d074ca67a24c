"""ZbiControlPlane: the Pulumi Kubernetes Operator from its pinned chart, one Stack per reconciled zBI stack (valid
against the operator's CRD), each on its own IRSA role whose policy is scoped to that stack."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import UPSTREAM, PlanStack
from tests.k8s_objects import objects, one
from zbi_infra.control_plane import OPERATOR_CHART, reconciler_policy
from zbi_infra.errors import ConfigError
from zbi_infra.plan.engine import Plan

CHART = json.loads((UPSTREAM / "pulumi-kubernetes-operator" / "chart.json").read_text())
CONTROL = {"repository": "https://github.com/zbi-example/zbi", "organization": "zbi-example", "stacks": ["dev", "dr"]}


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
    assert set(stacks) == {"zbi-dev", "zbi-dr"}
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
    for stack in ("dev", "dr"):
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


def statements(policy: str) -> list[dict[str, Any]]:
    return json.loads(policy)["Statement"]


def test_the_reconcilers_policy_is_scoped_to_its_stack() -> None:
    policy = statements(reconciler_policy(stack="dev", cluster_name="zbi-dev", regions=["us-east-1", "us-west-2"],
                                          account_id="123456789012"))  # fmt: skip
    for statement in policy:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert "*" not in actions and "iam:*" not in actions
        writes = [a for a in actions if not a.split(":")[1].startswith(("Describe", "Get", "List"))]
        if not writes or statement["Sid"] == "Read":
            continue
        scoped = statement["Resource"] != "*"
        conditions = json.dumps(statement.get("Condition", {}))
        # Every write is limited to named resources or by a condition (the stack's tag, its regions, a service).
        assert scoped or "zbi.io/stack" in conditions or "iam:AWSServiceName" in conditions, statement["Sid"]
        if statement["Sid"] in ("ChangeTagged", "CreateTagged", "Cluster"):
            assert '"us-east-1", "us-west-2"' in conditions
    read = next(s for s in policy if s["Sid"] == "Read")
    assert all(a.split(":")[1].startswith(("Describe", "Get", "List")) for a in read["Action"])
    roles = next(s for s in policy if s["Sid"] == "Roles")
    assert roles["Resource"][0] == "arn:aws:iam::123456789012:role/zbi-dev-*"


@pytest.mark.parametrize(
    ("stack", "merge", "message"),
    [
        ("local", {"zbi:controlPlane": {"repository": "https://github.com/x/y"}}, "a local stack"),
        ("dev", {"zbi:controlPlane": {**CONTROL, "stacks": ["dev", "nope"]}}, "no Pulumi.nope.yaml"),
        ("dev", {"zbi:controlPlane": {**CONTROL, "stacks": ["dev", "local"]}}, "local is a local stack"),
        ("dev", {"zbi:controlPlane": {"repository": "git@github.com:x/y"}}, "zbi:controlPlane.repository"),
        ("dev", {"zbi:controlPlane": {**CONTROL, "stacks": ["dev", "dev"]}}, "listed twice"),
    ],
)
def test_bad_control_plane_config_is_refused_before_anything(
    plan_stack: PlanStack, stack: str, merge: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_stack(stack, merge=merge)


def test_without_stacks_the_control_plane_reconciles_its_own_stack(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev", merge={"zbi:controlPlane": {"repository": CONTROL["repository"]}})
    (stack,) = objects(plan, "Stack", "zbi-control-plane")
    assert stack["spec"]["stack"] == "dev"  # no organization: a self-managed backend's name
    alerts = one(plan, "PrometheusRule", "zbi-alerts", "monitoring")["spec"]["groups"]
    assert any(r["alert"] == "StackReconcileFailing" for g in alerts for r in g["rules"])
