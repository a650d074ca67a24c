"""The reachability model (tests/netpol_model.py) against the NetworkPolicy API's documented cases: each test quotes
the doc comment of `networking/v1/types.go` it checks (vendored verbatim, kubernetes/api v0.36.3), and the first test
proves the quotes are there, so a model rule cannot drift from the text it claims to follow."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import UPSTREAM
from tests.netpol_model import Pod, outside, reachable, selects
from zbi_infra.policies import Resource, network_policy_blocks_are_valid

TYPES = UPSTREAM / "kubernetes" / "networkpolicy-types.go.txt"
VALIDATION = UPSTREAM / "kubernetes" / "validate-ipblock.go.txt"

QUOTES = [
    "An empty selector matches all pods in the policy's namespace.",
    "the ingress rules for each are combined additively.",
    "Traffic is allowed to a pod if there are no NetworkPolicies selecting the pod",
    "If this field is empty then this NetworkPolicy does not allow any traffic",
    "all policies (whether or not they contain an ingress section) are assumed to affect ingress.",
    "If this field is empty or missing, this rule matches all sources (traffic not restricted by source).",
    "If this field is empty or missing, this rule matches all destinations (traffic not restricted by destination).",
    "If this field is empty or missing, this rule matches all ports (traffic not restricted by port).",
    "If not specified, this field defaults to TCP.",
    "If this field is not provided, this matches all port names and numbers.",
    "Except values will be rejected if they are outside the cidr range",
    "if present but empty, it selects all pods.",
    "Otherwise it selects the pods matching podSelector in the policy's own namespace.",
    "if present but empty, it selects all namespaces.",
    "Otherwise it selects all pods in the namespaces selected by namespaceSelector.",
    "If this field is set then neither of the other fields can be.",
]


def test_the_model_quotes_the_api_it_follows() -> None:
    # The doc comments wrap at ~100 columns behind `//`: join them back into sentences.
    text = " ".join(re.sub(r"^\s*//\s?", "", line) for line in TYPES.read_text().splitlines())
    text = re.sub(r"\s+", " ", text)
    for quote in QUOTES:
        assert quote in text, quote
    assert "must be a strict subset of `cidr`" in VALIDATION.read_text()
    assert "cidrMaskLen >= exceptMaskLen" in VALIDATION.read_text()


NS = "zbi-a"
WEB = Pod(NS, {"app": "web"}, {"team": "a"}, address="10.0.0.5", ports={"http": 8080, "metrics": 9100}, name="web")
CLIENT = Pod(NS, {"app": "client"}, {"team": "a"}, address="10.0.0.6", name="client")
STRANGER = Pod("other", {"app": "client"}, {"team": "b"}, address="10.0.1.6", name="stranger")
FRIEND = Pod("friends", {"app": "client"}, {"team": "a"}, address="10.0.2.6", name="friend")


def netpol(spec: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    return {"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": namespace}, "spec": spec}


def web_ingress(*rules: dict[str, Any], **spec: Any) -> list[dict[str, Any]]:
    return [netpol({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": list(rules), **spec})]


def test_a_pod_no_policy_selects_is_open() -> None:
    assert reachable([], STRANGER, WEB, "http")
    only_client = [netpol({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Ingress"]})]
    assert reachable(only_client, STRANGER, WEB, "http")
    # A policy in another namespace selects nothing here.
    assert reachable([netpol({"podSelector": {}, "policyTypes": ["Ingress"]}, "other")], CLIENT, WEB, "http")


def test_a_policy_with_no_rules_isolates_and_admits_nothing() -> None:
    deny = [netpol({"podSelector": {}, "policyTypes": ["Ingress"]})]
    assert not reachable(deny, CLIENT, WEB, "http") and not reachable(deny, outside("1.2.3.4"), WEB, "http")
    assert not reachable([netpol({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": []})], CLIENT, WEB, 8080)


@pytest.mark.parametrize("peers", [None, []], ids=["missing", "empty"])
def test_a_rule_with_missing_or_empty_from_admits_every_source(peers: list[Any] | None) -> None:
    rule: dict[str, Any] = {"ports": [{"port": "http"}]}
    if peers is not None:
        rule["from"] = peers
    policies = web_ingress(rule)
    for source in (CLIENT, STRANGER, FRIEND, outside("198.51.100.1")):
        assert reachable(policies, source, WEB, "http"), source.name
    assert not reachable(policies, CLIENT, WEB, "metrics")  # the ports still restrict it


@pytest.mark.parametrize("peers", [None, []], ids=["missing", "empty"])
def test_an_egress_rule_with_missing_or_empty_to_admits_every_destination(peers: list[Any] | None) -> None:
    rule: dict[str, Any] = {"ports": [{"port": 8080}]}
    if peers is not None:
        rule["to"] = peers
    policies = [
        netpol({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"], "egress": [rule]})
    ]
    assert reachable(policies, CLIENT, WEB, "http") and reachable(policies, CLIENT, outside("8.8.8.8"), 8080)
    assert not reachable(policies, CLIENT, WEB, "metrics")


def test_missing_or_empty_ports_match_every_port_and_protocol_defaults_to_tcp() -> None:
    peer = {"podSelector": {}}
    for rule in ({"from": [peer]}, {"from": [peer], "ports": []}, {"from": [peer], "ports": [{"protocol": "TCP"}]}):
        policies = web_ingress(rule)
        assert reachable(policies, CLIENT, WEB, "http") and reachable(policies, CLIENT, WEB, "metrics"), rule
    assert not reachable(web_ingress({"ports": [{"port": 8080}]}), CLIENT, WEB, 8080, protocol="UDP")
    assert reachable(web_ingress({"ports": [{"protocol": "UDP", "port": 8080}]}), CLIENT, WEB, 8080, protocol="UDP")


def test_named_ports_resolve_on_the_destination_and_ranges_are_inclusive() -> None:
    assert reachable(web_ingress({"ports": [{"port": "http"}]}), CLIENT, WEB, 8080)
    assert not reachable(web_ingress({"ports": [{"port": "http"}]}), CLIENT, WEB, "metrics")
    ranged = web_ingress({"ports": [{"port": 9000, "endPort": 9100}]})
    assert reachable(ranged, CLIENT, WEB, "metrics") and not reachable(ranged, CLIENT, WEB, "http")
    assert not reachable(web_ingress({"ports": [{"port": 9000, "endPort": 9099}]}), CLIENT, WEB, "metrics")


def test_policies_are_additive() -> None:
    first = web_ingress({"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": "http"}]})
    second = web_ingress({"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]})
    assert reachable(first + second, CLIENT, WEB, "http") and reachable(first + second, STRANGER, WEB, "metrics")
    assert not reachable(first, STRANGER, WEB, "http") and not reachable(second, CLIENT, WEB, "http")


def test_peer_selectors() -> None:
    same_ns_clients = web_ingress({"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]})
    assert reachable(same_ns_clients, CLIENT, WEB, "http")
    assert not reachable(same_ns_clients, STRANGER, WEB, "http")  # podSelector alone: the policy's own namespace
    every_pod_here = web_ingress({"from": [{"podSelector": {}}]})
    assert reachable(every_pod_here, CLIENT, WEB, "http") and not reachable(every_pod_here, FRIEND, WEB, "http")
    every_namespace = web_ingress({"from": [{"namespaceSelector": {}}]})
    assert reachable(every_namespace, STRANGER, WEB, "http") and reachable(every_namespace, FRIEND, WEB, "http")
    assert not reachable(every_namespace, outside("10.0.1.6"), WEB, "http")  # pods, not outside addresses
    team_a = web_ingress({"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]})
    assert reachable(team_a, FRIEND, WEB, "http") and not reachable(team_a, STRANGER, WEB, "http")
    by_name = web_ingress({"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}]})
    assert reachable(by_name, STRANGER, WEB, "http") and not reachable(by_name, FRIEND, WEB, "http")
    # Both selectors in one peer AND; in two peers OR.
    anded = web_ingress(
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {"matchLabels": {"x": "y"}}}]}
    )
    ored = web_ingress(
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}, {"podSelector": {"matchLabels": {"x": "y"}}}]}
    )
    assert not reachable(anded, FRIEND, WEB, "http") and reachable(ored, FRIEND, WEB, "http")


def test_ip_blocks_and_their_exceptions() -> None:
    block = web_ingress({"from": [{"ipBlock": {"cidr": "172.16.0.0/12", "except": ["172.17.0.0/16"]}}]})
    assert reachable(block, outside("172.16.9.9"), WEB, "http")
    assert not reachable(block, outside("172.17.9.9"), WEB, "http")
    assert not reachable(block, outside("192.0.2.1"), WEB, "http")
    assert not reachable(block, outside("2001:db8::1"), WEB, "http")
    # Pods are matched by their address against an ipBlock (as enforcing CNIs do), never by their labels.
    assert reachable(web_ingress({"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]}), CLIENT, WEB, "http")
    assert not reachable(web_ingress({"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}]}), STRANGER, WEB, "http")
    with pytest.raises(ValueError):
        reachable(web_ingress({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}), CLIENT, WEB, 8080)
    with pytest.raises(ValueError):
        reachable(web_ingress({"from": [{}]}), CLIENT, WEB, 8080)


def test_both_ends_must_agree_and_policy_types_default_from_the_sections() -> None:
    client_egress_none = [
        netpol({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"]}),
        *web_ingress({"from": [{"podSelector": {}}]}),
    ]
    assert not reachable(client_egress_none, CLIENT, WEB, "http")
    # Without policyTypes, a policy with an egress section isolates egress; one without only ingress.
    defaulted = netpol(
        {"podSelector": {"matchLabels": {"app": "client"}}, "egress": [{"to": [{"ipBlock": {"cidr": "8.8.8.8/32"}}]}]}
    )
    assert not reachable([defaulted], CLIENT, WEB, "http") and reachable([defaulted], CLIENT, outside("8.8.8.8"), 53)
    assert not reachable([defaulted], STRANGER, CLIENT, 53)  # ...and ingress, with no rules: nothing gets in
    ingress_only = netpol({"podSelector": {"matchLabels": {"app": "client"}}})
    assert reachable([ingress_only], CLIENT, WEB, "http") and not reachable([ingress_only], WEB, CLIENT, 1)


def test_label_selector_expressions() -> None:
    labels = {"tier": "db", "env": "prod"}
    assert selects({}, labels) and selects({"matchLabels": {}, "matchExpressions": []}, labels)
    assert selects({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db", "cache"]}]}, labels)
    assert not selects({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}, labels)
    assert selects({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, labels)
    assert selects({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, labels)
    assert not selects({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, labels)
    assert not selects({"matchLabels": {"tier": "db", "env": "dev"}}, labels)


def _policy_with(block: dict[str, Any]) -> Resource:
    props = {"spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": block}]}]}}
    return Resource("kubernetes:networking.k8s.io/v1:NetworkPolicy", "p", props)


@pytest.mark.parametrize(
    ("block", "rejected"),
    [
        ({"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}, []),
        ({"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}, []),
        ({"cidr": "10.0.0.0/8"}, []),
        ({"cidr": "10.0.0.0/24", "except": ["192.168.0.0/24"]}, ["192.168.0.0/24"]),  # outside
        ({"cidr": "10.0.0.0/24", "except": ["10.0.0.0/24"]}, ["10.0.0.0/24"]),  # the whole block: not strict
        ({"cidr": "10.0.0.0/24", "except": ["10.0.0.0/16"]}, ["10.0.0.0/16"]),  # larger than the block
        ({"cidr": "169.254.169.254/32", "except": ["169.254.169.254/32"]}, ["169.254.169.254/32"]),
        ({"cidr": "2001:db8::/32", "except": ["10.0.0.0/8"]}, ["10.0.0.0/8"]),  # another family
    ],
)
def test_the_guardrail_rejects_what_the_api_server_rejects(block: dict[str, Any], rejected: list[str]) -> None:
    problems = network_policy_blocks_are_valid(_policy_with(block))
    assert [p.split()[2] for p in problems] == rejected, problems
