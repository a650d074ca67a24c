"""The AWS Load Balancer Controller behind an ACM front door: its IAM policy is upstream's less the documented
deviations and passes the analysers; its chart values are keys chart 3.5.0 reads; the front door's annotations are
the controller's documented ones with documented values; every other load balancer stays with the cloud provider.
Upstream evidence: tests/fixtures/upstream/aws-load-balancer-controller/ (controller v3.5.0, eks-charts 3.5.0)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.conftest import UPSTREAM, PlanStack
from tests.iam_analysis import (
    cloudsplaining_findings,
    escalation_findings,
    expand,
    listed,
    parliament_findings,
    trust_findings,
)
from tests.k8s_objects import objects
from tests.test_public_tls import ZONE
from tests.test_system_nodes import PLACED, SYSTEM
from zbi_infra import load_balancer_controller as lbc
from zbi_infra.plan.engine import Plan, PlannedResource

EVIDENCE = UPSTREAM / "aws-load-balancer-controller"
UPSTREAM_POLICY = json.loads((EVIDENCE / "iam_policy.json").read_text())
ANNOTATIONS_DOC = (EVIDENCE / "service-annotations.md").read_text()
CHART_DIR = EVIDENCE / "chart"
VPC = "vpc-0123456789abcdef0"
ACM = {"publicTls": {"provider": "acm"}}
NLB_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"


@pytest.fixture(scope="module")
def acm(plan_stack: PlanStack) -> Plan:
    # testnet (behind its gateway) with ACM and inbound P2P; wallets (no gateway) public without ACM.
    return plan_stack(
        "dev",
        merge={
            "zbi:dns": ZONE,
            "zbi:cluster": SYSTEM,
            "zbi:instances": {
                "testnet": {"endpoints": ACM, "node": {"inboundP2p": True}},
                "wallets": {"network": "testnet", "endpoints": {"publicGrpc": True, "hostnames": ["w.example.com"]}},
            },
        },
    )


def release(plan: Plan) -> PlannedResource:
    (found,) = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == lbc.CHART]
    return found


def load_balancers(plan: Plan) -> dict[str, dict]:
    return {
        f"{s['metadata']['namespace']}/{s['metadata']['name']}": s
        for s in objects(plan, "Service")
        if s["spec"].get("type") == "LoadBalancer"
    }


# --- the IAM policy -------------------------------------------------------------------------------------------


def grants(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(action, resource, conditions) for every action a statement's patterns cover: two policies grant the same
    when these sets are equal, however their statements are grouped or named."""
    return {
        (action, resource, json.dumps(statement.get("Condition", {}), sort_keys=True))
        for statement in document["Statement"]
        if statement["Effect"] == "Allow"
        for action in expand(listed(statement["Action"]))
        for resource in listed(statement["Resource"])
    }


def test_the_policy_is_upstreams_less_exactly_the_documented_deviations() -> None:
    ours, theirs = grants(json.loads(lbc.controller_policy(VPC))), grants(UPSTREAM_POLICY)
    sg = "arn:aws:ec2:*:*:security-group/*"
    retag = json.dumps(
        {"Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "true", "aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}},
        sort_keys=True,
    )
    tagged = json.dumps({"Null": {"aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}}, sort_keys=True)
    in_vpc = json.dumps({"ArnLike": {"ec2:Vpc": f"arn:aws:ec2:*:*:vpc/{VPC}"}}, sort_keys=True)
    ingress = ("ec2:authorizesecuritygroupingress", "ec2:revokesecuritygroupingress")
    assert theirs - ours == {
        ("ec2:createtags", sg, retag),  # no tag edits on existing security groups
        ("ec2:deletetags", sg, retag),
        ("elasticloadbalancing:modifyippools", "*", tagged),  # ALB IPAM pools
        *((action, "*", "{}") for action in ingress),  # ingress on any group of the account...
    }
    assert ours - theirs == {(action, "*", in_vpc) for action in ingress}  # ...only in the cluster's VPC
    assert len(lbc.DEVIATIONS) == 3


def test_upstreams_policy_trips_the_checks_the_deviations_answer() -> None:
    """Why zBI's policy is not upstream's verbatim: each analyser finding names a deviation."""
    assert any("ec2:createtags" in f for f in escalation_findings(UPSTREAM_POLICY))
    assert any("ModifyIpPools" in f for f in parliament_findings(UPSTREAM_POLICY))


def test_the_rendered_policy_and_trust_pass_every_analyser(acm: Plan) -> None:
    policy = json.loads(acm.named("dev-load-balancer-controller-policy").inputs["policy"])
    assert escalation_findings(policy) == []
    assert cloudsplaining_findings(policy) == {}
    assert parliament_findings(policy) == []
    trust = json.loads(acm.named("dev-load-balancer-controller").inputs["assumeRolePolicy"])
    assert trust_findings(trust) == []
    (statement,) = trust["Statement"]
    assert f"system:serviceaccount:{lbc.NAMESPACE}:{lbc.SERVICE_ACCOUNT}" in json.dumps(statement["Condition"])
    # The VPC condition names the stack's own VPC.
    (opener,) = [s for s in policy["Statement"] if s["Sid"] == "OpenNodeGroupsInThisVpc"]
    vpc_id = release(acm).inputs["values"]["vpcId"]
    assert vpc_id and opener["Condition"]["ArnLike"]["ec2:Vpc"] == f"arn:aws:ec2:*:*:vpc/{vpc_id}"


# --- the chart ------------------------------------------------------------------------------------------------


def paths(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Leaf paths of chart values; a list or a map the chart passes through whole counts as a leaf."""
    found = []
    for key, value in values.items():
        path = (*prefix, key)
        if isinstance(value, dict) and value and key not in ("annotations", "podDisruptionBudget", "resources",
                                                             "securityContext", "nodeSelector"):  # fmt: skip
            found += paths(value, path)
        else:
            found.append(path)
    return found


def test_every_value_is_a_key_of_the_charts_values_and_a_template_reads_it(acm: Plan) -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (lbc.CHART_VERSION, lbc.IMAGE_TAG)
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    templates = "".join(p.read_text() for p in (CHART_DIR / "templates").iterdir())
    values = release(acm).inputs["values"]
    assert release(acm).inputs["version"] == lbc.CHART_VERSION
    for path in paths(values):
        node = defaults
        for key in path[:-1]:
            node = node[key]
        assert path[-1] in node, path
        assert ".Values." + ".".join(path) in templates or ".Values." + ".".join(path[:-1]) in templates, path


def test_two_replicas_in_different_zones_under_a_budget_on_the_system_group(acm: Plan) -> None:
    values = release(acm).inputs["values"]
    # pdb.yaml renders the budget only with a non-empty podDisruptionBudget and more than one replica.
    pdb = (CHART_DIR / "templates" / "pdb.yaml").read_text()
    assert "if and .Values.podDisruptionBudget (gt (int .Values.replicaCount) 1)" in pdb
    assert values["replicaCount"] == 2 and values["podDisruptionBudget"] == {"maxUnavailable": 1}
    # The spread selects the chart's pods: its selectorLabels are the chart's name and the release's name.
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text()
    assert 'app.kubernetes.io/name: {{ include "aws-load-balancer-controller.name" . }}' in helpers
    assert "app.kubernetes.io/instance: {{ .Release.Name }}" in helpers
    name = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["name"]
    (spread,) = values["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": release(acm).inputs["name"],
    }
    assert {k: values[k] for k in PLACED} == PLACED
    assert values["securityContext"]["readOnlyRootFilesystem"] and values["resources"]["limits"]["memory"]
    # Region and VPC given: the nodes' IMDS hop limit keeps the pods from looking them up.
    assert values["region"] == "us-east-1" and values["clusterName"] == "zbi-dev"


def test_the_service_webhook_is_off_so_other_load_balancers_never_depend_on_the_controller(acm: Plan) -> None:
    webhook = (CHART_DIR / "templates" / "webhook.yaml").read_text()
    # With the value on, a mutating webhook (failurePolicy from serviceMutatorWebhookConfig: Fail) sees every Service.
    assert "{{- if .Values.enableServiceMutatorWebhook }}" in webhook
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert defaults["enableServiceMutatorWebhook"] is True
    assert defaults["serviceMutatorWebhookConfig"]["failurePolicy"] == "Fail"
    assert release(acm).inputs["values"]["enableServiceMutatorWebhook"] is False


def test_no_controller_without_an_acm_front_door(plan_stack: PlanStack) -> None:
    for plan in (plan_stack("dev"), plan_stack("local")):
        assert not [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == lbc.CHART]
        assert not [r for r in plan.resources if "load-balancer-controller" in r.name]


# --- the front door's annotations -----------------------------------------------------------------------------


def documented_annotations() -> set[str]:
    return set(re.findall(r"^\| \[(service\.beta\.kubernetes\.io/[a-z0-9.${}-]+) *\]", ANNOTATIONS_DOC, re.M))


def section(anchor: str) -> str:
    start = ANNOTATIONS_DOC.index(f'<a name="{anchor}">')
    return ANNOTATIONS_DOC[start : ANNOTATIONS_DOC.index('\n- <a name="', start + 1)]


def valid(annotation: str, value: str) -> bool:
    """The controller's documentation of `annotation` at v3.5.0 admits `value`."""
    short = annotation.removeprefix("service.beta.kubernetes.io/aws-load-balancer-")
    if short == "type":
        return value in re.findall(r"either `([\w-]+)` or `([\w-]+)`", section("lb-type"))[0]
    if short == "nlb-target-type":
        return value in re.findall(r"`(instance|ip)` mode", section("nlb-target-type"))
    if short == "scheme":
        return value in re.findall(r"`([\w-]+)`", section("lb-scheme").split("Valid values are")[1].split(".")[0])
    if short == "alpn-policy":
        return value in re.findall(r"^\s+- `(\w+)` ", section("alpn-policy"), re.M)
    if short == "backend-protocol":
        return value in re.findall(r"specify `(\w+)` or `(\w+)`", section("backend-protocol"))[0]
    if short == "ssl-negotiation-policy":
        return re.fullmatch(r"ELBSecurityPolicy-TLS13-1-2-\d{4}-\d{2}", value) is not None and value in section(
            "ssl-negotiation-policy"
        )
    if short == "attributes":
        return all(f"{pair}" in section("load-balancer-attributes") for pair in value.split(","))
    if short == "ssl-ports":
        return all(p.strip().isdigit() for p in value.split(","))
    if short == "ssl-cert":
        return value.startswith("arn:aws:acm:")
    return False


def test_the_acm_front_door_carries_only_documented_annotations_with_documented_values(acm: Plan) -> None:
    doors = load_balancers(acm)
    gateway = doors["zbi-testnet/gateway"]
    annotations = gateway["metadata"]["annotations"]
    assert annotations[NLB_TYPE] == "external"
    assert set(annotations) <= documented_annotations(), set(annotations) - documented_annotations()
    assert {k: v for k, v in annotations.items() if not valid(k, v)} == {}
    # ...and the check refuses what the documentation does not admit.
    assert not valid("service.beta.kubernetes.io/aws-load-balancer-alpn-policy", "HTTP2")
    assert not valid("service.beta.kubernetes.io/aws-load-balancer-scheme", "public")
    assert "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled" in section(
        "deprecated-attributes"
    )
    # TLS on the Service's 443, which is its only port.
    assert [p["port"] for p in gateway["spec"]["ports"]] == [int(annotations[lbc_key("ssl-ports")])]


def lbc_key(short: str) -> str:
    return f"service.beta.kubernetes.io/aws-load-balancer-{short}"


def test_the_front_door_keeps_client_addresses_the_allowlist_and_health_checks(acm: Plan) -> None:
    gateway = load_balancers(acm)["zbi-testnet/gateway"]
    # instance targets with Local: the documented defaults are client-IP preservation on and the health check on
    # spec.healthCheckNodePort (kube-proxy: healthy only where a ready pod runs), as with the cloud provider's NLB.
    assert gateway["metadata"]["annotations"][lbc_key("nlb-target-type")] == "instance"
    assert "preserve client IP is enabled by default for `instance` targets" in ANNOTATIONS_DOC
    assert "**Default**: `spec.healthCheckNodePort` when `externalTrafficPolicy=Local`" in ANNOTATIONS_DOC
    assert gateway["spec"]["externalTrafficPolicy"] == "Local"
    assert gateway["spec"]["loadBalancerSourceRanges"] == ["0.0.0.0/0"]
    assert "We recommend specifying CIDRs in the service `spec.loadBalancerSourceRanges`" in ANNOTATIONS_DOC
    assert "load_balancing.cross_zone.enabled=true" in gateway["metadata"]["annotations"][lbc_key("attributes")]


def test_every_other_load_balancer_stays_with_the_cloud_provider(acm: Plan) -> None:
    doors = load_balancers(acm)
    others = {name: s for name, s in doors.items() if name != "zbi-testnet/gateway"}
    # testnet's P2P (same instance, plain TCP) and wallets' light-wallet front door (no ACM).
    assert set(others) == {"zbi-testnet/zebrad-p2p", "zbi-wallets/lightwalletd-grpc"}
    for service in others.values():
        annotations = service["metadata"]["annotations"]
        assert annotations[NLB_TYPE] == "nlb" and lbc_key("ssl-cert") not in annotations
    # The legacy provider leaves a Service of type external to the controller.
    assert "recent versions of the legacy cloud provider ignore the Service resource" in ANNOTATIONS_DOC


def test_the_acm_front_door_is_deleted_before_the_controller(acm: Plan) -> None:
    """The controller puts a finalizer on its Services: deleted after it, a Service would never go."""
    controller = release(acm).urn
    (gateway,) = [r for r in acm.of_type("kubernetes:core/v1:Service") if r.name == "testnet-gateway-service"]
    assert controller in gateway.depends_on
    p2p = [r for r in acm.of_type("kubernetes:core/v1:Service") if r.name.endswith("p2p")]
    assert p2p and all(controller not in r.depends_on for r in p2p)


def test_the_capacity_check_counts_both_controller_pods(acm: Plan) -> None:
    from zbi_infra.plan.capacity import planned_pods

    name = release(acm).inputs["name"]
    pods = [p for p in planned_pods(acm) if p.name.startswith(f"{name}#")]
    assert [(p.count, p.millicpu, p.mib) for p in pods] == [(1, 50, 128), (1, 50, 128)]
