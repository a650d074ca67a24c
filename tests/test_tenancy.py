"""Instance administrators hold a Role made for the job, each instance's namespace a quota of exactly zBI's load
balancers and node ports, and the cluster's ValidatingAdmissionPolicies refuse what would undo zBI's guarantees —
their CEL expressions evaluated by a real CEL implementation (cel-python) against admitted and refused objects."""

from __future__ import annotations

import copy
from typing import Any

import celpy
import kubernetes_validate
import pytest

from tests.conftest import PlanStack
from tests.k8s_objects import objects, one
from zbi_infra.admission import POLICIES
from zbi_infra.instance_admins import ROLE_NAME, instance_admins_group
from zbi_infra.plan.engine import Plan

TENANTS = {
    "other": {"network": "testnet", "endpoints": {"publicGrpc": False, "hostnames": []}},
    "public": {"network": "mainnet", "node": {"inboundP2p": True}},
}
ADMIN = {"username": "arn:aws:sts::123456789012:assumed-role/zbi-testnet-operators/alice",
         "groups": ["zbi-instance-admins", "zbi-instance-admins-testnet", "system:authenticated"]}  # fmt: skip
DEPLOYER = {"username": "arn:aws:sts::123456789012:assumed-role/zbi-deploy/gha", "groups": ["system:authenticated"]}


@pytest.fixture(scope="module")
def dev(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:instances": TENANTS})


def admits(policy: str, obj: dict[str, Any] | None, *, namespace: dict[str, Any], user: dict[str, Any]) -> bool:
    """Every validation of `policy` true for this request, as the API server's CEL evaluates it."""
    env = celpy.Environment()
    activation = {
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(None),
        "request": celpy.json_to_cel({"userInfo": user, "operation": "CREATE" if obj else "DELETE"}),
        "namespaceObject": celpy.json_to_cel(namespace),
    }
    results = [env.program(env.compile(v["expression"])).evaluate(activation) for v in POLICIES[policy][1]]
    assert all(isinstance(r, celpy.celtypes.BoolType) for r in results), results
    return all(bool(r) for r in results)


def namespace_object(plan: Plan, name: str) -> dict[str, Any]:
    found = one(plan, "Namespace", name)
    return {"metadata": {**found["metadata"], "labels": {**found["metadata"].get("labels", {}),
                                                         "kubernetes.io/metadata.name": name}}}  # fmt: skip


def claims(plan: Plan) -> list[tuple[str, dict[str, Any]]]:
    """Every claim zBI's StatefulSets make, as the controller creates them."""
    found = []
    for workload in objects(plan, "StatefulSet"):
        for template in workload["spec"].get("volumeClaimTemplates", []):
            found.append((workload["metadata"]["namespace"], template))
    return found


# ---- claims only with their own instance's classes ----------------------------------------------------------------


def test_every_claim_zbi_makes_is_admitted_and_another_tenants_class_is_refused(dev: Plan) -> None:
    policy = "zbi-claims-use-their-instances-class"
    made = claims(dev)
    assert {ns for ns, _ in made} >= {"zbi-testnet", "zbi-other"}
    for namespace, claim in made:
        assert admits(policy, claim, namespace=namespace_object(dev, namespace), user=DEPLOYER), (namespace, claim)
    chain_claim = next(c for ns, c in made if ns == "zbi-testnet" and c["metadata"]["name"] == "data")
    stolen = copy.deepcopy(chain_claim)
    # Tenant `other` asks for testnet's class: its volume would carry testnet's backup tags.
    assert not admits(policy, stolen, namespace=namespace_object(dev, "zbi-other"), user=ADMIN)
    assert not admits(policy, stolen, namespace={"metadata": {"name": "default"}}, user=DEPLOYER)
    plain = {"metadata": {"name": "scratch"}, "spec": {"storageClassName": "gp3"}}
    assert admits(policy, plain, namespace=namespace_object(dev, "zbi-other"), user=ADMIN)
    assert admits(
        policy, {"metadata": {"name": "x"}, "spec": {}}, namespace={"metadata": {"name": "default"}}, user=ADMIN
    )


# ---- no LoadBalancer Service but zBI's front doors ----------------------------------------------------------------


def test_zbis_public_services_are_admitted_and_a_public_rpc_is_refused(dev: Plan) -> None:
    policy = "zbi-public-services-are-front-doors"
    public = [s for s in objects(dev, "Service") if s["spec"].get("type") == "LoadBalancer"]
    assert {s["metadata"]["namespace"] for s in public} >= {"zbi-testnet", "zbi-public"}
    for service in objects(dev, "Service"):
        ns = namespace_object(dev, service["metadata"]["namespace"])
        assert admits(policy, service, namespace=ns, user=DEPLOYER), service["metadata"]
    (rpc,) = [s for s in objects(dev, "Service", "zbi-testnet") if any(p["name"] == "rpc" for p in s["spec"]["ports"])]
    ns = namespace_object(dev, "zbi-testnet")
    for kind in ("LoadBalancer", "NodePort"):
        exposed = copy.deepcopy(rpc)
        exposed["spec"]["type"] = kind
        assert not admits(policy, exposed, namespace=ns, user=DEPLOYER), kind
    front = next(s for s in public if s["spec"]["selector"]["app.kubernetes.io/component"] != "full-node")
    by_number = copy.deepcopy(front)
    by_number["spec"]["ports"] = [{"name": "https", "port": 443, "targetPort": 18232}]
    assert not admits(policy, by_number, namespace=ns, user=DEPLOYER)
    no_selector = copy.deepcopy(front)
    no_selector["spec"].pop("selector")  # a load balancer in front of hand-made endpoints (the node's address)
    assert not admits(policy, no_selector, namespace=ns, user=DEPLOYER)
    to_the_node = copy.deepcopy(front)
    to_the_node["spec"]["selector"]["app.kubernetes.io/component"] = "full-node"
    assert not admits(policy, to_the_node, namespace=ns, user=DEPLOYER)


# ---- instance administrators keep zBI's guarantees ---------------------------------------------------------------


def test_instance_admins_cannot_touch_what_zbi_manages_but_zbi_can(dev: Plan) -> None:
    policy = "zbi-instance-admins-keep-guarantees"
    ns = namespace_object(dev, "zbi-testnet")
    network_policy = objects(dev, "NetworkPolicy", "zbi-testnet")[0]
    assert not admits(policy, network_policy, namespace=ns, user=ADMIN)
    assert not admits(policy, None, namespace=ns, user=ADMIN)  # a DELETE
    assert admits(policy, network_policy, namespace=ns, user=DEPLOYER)
    assert admits(policy, None, namespace=ns, user={"username": "system:serviceaccount:kube-system:gc"})
    (constraints, _) = POLICIES[policy]
    guarded = {r for rule in constraints["resourceRules"] for r in rule["resources"]}
    assert {"networkpolicies", "configmaps", "secrets", "services", "roles", "rolebindings"} <= guarded


def test_the_policies_are_rendered_and_bound_to_deny(dev: Plan) -> None:
    policies = {p["metadata"]["name"]: p for p in objects(dev, "ValidatingAdmissionPolicy")}
    bindings = {b["metadata"]["name"]: b for b in objects(dev, "ValidatingAdmissionPolicyBinding")}
    assert set(policies) == set(bindings) == set(POLICIES)
    for name, binding in bindings.items():
        assert binding["spec"] == {"policyName": name, "validationActions": ["Deny"]}
        assert policies[name]["spec"]["failurePolicy"] == "Fail"
        # Every expression compiles as CEL.
        for validation in policies[name]["spec"]["validations"]:
            celpy.Environment().compile(validation["expression"])


# ---- the Role, the access entries, the quota ---------------------------------------------------------------------


def test_instance_admins_hold_the_role_and_no_eks_access_policy(dev: Plan) -> None:
    (entry,) = [e for e in dev.of_type("aws:eks/accessEntry:AccessEntry") if e.name == "testnet-admin-0"]
    assert entry.inputs["kubernetesGroups"] == ["zbi-instance-admins", instance_admins_group("testnet")]
    assert not [
        a for a in dev.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation") if "testnet" in a.name
    ]
    role = one(dev, "Role", ROLE_NAME, "zbi-testnet")
    binding = one(dev, "RoleBinding", ROLE_NAME, "zbi-testnet")
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                    "name": "zbi-instance-admins-testnet"}]  # fmt: skip
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}  # fmt: skip
    assert ("", "pods", "delete") in granted and ("", "pods/log", "get") in granted
    for forbidden in [("", "secrets", "get"), ("", "secrets", "list"), ("", "pods/exec", "create"),
                      ("", "pods/portforward", "create"), ("", "configmaps", "update"), ("", "configmaps", "patch"),
                      ("networking.k8s.io", "networkpolicies", "delete"), ("", "services", "create"),
                      ("rbac.authorization.k8s.io", "rolebindings", "create")]:  # fmt: skip
        assert forbidden not in granted, forbidden
    assert all("*" not in rule["verbs"] and "*" not in rule["resources"] for rule in role["rules"])


@pytest.mark.parametrize("instance", ["testnet", "other", "public"])
def test_the_quota_allows_exactly_zbis_load_balancers_and_node_ports(dev: Plan, instance: str) -> None:
    namespace = f"zbi-{instance}"
    hard = one(dev, "ResourceQuota", "instance-quota", namespace)["spec"]["hard"]
    services = objects(dev, "Service", namespace)
    balancers = [s for s in services if s["spec"].get("type") == "LoadBalancer"]
    node_ports = sum(len(s["spec"]["ports"]) for s in services if s["spec"].get("type") in ("LoadBalancer", "NodePort"))
    assert hard["services.loadbalancers"] == str(len(balancers))
    assert hard["services.nodeports"] == str(node_ports)
    if instance == "other":
        assert hard["services.loadbalancers"] == hard["services.nodeports"] == "0"


def test_the_objects_validate_against_kubernetes_schemas(dev: Plan) -> None:
    from tests.test_manifests import KUBERNETES_VERSION

    kinds = ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "Role", "RoleBinding", "ResourceQuota"]
    checked = [o for kind in kinds for o in objects(dev, kind)]
    assert {o["kind"] for o in checked} == set(kinds)
    for obj in checked:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    broken = copy.deepcopy(objects(dev, "ValidatingAdmissionPolicyBinding")[0])
    broken["spec"]["validationActions"] = "Deny"  # a list in the schema
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_server_certificates_live_90_days_and_renew_a_month_before(dev: Plan) -> None:
    certificates = dev.of_type("tls:index/locallySignedCert:LocallySignedCert")
    assert certificates
    for certificate in certificates:
        assert certificate.inputs["validityPeriodHours"] <= 90 * 24
        assert certificate.inputs["earlyRenewalHours"] >= certificate.inputs["validityPeriodHours"] // 3
        assert "cert_signing" not in certificate.inputs["allowedUses"]
