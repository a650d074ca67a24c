"""NetworkPolicies of an instance: default deny, then exactly the flows it needs, by pod label and port."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from zbi_infra import kube
from zbi_infra.config.instance import LightwalletKind, Network, NodeKind
from zbi_infra.node.context import (
    FULL_NODE,
    GRPC_CLIENT_LABEL,
    LIGHT_WALLET,
    MONITORING_NAMESPACE_LABEL,
    InstanceContext,
)
from zbi_infra.node.gateway import GATEWAY_COMPONENT
from zbi_infra.node.history_export_job import EXPORT_COMPONENT
from zbi_infra.node.zcashd_compat import behind_gateway
from zbi_infra.render.gateway_metrics import METRICS_PORT
from zbi_infra.render.zcashd_compat import RPC_PORT as ZCASHD_RPC_PORT
from zbi_infra.zcash_ports import LIGHTWALLETD_HTTP_PORT, ZEBRA_METRICS_PORT


def build_network_policies(ctx: InstanceContext, *, gateway: bool) -> None:
    """Default deny; then exactly the flows an instance needs, by pod label and port. With a `gateway`, it is the
    only way in from outside the instance: the light-wallet tier answers only to it."""
    config, ports = ctx.config, ctx.ports
    full_node = kube.selector(instance=ctx.name, component=FULL_NODE)
    light_wallet = kube.selector(instance=ctx.name, component=LIGHT_WALLET)
    gateway_pods = kube.selector(instance=ctx.name, component=GATEWAY_COMPONENT)
    has_light_wallet = config.lightwallet.kind is not LightwalletKind.NONE
    regtest = config.network is Network.REGTEST
    np = k8s.networking.v1

    def policy(name: str, spec: k8s.networking.v1.NetworkPolicySpecArgs) -> None:
        np.NetworkPolicy(f"{ctx.name}-netpol-{name}", metadata=ctx.meta(name), spec=spec, opts=ctx.in_namespace)

    def workload_policy(
        name: str,
        labels: dict[str, str],
        ingress: list[k8s.networking.v1.NetworkPolicyIngressRuleArgs],
        egress: list[k8s.networking.v1.NetworkPolicyEgressRuleArgs],
    ) -> None:
        """One workload's pods, both directions: exactly `ingress` in and `egress` out (DNS aside)."""
        policy(
            name,
            np.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                policy_types=["Ingress", "Egress"],
                ingress=ingress,
                egress=egress,
            ),
        )

    def tcp(*numbers: int | str) -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
        return [np.NetworkPolicyPortArgs(protocol="TCP", port=n) for n in numbers]

    def pods(labels: dict[str, str]) -> k8s.networking.v1.NetworkPolicyPeerArgs:
        """This namespace's pods with `labels`."""
        return np.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels))

    anywhere = [np.NetworkPolicyPeerArgs(ip_block=np.IPBlockArgs(cidr="0.0.0.0/0", except_=["169.254.169.254/32"]))]
    monitoring = [
        np.NetworkPolicyPeerArgs(
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={MONITORING_NAMESPACE_LABEL: "true"})
        )
    ]
    siblings = [pods(full_node)]

    policy(
        "default-deny",
        np.NetworkPolicySpecArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(), policy_types=["Ingress", "Egress"]),
    )
    policy(
        "allow-dns",
        np.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(),
            policy_types=["Egress"],
            egress=[
                np.NetworkPolicyEgressRuleArgs(
                    to=[
                        np.NetworkPolicyPeerArgs(
                            namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                                match_labels={"kubernetes.io/metadata.name": "kube-system"}
                            ),
                            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"k8s-app": "kube-dns"}),
                        )
                    ],
                    ports=[np.NetworkPolicyPortArgs(protocol="UDP", port=53), *tcp(53)],
                )
            ],
        ),
    )
    rpc_clients = [
        pods(selector) for selector, present in ((light_wallet, has_light_wallet), (gateway_pods, gateway)) if present
    ]
    if config.history is not None and config.history.export.enabled:  # the export job reads final blocks
        rpc_clients.append(pods(kube.selector(instance=ctx.name, component=EXPORT_COMPONENT)))
    full_node_ingress = [
        # P2P: the public network for mainnet/testnet; only the instance's own nodes for regtest.
        np.NetworkPolicyIngressRuleArgs(from_=siblings if regtest else anywhere, ports=tcp(ports.p2p)),
    ]
    if rpc_clients:
        # Only with callers: a rule with no peers (`from: []`, as with a missing `from`) admits every source.
        full_node_ingress.append(np.NetworkPolicyIngressRuleArgs(from_=rpc_clients, ports=tcp(ports.rpc)))
    zcashd_served = gateway and behind_gateway(ctx)
    if zcashd_served:  # the zcashd sidecar's RPC: the gateway only
        full_node_ingress.append(
            np.NetworkPolicyIngressRuleArgs(from_=[pods(gateway_pods)], ports=tcp(ZCASHD_RPC_PORT))
        )
    if config.node.kind in (NodeKind.ZEBRAD, NodeKind.ZAKURAD):  # their metrics endpoint
        full_node_ingress.append(np.NetworkPolicyIngressRuleArgs(from_=monitoring, ports=tcp(ZEBRA_METRICS_PORT)))
    full_node_egress = (
        [np.NetworkPolicyEgressRuleArgs(to=siblings, ports=tcp(ports.p2p))]
        # Peers listen on many ports; everything but the instance metadata service is fair game.
        if regtest
        else [np.NetworkPolicyEgressRuleArgs(to=anywhere)]
    )
    workload_policy("full-node", full_node, full_node_ingress, full_node_egress)
    # Who may reach the instance's front door (the gateway, else the light-wallet tier): the allowlist itself when
    # public (the Service keeps client addresses, externalTrafficPolicy Local), else pods of this namespace and
    # labelled clients elsewhere in the cluster.
    front_door_clients = (
        [
            np.NetworkPolicyPeerArgs(ip_block=np.IPBlockArgs(cidr=cidr, except_=_metadata_except(cidr)))
            for cidr in config.endpoints.allowed_cidrs
        ]
        if config.endpoints.public_grpc
        else [
            np.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs()),
            np.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(),
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={GRPC_CLIENT_LABEL: "true"}),
            ),
        ]
    )
    if gateway:
        gateway_egress = [
            np.NetworkPolicyEgressRuleArgs(
                to=siblings, ports=tcp(ports.rpc, *([ZCASHD_RPC_PORT] if zcashd_served else []))
            )
        ]
        if has_light_wallet:
            gateway_egress.append(np.NetworkPolicyEgressRuleArgs(to=[pods(light_wallet)], ports=tcp("grpc")))
        gateway_ingress = [
            # The monitoring namespace too: its blackbox exporter probes JSON-RPC as users make it.
            np.NetworkPolicyIngressRuleArgs(from_=front_door_clients + monitoring, ports=tcp("https")),
            np.NetworkPolicyIngressRuleArgs(from_=monitoring, ports=tcp(METRICS_PORT)),
        ]
        workload_policy("gateway", gateway_pods, gateway_ingress, gateway_egress)
    if not has_light_wallet:
        return
    grpc_clients = [pods(gateway_pods)] if gateway else front_door_clients
    wallet_ingress = [np.NetworkPolicyIngressRuleArgs(from_=grpc_clients, ports=tcp("grpc"))]
    if config.lightwallet.kind is LightwalletKind.LIGHTWALLETD:
        wallet_ingress.append(np.NetworkPolicyIngressRuleArgs(from_=monitoring, ports=tcp(LIGHTWALLETD_HTTP_PORT)))
    wallet_egress = [np.NetworkPolicyEgressRuleArgs(to=siblings, ports=tcp(ports.rpc))]
    workload_policy("light-wallet", light_wallet, wallet_ingress, wallet_egress)


def _metadata_except(cidr: str) -> list[str] | None:
    """The instance metadata address, carved out of any larger block that contains it (the API server rejects an
    `except` that is not a strict subset of its `cidr`, so a /32 of the address itself is left as it is)."""
    import ipaddress

    network = ipaddress.ip_network(cidr)
    metadata = ipaddress.ip_address("169.254.169.254")
    return ["169.254.169.254/32"] if metadata in network and network.prefixlen < 32 else None
