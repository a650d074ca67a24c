"""Relationships between rendered objects, not literals: every selector finds the pods it is meant for, every port it
names exists, disruption budgets neither block drains nor protect nothing, NetworkPolicies let exactly the intended
flows through, and every per-zone AWS resource belongs to the zone its name says."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from tests.conftest import PlanStack
from tests.k8s_objects import objects
from tests.netpol_model import Pod, outside, reachable, selects
from zbi_infra.plan.engine import Plan
from zbi_infra.plan.mocks import zones_of
from zbi_infra.policies import Resource, network_policy_blocks_are_valid

VARIANTS = {
    "regnet": {"network": "regtest", "node": {"replicas": 3}, "lightwallet": {"kind": "none"}},
    "zaino": {"network": "testnet", "lightwallet": {"kind": "zaino"}, "quota": {"headroomPercent": 0}},
    "private": {"network": "testnet", "endpoints": {"publicGrpc": False}},
    # A light-wallet server smaller than its wait-for-node init container, and no headroom: the quota must count the
    # init container (a pod's effective request is the larger of its containers' sum and its largest init container).
    "tiny": {
        "network": "testnet",
        "lightwallet": {"resources": {"cpu": "5m", "memory": "8Mi"}},
        "endpoints": {"publicGrpc": False},
        "quota": {"headroomPercent": 0},
    },
    "legacy": {"network": "regtest", "node": {"kind": "zcashd"}, "endpoints": {"publicGrpc": False}},
    "public": {
        "network": "mainnet",
        "node": {"inboundP2p": True},
        "endpoints": {"publicGrpc": True, "allowedCidrs": ["34.192.0.0/12", "52.94.0.0/22"]},
    },
}
ALL = ["testnet", *VARIANTS]


@pytest.fixture(scope="module")
def plan(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:instances": VARIANTS})


@dataclass(frozen=True)
class WorkloadPod(Pod):
    """A pod of the plan, named by its workload (tests/test_monitoring.py reads `.workload`)."""

    @property
    def workload(self) -> str:
        return self.name


def pods(plan: Plan, namespace: str) -> list[WorkloadPod]:
    """One model pod per workload: its template's labels and named container ports."""
    found = []
    for workload in objects(plan, "StatefulSet", namespace) + objects(plan, "Deployment", namespace):
        template = workload["spec"]["template"]
        ports = {
            p.get("name", str(p["containerPort"])): p["containerPort"]
            for c in template["spec"]["containers"]
            for p in c.get("ports", [])
        }
        found.append(
            WorkloadPod(namespace, template["metadata"]["labels"], ports=ports, name=workload["metadata"]["name"])
        )
    return found


def port_number(pod: Pod, port: int | str) -> int | None:
    if isinstance(port, int):
        return port if port in pod.ports.values() else None
    return pod.ports.get(port)


@pytest.mark.parametrize("instance", ALL)
def test_every_selector_resolves_to_its_own_pods_and_ports(plan: Plan, instance: str) -> None:
    namespace = f"zbi-{instance}"
    here = pods(plan, namespace)
    assert here
    for workload in objects(plan, "StatefulSet", namespace) + objects(plan, "Deployment", namespace):
        template = workload["spec"]["template"]
        own = template["metadata"]["labels"]
        assert selects(workload["spec"]["selector"], own)
        # ... and no other workload's pods: a shared selector would make two controllers fight over pods.
        assert [p.name for p in here if selects(workload["spec"]["selector"], p.labels)] == [
            workload["metadata"]["name"]
        ]
        for spread in template["spec"].get("topologySpreadConstraints", []):
            assert spread.get("labelSelector"), "a spread constraint without a selector spreads nothing"
            assert selects(spread["labelSelector"], own)
        anti = template["spec"].get("affinity", {}).get("podAntiAffinity", {})
        for term in anti.get("requiredDuringSchedulingIgnoredDuringExecution", []):
            assert selects(term["labelSelector"], own)
    for service in objects(plan, "Service", namespace):
        targets = [p for p in here if selects({"matchLabels": service["spec"]["selector"]}, p.labels)]
        assert len(targets) == 1, (service["metadata"]["name"], [p.name for p in targets])
        for port in service["spec"]["ports"]:
            assert port_number(targets[0], port["targetPort"]), (service["metadata"]["name"], port)
    for hpa in objects(plan, "HorizontalPodAutoscaler", namespace):
        ref = hpa["spec"]["scaleTargetRef"]
        kinds = {w["metadata"]["name"]: w["kind"] for w in objects(plan, "StatefulSet", namespace)}
        kinds |= {w["metadata"]["name"]: w["kind"] for w in objects(plan, "Deployment", namespace)}
        assert kinds.get(ref["name"]) == ref["kind"], ref
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("instance", ALL)
def test_disruption_budgets_protect_one_workload_and_never_block_a_drain(plan: Plan, instance: str) -> None:
    namespace = f"zbi-{instance}"
    workloads = objects(plan, "StatefulSet", namespace) + objects(plan, "Deployment", namespace)
    replicas = {w["metadata"]["name"]: w["spec"]["replicas"] for w in workloads}
    for budget in objects(plan, "PodDisruptionBudget", namespace):
        protected = [p for p in pods(plan, namespace) if selects(budget["spec"]["selector"], p.labels)]
        assert len(protected) == 1, budget["metadata"]["name"]
        spec = budget["spec"]
        if "maxUnavailable" in spec:
            assert isinstance(spec["maxUnavailable"], int) and spec["maxUnavailable"] >= 1
        else:
            assert spec["minAvailable"] < replicas[protected[0].name]
        # Only with two or more replicas: one replica behind a budget would block every node drain.
        assert replicas[protected[0].name] >= 2
    for workload, count in replicas.items():
        budgets = [
            b
            for b in objects(plan, "PodDisruptionBudget", namespace)
            if any(selects(b["spec"]["selector"], p.labels) for p in pods(plan, namespace) if p.name == workload)
        ]
        assert len(budgets) == (1 if count >= 2 else 0), workload


# ---- quotas: an instance's own pods are always admitted ----------------------------------------------------------


def _cpu(value: str) -> float:
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def _bytes(value: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return float(value[:-2]) * units[value[-2:]] if value[-2:] in units else float(value)


@pytest.mark.parametrize("instance", ALL)
def test_the_quota_admits_every_pod_of_the_instance_at_its_largest(plan: Plan, instance: str) -> None:
    """Every workload at its HPA maximum plus its rollout surge, each pod at its effective requests (containers'
    sum, or its largest init container), and every claim of every replica: within the namespace's quota."""
    namespace = f"zbi-{instance}"
    (quota,) = objects(plan, "ResourceQuota", namespace)
    hard = quota["spec"]["hard"]
    maxima = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["maxReplicas"]
        for h in objects(plan, "HorizontalPodAutoscaler", namespace)
    }
    used = {"requests.cpu": 0.0, "requests.memory": 0.0, "limits.cpu": 0.0, "limits.memory": 0.0, "pods": 0.0,
            "requests.storage": 0.0, "persistentvolumeclaims": 0.0}  # fmt: skip
    # CronJobs too: one pod at a time, as their concurrencyPolicy Forbid allows.
    crons = objects(plan, "CronJob", namespace)
    assert all(c["spec"]["concurrencyPolicy"] == "Forbid" for c in crons)
    for workload in objects(plan, "StatefulSet", namespace) + objects(plan, "Deployment", namespace) + crons:
        spec = workload["spec"]
        if workload["kind"] == "CronJob":
            count, spec = 1, spec["jobTemplate"]["spec"]
        else:
            count = maxima.get(workload["metadata"]["name"], spec["replicas"])
        if workload["kind"] == "Deployment":
            surge = spec.get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", "25%")
            assert isinstance(surge, int), "a percentage surge would make the count depend on rounding"
            count += surge
        pod = spec["template"]["spec"]
        for kind in ("requests", "limits"):
            for container in pod["containers"] + pod.get("initContainers", []):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), (workload["metadata"]["name"], kind)
            cpu = max([sum(_cpu(c["resources"][kind]["cpu"]) for c in pod["containers"]),
                       *(_cpu(c["resources"][kind]["cpu"]) for c in pod.get("initContainers", []))])  # fmt: skip
            memory = max([sum(_bytes(c["resources"][kind]["memory"]) for c in pod["containers"]),
                          *(_bytes(c["resources"][kind]["memory"]) for c in pod.get("initContainers", []))])  # fmt: skip
            used[f"{kind}.cpu"] += count * cpu
            used[f"{kind}.memory"] += count * memory
        used["pods"] += count
        for claim in spec.get("volumeClaimTemplates", []):
            used["requests.storage"] += count * _bytes(claim["spec"]["resources"]["requests"]["storage"])
            used["persistentvolumeclaims"] += count
    headroom = 1 + VARIANTS.get(instance, {}).get("quota", {}).get("headroomPercent", 25) / 100
    rounding = {"cpu": 0.001, "memory": 2**20, "storage": 2**30}
    for key, value in used.items():
        limit = _cpu(hard[key]) if key.endswith("cpu") else _bytes(hard[key])
        assert value <= limit, (key, value, limit)
        # Exactly the footprint and its headroom (rounded up): an uncounted pod or claim would show here.
        assert value * headroom <= limit + 1e-9 < value * headroom + rounding.get(key.split(".")[-1], 1), (key, value)


# ---- NetworkPolicies: who may reach what (tests/netpol_model.py follows the API's semantics) ----------------------

ELSEWHERE = Pod("other", {}, address="10.20.40.7", name="a pod of another namespace")
MONITORING = Pod("monitoring", {}, {"zbi.io/monitoring": "true"}, address="10.20.41.8", name="monitoring")
GRPC_CLIENT = Pod("apps", {"zbi.io/grpc-client": "true"}, address="10.20.42.9", name="a labelled gRPC client")
INTERNET = outside("203.0.113.7")


def policies(plan: Plan) -> list[dict[str, Any]]:
    return objects(plan, "NetworkPolicy")


def allowed(plan: Plan, source: Pod, target: Pod, port: str) -> bool:
    return reachable(policies(plan), source, target, port)


def pod(plan: Plan, instance: str, workload: str) -> Pod:
    (found,) = [p for p in pods(plan, f"zbi-{instance}") if p.name == workload]
    return found


def inside(p: Pod) -> Pod:
    """A pod of the plan as a source, with an address inside the VPC (ipBlocks are matched against pod IPs too)."""
    return replace(p, address="10.20.43.10")


def every_pod(plan: Plan) -> list[Pod]:
    return [inside(p) for instance in ALL for p in pods(plan, f"zbi-{instance}")]


@pytest.mark.parametrize("instance", ALL)
def test_only_the_instances_own_rpc_clients_reach_its_node_rpc(plan: Plan, instance: str) -> None:
    """The light-wallet tier and the gateway of the same instance, nobody else: no pod of another instance, of
    another namespace, of monitoring, and no address outside the cluster. An instance with neither (regnet: no
    light-wallet tier, no access file) has no RPC client at all."""
    namespace = f"zbi-{instance}"
    node = next(p for p in pods(plan, namespace) if p.labels.get("app.kubernetes.io/component") == "full-node")
    expected = {
        f"{namespace}/{p.name}"
        for p in pods(plan, namespace)
        if p.labels.get("app.kubernetes.io/component") in {"light-wallet", "gateway"}
    }
    sources = [*every_pod(plan), ELSEWHERE, MONITORING, GRPC_CLIENT, INTERNET, outside("10.20.0.5")]
    reaching = {f"{s.namespace}/{s.name}" for s in sources if allowed(plan, s, node, "rpc")}
    assert reaching == expected, instance
    assert expected or instance == "regnet"


def test_no_rule_of_any_policy_admits_every_source_or_destination(plan: Plan) -> None:
    """A rule whose `from`/`to` is missing or empty admits everyone (the API's words); zBI always names its peers."""
    for policy in policies(plan):
        spec = policy["spec"]
        for direction, peers in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction) or []:
                assert rule.get(peers), (policy["metadata"]["name"], direction, rule)


@pytest.mark.parametrize("instance", ALL)
def test_every_port_a_policy_opens_is_a_port_its_pods_listen_on(plan: Plan, instance: str) -> None:
    """An ingress rule's port that no selected pod listens on opens nothing today and whatever listens there
    tomorrow (zcashd serves no metrics port: its pods get no metrics rule)."""
    namespace = f"zbi-{instance}"
    for policy in objects(plan, "NetworkPolicy", namespace):
        selected = [p for p in pods(plan, namespace) if selects(policy["spec"]["podSelector"], p.labels)]
        for rule in policy["spec"].get("ingress") or []:
            for entry in rule.get("ports") or []:
                for p in selected:
                    assert port_number(p, entry["port"]), (policy["metadata"]["name"], p.name, entry)


@pytest.mark.parametrize("instance", ALL)
def test_public_networks_reach_the_nodes_p2p_and_a_regtest_network_never(plan: Plan, instance: str) -> None:
    namespace = f"zbi-{instance}"
    node = next(p for p in pods(plan, namespace) if p.labels.get("app.kubernetes.io/component") == "full-node")
    regtest = (VARIANTS.get(instance) or {}).get("network") == "regtest"
    assert allowed(plan, INTERNET, node, "p2p") is not regtest
    assert not allowed(plan, outside("169.254.169.254"), node, "p2p")


@pytest.mark.parametrize("instance", ALL)
def test_every_ip_block_is_one_the_api_server_accepts(plan: Plan, instance: str) -> None:
    for policy in objects(plan, "NetworkPolicy", f"zbi-{instance}"):
        resource = Resource("kubernetes:networking.k8s.io/v1:NetworkPolicy", policy["metadata"]["name"], policy)
        assert network_policy_blocks_are_valid(resource) == [], policy["metadata"]["name"]


def test_reachability_of_an_instance(plan: Plan) -> None:
    node, wallet = pod(plan, "testnet", "zebrad"), pod(plan, "testnet", "lightwalletd")
    assert allowed(plan, inside(wallet), node, "rpc")  # the light-wallet tier reaches the node's RPC
    assert not allowed(plan, ELSEWHERE, node, "rpc")  # RPC is never reachable from another namespace
    assert not allowed(plan, MONITORING, node, "rpc")
    assert allowed(plan, MONITORING, node, "metrics") and not allowed(plan, ELSEWHERE, node, "metrics")
    assert allowed(plan, MONITORING, wallet, "metrics") and not allowed(plan, ELSEWHERE, wallet, "metrics")
    assert allowed(plan, INTERNET, node, "p2p")  # public P2P
    assert not allowed(plan, outside("169.254.169.254"), node, "p2p")
    assert not allowed(plan, outside("169.254.169.254"), node, "rpc")


def test_zaino_reaches_its_node_and_nothing_else_does(plan: Plan) -> None:
    node, zaino = pod(plan, "zaino", "zebrad"), pod(plan, "zaino", "zaino")
    assert allowed(plan, inside(zaino), node, "rpc")
    assert not allowed(plan, inside(pod(plan, "testnet", "lightwalletd")), node, "rpc")  # another instance's tier
    assert "metrics" not in zaino.ports


def test_a_private_grpc_endpoint_admits_the_namespace_and_labelled_clients_only(plan: Plan) -> None:
    wallet = pod(plan, "private", "lightwalletd")
    assert allowed(plan, GRPC_CLIENT, wallet, "grpc")
    assert not allowed(plan, ELSEWHERE, wallet, "grpc")
    assert not allowed(plan, outside("52.94.1.1"), wallet, "grpc")


def test_a_public_grpc_endpoint_admits_exactly_its_allowed_cidrs(plan: Plan) -> None:
    wallet = pod(plan, "public", "lightwalletd")
    assert allowed(plan, outside("34.200.1.9"), wallet, "grpc")
    assert allowed(plan, outside("52.94.2.1"), wallet, "grpc")
    assert not allowed(plan, outside("8.8.8.8"), wallet, "grpc")
    assert not allowed(plan, ELSEWHERE, wallet, "grpc")
    (service,) = [
        s
        for s in objects(plan, "Service", "zbi-public")
        if s["spec"].get("type") == "LoadBalancer" and s["metadata"]["name"] == "lightwalletd-grpc"
    ]
    assert service["spec"]["loadBalancerSourceRanges"] == ["34.192.0.0/12", "52.94.0.0/22"]
    # Client addresses reach the pods (and so the NetworkPolicy) only without the kube-proxy SNAT of policy Cluster.
    assert service["spec"]["externalTrafficPolicy"] == "Local"


def test_behind_a_gateway_the_gateway_is_the_only_way_in(plan: Plan) -> None:
    gateway, wallet, node = (pod(plan, "testnet", w) for w in ("gateway", "lightwalletd", "zebrad"))
    assert allowed(plan, INTERNET, gateway, "https")
    # Its allowlist is the default 0.0.0.0/0, the instance metadata address carved out.
    assert not allowed(plan, outside("169.254.169.254"), gateway, "https")
    assert not allowed(plan, INTERNET, wallet, "grpc")
    assert not allowed(plan, GRPC_CLIENT, wallet, "grpc") and not allowed(plan, ELSEWHERE, wallet, "grpc")
    assert allowed(plan, inside(gateway), wallet, "grpc")  # the gateway forwards gRPC ...
    assert allowed(plan, inside(gateway), node, "rpc")  # ... and JSON-RPC, with the node's credentials
    assert not allowed(plan, inside(gateway), node, "p2p")
    assert not allowed(plan, ELSEWHERE, gateway, "metrics") and allowed(plan, MONITORING, gateway, "metrics")
    assert allowed(plan, MONITORING, gateway, "https")  # the JSON-RPC probe
    # Another instance's pods do not reach this node through a gateway-shaped hole.
    assert not allowed(plan, inside(pod(plan, "public", "lightwalletd")), node, "rpc")


def test_a_regtest_network_talks_to_itself_only(plan: Plan) -> None:
    node = pod(plan, "regnet", "zebrad")
    assert allowed(plan, inside(node), node, "p2p")
    assert not allowed(plan, INTERNET, node, "p2p")
    assert not allowed(plan, inside(pod(plan, "testnet", "zebrad")), node, "p2p")
    # No light-wallet tier, no gateway: nobody at all calls its RPC (`from: []` would have meant everybody).
    assert not allowed(plan, ELSEWHERE, node, "rpc") and not allowed(plan, INTERNET, node, "rpc")
    assert not allowed(plan, inside(pod(plan, "testnet", "lightwalletd")), node, "rpc")


# ---- per-zone identity ------------------------------------------------------------------------------------------

PER_ZONE = [
    "aws:ec2/subnet:Subnet",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip",
    "aws:ec2/routeTable:RouteTable",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "eks:index:ManagedNodeGroup",
]


def test_every_per_zone_resource_is_named_by_its_zone_id(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    zone_ids = {s.inputs["availabilityZoneId"] for s in plan.of_type("aws:ec2/subnet:Subnet")}
    assert len(zone_ids) == 5
    by_id = {r.id: r for r in plan.resources}
    # public and private subnets, route tables and associations per zone; one NAT (per-az), EIP and node group.
    per_zone = {"Subnet": 2, "RouteTable": 2, "RouteTableAssociation": 2, "NatGateway": 1, "Eip": 1}
    for type_ in PER_ZONE:
        resources = plan.of_type(type_)
        zones_named = [next((z for z in zone_ids if r.name.endswith(f"-{z}")), None) for r in resources]
        assert None not in zones_named, (type_, [r.name for r in resources])
        expected = per_zone.get(type_.rsplit(":", 1)[-1], 1)
        assert sorted(zones_named) == sorted(zone_ids) * expected or sorted(zones_named) == sorted(
            z for z in zone_ids for _ in range(expected)
        ), type_
    for nat in plan.of_type("aws:ec2/natGateway:NatGateway"):
        subnet = by_id[nat.inputs["subnetId"]]
        assert nat.name.endswith(subnet.inputs["availabilityZoneId"])
    for association in plan.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation"):
        subnet, table = by_id[association.inputs["subnetId"]], by_id[association.inputs["routeTableId"]]
        zone = subnet.inputs["availabilityZoneId"]
        assert association.name.endswith(zone) and table.name.endswith(zone)


def test_the_autoscaler_sees_each_node_groups_zone_by_the_name_ebs_uses(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    names = {zone_id: name for name, zone_id in zones_of("us-east-1")}
    subnets = {s.id: s.inputs["availabilityZoneId"] for s in plan.of_type("aws:ec2/subnet:Subnet")}
    for group in plan.of_type("eks:index:ManagedNodeGroup"):
        (subnet,) = group.inputs["subnetIds"]
        zone_id = subnets[subnet]
        assert group.name.endswith(zone_id)
        # EBS CSI labels nodes with the zone *name* (topology.ebs.csi.aws.com/zone=us-east-1c), not its ID.
        label = group.inputs["tags"]["k8s.io/cluster-autoscaler/node-template/label/topology.ebs.csi.aws.com/zone"]
        assert label == names[zone_id]
