"""In-cluster guardrails: ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1, GA since Kubernetes 1.30)
that the API server enforces on every request, whoever makes it and whatever RBAC they hold.

- A claim may use an instance's chain StorageClass only in that instance's namespace: StorageClasses are
  cluster-wide, and a volume of another instance's class carries that instance's backup tags.
- In an instance's namespace, a LoadBalancer or NodePort Service must be one of zBI's front doors (the gateway's
  https, a light-wallet's grpc, a node's p2p), selected by its component label: nothing publishes the node's
  unauthenticated RPC, and nothing without a selector points a load balancer at hand-made endpoints.
- Instance administrators (their EKS group) may not create, change or delete NetworkPolicies, ConfigMaps, Secrets,
  Services, quotas, service accounts or RBAC, even if someone binds them to a broader role later.

The CEL expressions are plain strings here so that tests evaluate them with a real CEL implementation (cel-python)
against admitted and refused objects.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra.instance_admins import ALL_INSTANCE_ADMINS
from zbi_infra.kube import KubernetesObject

INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
# The named container ports each zBI front door may publish, by the component its Service selects.
FRONT_DOORS = {"gateway": ["https"], "light-wallet": ["grpc"], "full-node": ["p2p"]}

CLAIM_USES_OWN_CLASS = (
    "!has(object.spec.storageClassName) || !object.spec.storageClassName.matches('^zbi-.+-chain$') || "
    f"(has(namespaceObject.metadata.labels) && '{INSTANCE_LABEL}' in namespaceObject.metadata.labels && "
    f"object.spec.storageClassName == 'zbi-' + namespaceObject.metadata.labels['{INSTANCE_LABEL}'] + '-chain')"
)
_DOORS = "{" + ", ".join(f"'{k}': [{', '.join(repr(p) for p in v)}]" for k, v in sorted(FRONT_DOORS.items())) + "}"
PUBLIC_SERVICE_IS_A_FRONT_DOOR = (
    "!has(object.spec.type) || (object.spec.type != 'LoadBalancer' && object.spec.type != 'NodePort') || "
    f"(has(object.spec.selector) && '{COMPONENT_LABEL}' in object.spec.selector && "
    f"object.spec.selector['{COMPONENT_LABEL}'] in {_DOORS} && "
    "object.spec.ports.all(p, has(p.targetPort) && "
    f"string(p.targetPort) in {_DOORS}[object.spec.selector['{COMPONENT_LABEL}']]))"
)
NOT_AN_INSTANCE_ADMIN = (
    f"!has(request.userInfo.groups) || !request.userInfo.groups.exists(g, g.startsWith('{ALL_INSTANCE_ADMINS}'))"
)


def _rule(groups: list[str], resources: list[str], operations: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "apiVersions": ["v1"], "operations": operations, "resources": resources}


INSTANCE_NAMESPACES = {"matchExpressions": [{"key": INSTANCE_LABEL, "operator": "Exists"}]}
# name -> (matchConstraints, validations)
POLICIES: dict[str, tuple[dict[str, Any], list[dict[str, str]]]] = {
    "zbi-claims-use-their-instances-class": (
        {"resourceRules": [_rule([""], ["persistentvolumeclaims"], ["CREATE"])]},
        [
            {
                "expression": CLAIM_USES_OWN_CLASS,
                "message": "a zBI chain StorageClass (zbi-<instance>-chain) may be used only in its instance's "
                "namespace: its volumes carry that instance's backup tags",
            }
        ],
    ),
    "zbi-public-services-are-front-doors": (
        {
            "namespaceSelector": INSTANCE_NAMESPACES,
            "resourceRules": [_rule([""], ["services"], ["CREATE", "UPDATE"])],
        },
        [
            {
                "expression": PUBLIC_SERVICE_IS_A_FRONT_DOOR,
                "message": "in a zBI instance's namespace a LoadBalancer or NodePort Service publishes only the "
                "gateway's https, a light-wallet's grpc or a node's p2p port (node RPC is never public)",
            }
        ],
    ),
    "zbi-instance-admins-keep-guarantees": (
        {
            "namespaceSelector": INSTANCE_NAMESPACES,
            "resourceRules": [
                _rule(
                    [""],
                    ["configmaps", "secrets", "services", "resourcequotas", "limitranges", "serviceaccounts"],
                    ["CREATE", "UPDATE", "DELETE"],
                ),
                _rule(["networking.k8s.io"], ["networkpolicies"], ["CREATE", "UPDATE", "DELETE"]),
                _rule(["rbac.authorization.k8s.io"], ["roles", "rolebindings"], ["CREATE", "UPDATE", "DELETE"]),
            ],
        },
        [
            {
                "expression": NOT_AN_INSTANCE_ADMIN,
                "message": "instance administrators do not change what zBI manages (NetworkPolicies, configuration, "
                "credentials, Services, quotas, RBAC): change the stack or the access file and deploy",
            }
        ],
    ),
}


def admission_policies(opts: pulumi.ResourceOptions) -> list[KubernetesObject]:
    """Each policy and its binding (Deny: a violation refuses the request)."""
    made = []
    labels = {"app.kubernetes.io/part-of": "zbi"}
    for name, (constraints, validations) in POLICIES.items():
        policy = KubernetesObject(
            name,
            api_version="admissionregistration.k8s.io/v1",
            kind="ValidatingAdmissionPolicy",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels=labels),
            fields={"spec": {"failurePolicy": "Fail", "matchConstraints": constraints, "validations": validations}},
            opts=opts,
        )
        binding = KubernetesObject(
            f"{name}-binding",
            api_version="admissionregistration.k8s.io/v1",
            kind="ValidatingAdmissionPolicyBinding",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels=labels),
            fields={"spec": {"policyName": name, "validationActions": ["Deny"]}},
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[policy])),
        )
        made += [policy, binding]
    return made
