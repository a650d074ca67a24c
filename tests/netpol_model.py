"""Who may reach whom under a set of NetworkPolicies: the `networking.k8s.io/v1` semantics, read from the API's own
doc comments (vendored in tests/fixtures/upstream/kubernetes/networkpolicy-types.go.txt, cited rule by rule below)
and tested case by case against them in tests/test_netpol_model.py. Other test files import `reachable`.

What the model leaves out on purpose: the "traffic from the pod's local node is always allowed" exception (the kubelet's
probes; no zBI flow depends on it), and SCTP/UDP beyond matching the protocol field. Whether a cluster *enforces*
policies at all is the CNI's business (the EKS VPC CNI only with enableNetworkPolicy): this model answers what the
policies say, for a CNI that enforces them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Selector = Mapping[str, Any]


@dataclass(frozen=True)
class Pod:
    """One end of a connection: a pod (namespace set), or an address outside the cluster (namespace None).

    `ports` are the pod's named container ports (what a named port in a policy resolves to); `address` is its IP, if
    the question depends on it (ipBlock peers). CNIs that enforce policies (Calico, the VPC CNI, Cilium) match
    ipBlocks against pod IPs too, so a pod with an address is matched by a block that contains it."""

    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    address: str | None = None
    ports: Mapping[str, int] = field(default_factory=dict)
    name: str = ""

    @property
    def in_cluster(self) -> bool:
        return self.namespace is not None

    def all_namespace_labels(self) -> dict[str, str]:
        # Kubernetes (1.22+) labels every namespace with its own name.
        assert self.namespace is not None
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def outside(address: str) -> Pod:
    """An address outside the cluster (the internet, a VPC host, the instance metadata service)."""
    return Pod(address=address, name=address)


def selects(selector: Selector | None, labels: Mapping[str, str]) -> bool:
    """Label-selector semantics: matchLabels AND every matchExpression; an empty selector selects everything.
    `None` is not a selector: callers decide what an absent one means (it differs by field)."""
    if selector is None:
        raise ValueError("an absent selector has no meaning of its own; the caller decides")
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        matched = {
            "In": present and labels[key] in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not matched:
            return False
    return True


def policy_types(spec: Mapping[str, Any]) -> set[str]:
    """`policyTypes`, or its default: "all policies ... are assumed to affect ingress", and egress when they contain an
    egress section."""
    declared = spec.get("policyTypes")
    if declared:
        return set(declared)
    return {"Ingress", "Egress"} if spec.get("egress") else {"Ingress"}


def _in_block(address: str, block: Mapping[str, Any]) -> bool:
    ip = ipaddress.ip_address(address)
    network = ipaddress.ip_network(block["cidr"], strict=False)
    if ip.version != network.version or ip not in network:
        return False
    return not any(
        ip.version == (excluded := ipaddress.ip_network(e, strict=False)).version and ip in excluded
        for e in block.get("except") or []
    )


def peer_matches(peer: Mapping[str, Any], other: Pod, policy_namespace: str) -> bool:
    """One entry of `from`/`to`. ipBlock alone; else podSelector and/or namespaceSelector, ANDed within the peer:
    a podSelector without namespaceSelector means the policy's own namespace; a namespaceSelector without
    podSelector means every pod of the namespaces it selects; present but empty selects all."""
    keys = {k for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None}
    if not keys or ("ipBlock" in keys and len(keys) > 1):
        raise ValueError(f"invalid peer (the API server rejects it): {dict(peer)}")
    if "ipBlock" in keys:
        return other.address is not None and _in_block(other.address, peer["ipBlock"])
    if not other.in_cluster:
        return False
    if "namespaceSelector" in keys:
        if not selects(peer["namespaceSelector"], other.all_namespace_labels()):
            return False
    elif other.namespace != policy_namespace:
        return False
    return "podSelector" not in keys or selects(peer["podSelector"], other.labels)


def port_matches(entry: Mapping[str, Any], destination: Pod, port: int | str, protocol: str) -> bool:
    """One entry of `ports`: protocol (default TCP) AND port (number, or a name resolved on the destination pod;
    absent matches every port) up to endPort inclusive."""
    if entry.get("protocol", "TCP") != protocol:
        return False
    wanted = destination.ports.get(port) if isinstance(port, str) else port
    if "port" not in entry or entry["port"] is None:
        return True
    declared = entry["port"]
    if isinstance(declared, str):
        return wanted is not None and destination.ports.get(declared) == wanted
    end = entry.get("endPort", declared)
    return wanted is not None and declared <= wanted <= end


def rule_admits(rule: Mapping[str, Any], peers_key: str, other: Pod, destination: Pod, port: int | str,
                protocol: str, policy_namespace: str) -> bool:  # fmt: skip
    """A rule matches both its ports and its peers; each list, "empty or missing", matches everything."""
    ports, peers = rule.get("ports") or [], rule.get(peers_key) or []
    if ports and not any(port_matches(p, destination, port, protocol) for p in ports):
        return False
    return not peers or any(peer_matches(p, other, policy_namespace) for p in peers)


def _policies(plan_objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [o for o in plan_objects if o.get("kind") == "NetworkPolicy"]


def _direction_allows(policies: list[Mapping[str, Any]], subject: Pod, direction: str, other: Pod,
                      destination: Pod, port: int | str, protocol: str) -> bool:  # fmt: skip
    """Policies are additive: a pod no policy selects for this direction is open; a selected pod admits traffic that
    at least one rule of at least one of those policies admits (a policy with no rules admits nothing)."""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace") == subject.namespace
        and direction in policy_types(p.get("spec") or {})
        and selects((p.get("spec") or {}).get("podSelector") or {}, subject.labels)
    ]
    if not selecting:
        return True
    return any(
        rule_admits(rule, peers_key, other, destination, port, protocol, p["metadata"]["namespace"])
        for p in selecting
        for rule in p["spec"].get(key) or []
    )


def reachable(plan_objects: Iterable[Mapping[str, Any]], src: Pod, dst: Pod, port: int | str,
              protocol: str = "TCP") -> bool:  # fmt: skip
    """Can `src` open a connection to `dst` on `port` (a number, or the name of one of `dst`'s container ports)?
    Both ends must agree: the source's egress (if it is a pod) and the destination's ingress (if it is a pod)."""
    policies = _policies(plan_objects)
    if isinstance(port, str) and port not in dst.ports:
        raise KeyError(f"{dst.name or dst} has no port named {port}")
    if src.in_cluster and not _direction_allows(policies, src, "Egress", dst, dst, port, protocol):
        return False
    return not dst.in_cluster or _direction_allows(policies, dst, "Ingress", src, dst, port, protocol)
