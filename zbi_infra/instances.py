"""Turn a stack's validated instances into ZcashNodes on a given cluster."""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra.config.instance import InstanceConfig
from zbi_infra.node import SnapshotSource, ZcashNode, ZcashNodeArgs
from zbi_infra.tls import ZbiCertificateAuthority

# The in-tree AWS cloud provider of EKS makes these an NLB (TCP passthrough: TLS ends at the light-wallet pod).
AWS_NLB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
    "service.beta.kubernetes.io/aws-load-balancer-cross-zone-load-balancing-enabled": "true",
}


def build_instances(
    instances: dict[str, InstanceConfig],
    *,
    provider: k8s.Provider,
    certificate_authority: ZbiCertificateAuthority,
    storage_class_for: Callable[[str, InstanceConfig], pulumi.Input[str] | None],
    load_balancer_annotations: dict[str, str],
    depends_on: list[pulumi.Resource] | None = None,
    restore: dict[str, SnapshotSource] | None = None,
) -> dict[str, ZcashNode]:
    nodes = {}
    for name, instance in instances.items():
        nodes[name] = ZcashNode(
            name,
            ZcashNodeArgs(
                config=instance,
                storage_class_name=storage_class_for(name, instance),
                certificate_authority=certificate_authority,
                load_balancer_annotations=load_balancer_annotations,
                restore_from=(restore or {}).get(name),
            ),
            opts=pulumi.ResourceOptions(providers={"kubernetes": provider}, depends_on=depends_on or []),
        )
    return nodes
