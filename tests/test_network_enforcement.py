"""NetworkPolicies protect only where the cluster enforces them: the rendered VPC CNI add-on configuration turns the
network policy agent on (validated against the add-on's published configuration schema, vendored), and the
reachability of every node's RPC is computed from what the cluster enforces — with enforcement off, every pod of
every tenant reaches it, so the same model says so."""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import Any

import jsonschema
import pytest

from tests.conftest import UPSTREAM, PlanStack
from tests.k8s_objects import objects
from zbi_infra.plan.engine import Plan
from zbi_infra.vpc_cni import enforces_network_policies

PUBLISHED = json.loads((UPSTREAM / "aws" / "vpc-cni-addon-configuration.json").read_text())
# The EKS schemas type booleans and integers as strings with a format (`"format": "boolean", "type": "string"`):
# the add-on reads "true"/"false" and decimal digits.
FORMATS = jsonschema.FormatChecker()
FORMATS.checks("boolean")(lambda value: not isinstance(value, str) or value in ("true", "false"))
FORMATS.checks("integer")(lambda value: not isinstance(value, str) or value.lstrip("-").isdigit())
TENANTS = {"other": {"network": "testnet", "endpoints": {"publicGrpc": False, "hostnames": []}}}
POD_CIDR = ipaddress.ip_network("10.20.0.0/16")  # dev's VPC: VPC CNI gives pods VPC addresses


def schema_problems(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft6Validator(PUBLISHED["configurationSchema"], format_checker=FORMATS)
    return [error.message for error in validator.iter_errors(values)]


@pytest.fixture(scope="module")
def dev(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:instances": TENANTS})


def addon_values(plan: Plan) -> str | None:
    (addon,) = [r for r in plan.of_type("aws:eks/addon:Addon") if r.inputs["addonName"] == "vpc-cni"]
    return addon.inputs.get("configurationValues")


def test_the_rendered_configuration_turns_enforcement_on_and_fits_the_published_schema(dev: Plan) -> None:
    values = json.loads(addon_values(dev) or "{}")
    assert PUBLISHED["addonName"] == "vpc-cni"
    assert schema_problems(values) == []
    assert values["enableNetworkPolicy"] == "true"


@pytest.mark.parametrize(
    "values",
    [{"enableNetworkPolicy": True}, {"enableNetworkPolicy": "yes"}, {"enableNetworkPolicies": "true"}],
)
def test_the_schema_refuses_what_eks_would_refuse(values: dict[str, Any]) -> None:
    assert schema_problems(values) != []


# ---- reachability, as the cluster enforces it --------------------------------------------------------------------


def _matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        value, operator = labels.get(expression["key"]), expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


class Cluster:
    """The plan's namespaces, pods and NetworkPolicies; ingress decided as Kubernetes specifies it, or not at all
    when the network plugin does not enforce policies."""

    def __init__(self, plan: Plan):
        self.enforced = enforces_network_policies(addon_values(plan))
        self.namespace_labels = {
            n["metadata"]["name"]: {
                **n["metadata"].get("labels", {}),
                "kubernetes.io/metadata.name": n["metadata"]["name"],
            }
            for n in objects(plan, "Namespace")
        }
        self.policies = objects(plan, "NetworkPolicy")
        self.workloads = [w for kind in ("StatefulSet", "Deployment") for w in objects(plan, kind)]

    def pod(self, namespace: str, name: str) -> tuple[str, dict[str, str], dict[str, int]]:
        (workload,) = [
            w for w in self.workloads if (w["metadata"].get("namespace"), w["metadata"]["name"]) == (namespace, name)
        ]
        template = workload["spec"]["template"]
        ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        return namespace, template["metadata"]["labels"], ports

    def _peer(self, peer: dict[str, Any], policy_namespace: str, source: tuple[str, dict[str, str], str]) -> bool:
        namespace, labels, address = source
        if "ipBlock" in peer:
            block = peer["ipBlock"]
            ip = ipaddress.ip_address(address)
            return ip in ipaddress.ip_network(block["cidr"]) and not any(
                ip in ipaddress.ip_network(e) for e in block.get("except", [])
            )
        if "namespaceSelector" in peer:
            in_namespace = _matches(peer["namespaceSelector"], self.namespace_labels.get(namespace, {}))
        else:
            in_namespace = namespace == policy_namespace
        return in_namespace and _matches(peer.get("podSelector"), labels)

    def reaches(
        self, source: tuple[str, dict[str, str]], target: tuple[str, dict[str, str], dict[str, int]], port: str
    ) -> bool:
        if not self.enforced:
            return True  # a policy the cluster does not enforce protects nothing
        namespace, labels, ports = target
        number = ports[port]
        selecting = [
            p
            for p in self.policies
            if p["metadata"]["namespace"] == namespace
            and _matches(p["spec"].get("podSelector"), labels)
            and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        ]
        if not selecting:
            return True
        who = (*source, str(next(iter(POD_CIDR.hosts()))))
        for policy in selecting:
            for rule in policy["spec"].get("ingress") or []:
                port_ok = not rule.get("ports") or any(p.get("port") in (number, port) for p in rule["ports"])
                peer_ok = not rule.get("from") or any(self._peer(peer, namespace, who) for peer in rule["from"])
                if port_ok and peer_ok:
                    return True
        return False


def test_no_other_tenants_pod_reaches_a_nodes_rpc(dev: Plan) -> None:
    cluster = Cluster(dev)
    node = cluster.pod("zbi-testnet", "zebrad")
    gateway = cluster.pod("zbi-testnet", "gateway")
    other_tenant = cluster.pod("zbi-other", "lightwalletd")
    assert cluster.enforced
    # A pod of another tenant, even one labelled as a light-wallet or a gateway, is refused at the node's RPC...
    assert not cluster.reaches(other_tenant[:2], node, "rpc")
    assert not cluster.reaches(("zbi-other", {**gateway[1]}), node, "rpc")
    assert not cluster.reaches(("default", {}), node, "rpc")
    # ...while the instance's own gateway gets through, and anyone may speak P2P.
    assert cluster.reaches(gateway[:2], node, "rpc")
    assert cluster.reaches(("default", {}), node, "p2p")


def test_without_enforcement_the_same_policies_protect_nothing(dev: Plan) -> None:
    unenforced = copy.deepcopy(dev)
    (addon,) = [r for r in unenforced.of_type("aws:eks/addon:Addon") if r.inputs["addonName"] == "vpc-cni"]
    addon.inputs.pop("configurationValues", None)
    cluster = Cluster(unenforced)
    assert not cluster.enforced
    assert cluster.reaches(("default", {}), cluster.pod("zbi-testnet", "zebrad"), "rpc")
