"""The identity of an instance's in-cluster job that talks to the Kubernetes API (the certificate roller, the
snapshot rotation): its ServiceAccount, a Role with exactly the rules the job needs in the instance's namespace, the
binding, and a NetworkPolicy that lets its pods reach the API server and nothing else."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from zbi_infra import kube
from zbi_infra.node.context import InstanceContext

# Egress to the API server: 443 (EKS), 6443 (kind, k3s, kubeadm), after the Service's address is translated.
API_PORTS = (443, 6443)


def api_client_identity(
    ctx: InstanceContext, component: str, rules: list[k8s.rbac.v1.PolicyRuleArgs]
) -> k8s.core.v1.ServiceAccount:
    """Resources named `<instance>-<component>`; the job's pods carry the component label and the account's name.
    The account mounts no token by default: the job's pod asks for one. Returns the account (the job waits for it)."""
    account = k8s.core.v1.ServiceAccount(
        f"{ctx.name}-{component}",
        metadata=ctx.meta(component),
        automount_service_account_token=False,
        opts=ctx.in_namespace,
    )
    role = k8s.rbac.v1.Role(f"{ctx.name}-{component}", metadata=ctx.meta(component), rules=rules, opts=ctx.in_namespace)
    k8s.rbac.v1.RoleBinding(
        f"{ctx.name}-{component}",
        metadata=ctx.meta(component),
        role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=component),
        subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=component, namespace=ctx.namespace)],
        opts=ctx.child(depends_on=[role, account]),
    )
    np = k8s.networking.v1
    np.NetworkPolicy(
        f"{ctx.name}-{component}",
        metadata=ctx.meta(component),
        spec=np.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(
                match_labels=kube.selector(instance=ctx.name, component=component)
            ),
            policy_types=["Egress"],
            egress=[
                np.NetworkPolicyEgressRuleArgs(
                    to=[
                        np.NetworkPolicyPeerArgs(
                            ip_block=np.IPBlockArgs(cidr="0.0.0.0/0", except_=["169.254.169.254/32"])
                        )
                    ],
                    ports=[np.NetworkPolicyPortArgs(port=p, protocol="TCP") for p in API_PORTS],
                )
            ],
        ),
        opts=ctx.in_namespace,
    )
    return account
