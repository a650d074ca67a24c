"""Which pods come back first when capacity is short (a zone lost, nodes being replaced): PriorityClasses.

Full nodes outrank light-wallet servers (useless without a node, quick to start), which outrank the gateway and
monitoring: after a zone loss the scheduler places what restores service fastest first, preempting lower tiers
when it must.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class Tier:
    name: str
    value: int
    description: str


FULL_NODE = Tier("zbi-full-node", 1_000_000, "zBI full nodes: every other tier depends on them")
LIGHT_WALLET = Tier("zbi-light-wallet", 900_000, "zBI light-wallet servers: serve wallets once a node is ready")
GATEWAY = Tier("zbi-gateway", 800_000, "zBI access gateways")
MONITORING = Tier("zbi-monitoring", 700_000, "zBI monitoring: watches the tiers above")
TIERS = (FULL_NODE, LIGHT_WALLET, GATEWAY, MONITORING)


def priority_classes(name: str, opts: pulumi.ResourceOptions) -> dict[str, str]:
    """The classes, once per cluster; returns tier name -> class name for ZcashNodeArgs.priority_class_names."""
    for tier in TIERS:
        k8s.scheduling.v1.PriorityClass(
            f"{name}-{tier.name}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=tier.name, labels={"app.kubernetes.io/part-of": "zbi"}),
            value=tier.value,
            global_default=False,
            # Preempting a lower tier is how a lost zone's full nodes get back in; nothing preempts a full node.
            preemption_policy="PreemptLowerPriority",
            description=tier.description,
            opts=opts,
        )
    return {"full-node": FULL_NODE.name, "light-wallet": LIGHT_WALLET.name, "gateway": GATEWAY.name}
