"""A local stack: zBI instances on a Kubernetes cluster you already run (kind, k3s, minikube). No AWS at all."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra.config import LocalConfig, StackConfig
from zbi_infra.instances import build_instances
from zbi_infra.tls import ZbiCertificateAuthority


def build(config: StackConfig) -> None:
    local = config.local or LocalConfig()
    # The kubeconfig of the machine running Pulumi (~/.kube/config or $KUBECONFIG), at the chosen context.
    provider = k8s.Provider("local", context=local.kubeconfig_context, enable_server_side_apply=True)
    ca = ZbiCertificateAuthority(f"{pulumi.get_stack()}-ca")
    nodes = build_instances(
        config.instances,
        provider=provider,
        certificate_authority=ca,
        storage_class_for=lambda _name, _instance: local.storage_class,
        load_balancer_annotations={},
    )
    pulumi.export("caCertPem", ca.ca_cert_pem)
    pulumi.export("instances", {name: {"namespace": n.namespace, "grpc": n.grpc_endpoint} for name, n in nodes.items()})
