"""What an instance administrator may do in Kubernetes: look at everything of the instance, restart its pods, take
volume snapshots — and nothing that undoes zBI's guarantees.

EKS's Edit access policy (what zBI used to grant) reads Secrets (the node's RPC credentials, the TLS key, the
gateway's key hashes), execs into pods, edits the gateway's ConfigMap, deletes NetworkPolicies and creates
LoadBalancer Services. Instead each administrator's EKS access entry carries Kubernetes groups (no access policy),
and this Role, bound to the instance's group in the instance's namespace, grants the job and no more. The
admission policies (zbi_infra/admission.py) refuse the dangerous writes to that group even if someone later binds it
to more.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

ROLE_NAME = "zbi-instance-admin"
# Every instance administrator, whatever the instance (what the admission policies refuse things to).
ALL_INSTANCE_ADMINS = "zbi-instance-admins"
READ = ["get", "list", "watch"]


def instance_admins_group(instance: str) -> str:
    """The Kubernetes group of one instance's administrators (EKS access entries name it)."""
    return f"{ALL_INSTANCE_ADMINS}-{instance}"


def instance_admin_rules() -> list[dict[str, Any]]:
    """The Role's rules: no Secrets, no exec/attach/port-forward, no writes to configuration, Services or
    NetworkPolicies; pods may be deleted (a restart: the controller recreates them) and volumes snapshotted."""
    return [
        {
            "apiGroups": [""],
            "resources": [
                "pods",
                "pods/log",
                "events",
                "services",
                "endpoints",
                "configmaps",
                "persistentvolumeclaims",
                "resourcequotas",
                "limitranges",
                "serviceaccounts",
            ],
            "verbs": READ,
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]},
        {
            "apiGroups": ["apps"],
            "resources": ["statefulsets", "deployments", "replicasets", "controllerrevisions"],
            "verbs": READ,
        },
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": READ},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": READ},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": READ},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ},
        {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshots"], "verbs": [*READ, "create"]},
    ]


def instance_admin_role(
    instance: str, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> k8s.rbac.v1.RoleBinding:
    """The Role in the instance's namespace, bound to its administrators' group."""
    labels = {"app.kubernetes.io/part-of": "zbi", "app.kubernetes.io/instance": instance}
    role = k8s.rbac.v1.Role(
        f"{instance}-admin-role",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=ROLE_NAME, namespace=namespace, labels=labels),
        rules=[k8s.rbac.v1.PolicyRuleArgs(**_snake(rule)) for rule in instance_admin_rules()],
        opts=opts,
    )
    return k8s.rbac.v1.RoleBinding(
        f"{instance}-admin-role-binding",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=ROLE_NAME, namespace=namespace, labels=labels),
        role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=ROLE_NAME),
        subjects=[
            k8s.rbac.v1.SubjectArgs(
                api_group="rbac.authorization.k8s.io", kind="Group", name=instance_admins_group(instance)
            )
        ],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[role])),
    )


def _snake(rule: dict[str, Any]) -> dict[str, Any]:
    return {"api_groups": rule["apiGroups"], "resources": rule["resources"], "verbs": rule["verbs"]}
