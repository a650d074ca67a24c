"""The EKS VPC CNI add-on's configuration: NetworkPolicies enforced.

Kubernetes only stores a NetworkPolicy; the network plugin enforces it. On EKS that is the VPC CNI's network policy
agent, which runs only with `enableNetworkPolicy: "true"` in the add-on's configuration values (a string, as the
add-on's published configuration schema says: tests/fixtures/upstream/aws/vpc-cni-addon-configuration.json). Without
it every zBI NetworkPolicy is decoration, and any pod of any tenant reaches every node's unauthenticated RPC.
"""

from __future__ import annotations

import json

ADDON_NAME = "vpc-cni"
NETWORK_POLICY_KEY = "enableNetworkPolicy"


def vpc_cni_configuration() -> str:
    """The add-on's configurationValues (JSON, as the EKS API takes them)."""
    return json.dumps({NETWORK_POLICY_KEY: "true"}, sort_keys=True)


def enforces_network_policies(configuration_values: str | None) -> bool:
    """Whether add-on configuration values turn the network policy agent on (what the guardrail and the
    reachability model read)."""
    try:
        values = json.loads(configuration_values or "{}")
    except ValueError:
        return False
    return isinstance(values, dict) and values.get(NETWORK_POLICY_KEY) == "true"
