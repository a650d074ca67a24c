"""ZbiControlPlane: the Pulumi Kubernetes Operator in the cluster, keeping zBI stacks converged from Git.

One `Stack` resource per zBI stack: the operator checks out the repository at the branch, runs `pulumi up --refresh`
every `resyncMinutes` in a workspace pod, and never destroys on delete. The workspace runs as a service account of
its own, with an IRSA role that may only read AWS (zbi_infra.reconciler_access: AWS changes go through the reviewed
deploy workflow) and the `system:auth-delegator` cluster role the operator requires of workspaces (its
docs/migration.md). A control plane reconciles only stacks of the cluster it runs in: a DR stack's reconciler in the
primary's cluster would fall with the primary region, and could not reach the DR cluster's API anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra.config.control_plane import ControlPlaneConfig
from zbi_infra.config.stack import StackConfig, StackRole, load_project_stack
from zbi_infra.errors import ConfigError

OPERATOR_NAMESPACE = "pulumi-kubernetes-operator"
OPERATOR_RELEASE = "pulumi-kubernetes-operator"
STACKS_NAMESPACE = "zbi-control-plane"
# pulumi/pulumi-kubernetes-operator at tag pulumi-kubernetes-operator-2.9.0 (tests/fixtures/upstream/...).
OPERATOR_CHART = ("oci://ghcr.io/pulumi/helm-charts/pulumi-kubernetes-operator", "2.9.0")
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


def operator_selector_labels() -> dict[str, str]:
    """The chart's selector labels of its pods and metrics Service (templates/_helpers.tpl, chart 2.9.0), for the
    release named as the chart."""
    return {"app.kubernetes.io/name": OPERATOR_RELEASE, "app.kubernetes.io/instance": OPERATOR_RELEASE}


def reconciler_service_account(stack: str) -> str:
    return f"{stack}-reconciler"


def qualified_stack(config: ControlPlaneConfig, stack: str) -> str:
    return f"{config.organization}/zbi/{stack}" if config.organization else stack


@dataclass(frozen=True)
class ZbiControlPlaneArgs:
    config: ControlPlaneConfig
    # zBI stack -> the ARN of its reconciler's IRSA role.
    role_arns: Mapping[str, pulumi.Input[str]]
    # nodeSelector/tolerations of the system node group (zbi_infra/system_nodes.py); empty: any node.
    placement: Mapping[str, Any] = field(default_factory=dict)


class ZbiControlPlane(pulumi.ComponentResource):
    def __init__(self, name: str, args: ZbiControlPlaneArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:controlPlane:ZbiControlPlane", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)

        def namespace(resource: str, ns: str) -> k8s.core.v1.Namespace:
            return k8s.core.v1.Namespace(
                resource,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=ns,
                    labels={"app.kubernetes.io/part-of": "zbi", "pod-security.kubernetes.io/enforce": "restricted"},
                ),
                opts=child,
            )

        operator_ns = namespace(f"{name}-operator-namespace", OPERATOR_NAMESPACE)
        stacks_ns = namespace(f"{name}-stacks-namespace", STACKS_NAMESPACE)
        operator = k8s.helm.v3.Release(
            f"{name}-operator",
            name=OPERATOR_RELEASE,
            chart=OPERATOR_CHART[0],
            version=OPERATOR_CHART[1],
            namespace=OPERATOR_NAMESPACE,
            values={
                # Plain HTTP metrics, scraped by the monitoring stack: stacks_failing is how a failed reconcile shows.
                "controller": {"metricsSecure": False},
                # Its ServiceMonitor is zBI's (zbi_infra/monitoring/component.py): the chart's needs the CRDs first.
                "serviceMonitor": {"enabled": False},
                "podLabels": {"app.kubernetes.io/part-of": "zbi"},
                **args.placement,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[operator_ns]),
        )
        in_stacks = pulumi.ResourceOptions(parent=self, depends_on=[stacks_ns])
        for stack, role_arn in sorted(args.role_arns.items()):
            account = reconciler_service_account(stack)
            service_account = k8s.core.v1.ServiceAccount(
                f"{name}-{stack}-reconciler",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=account, namespace=STACKS_NAMESPACE, annotations={ROLE_ANNOTATION: role_arn}
                ),
                opts=in_stacks,
            )
            binding = k8s.rbac.v1.ClusterRoleBinding(
                f"{name}-{stack}-auth-delegator",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{STACKS_NAMESPACE}:{account}:system:auth-delegator"),
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="system:auth-delegator"
                ),
                subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=account, namespace=STACKS_NAMESPACE)],
                opts=child,
            )
            k8s.apiextensions.CustomResource(
                f"{name}-{stack}-stack",
                api_version="pulumi.com/v1",
                kind="Stack",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"zbi-{stack}", namespace=STACKS_NAMESPACE),
                spec=stack_spec(config, stack, placement=dict(args.placement)),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[operator, service_account, binding]),
            )
        self.register_outputs({})


def stack_spec(
    config: ControlPlaneConfig, stack: str, *, placement: Mapping[str, Any] | None = None
) -> dict[str, object]:
    """The operator's Stack spec for one zBI stack (validated against the vendored CRD schema in the tests)."""
    spec: dict[str, object] = {
        "stack": qualified_stack(config, stack),
        "projectRepo": config.repository,
        "branch": config.branch,
        "repoDir": config.project_path,
        "refresh": True,
        "destroyOnFinalize": False,
        "continueResyncOnCommitMatch": True,
        "resyncFrequencySeconds": config.resync_minutes * 60,
        "serviceAccountName": reconciler_service_account(stack),
        # By digest (ZbiControlPlaneConfig.workspace_image): the operator's default image floats.
        "workspaceTemplate": {
            "spec": {
                "securityProfile": "restricted",
                "image": config.workspace_image,
                "imagePullPolicy": "IfNotPresent",
            }
        },
    }
    if placement:
        # The workspace pod holds cluster-admin: on the system nodes. The operator merges this into its pod by
        # container name ("pulumi", operator/internal/controller/auto/workspace_controller.go at 2.9.0).
        pod = {"containers": [{"name": "pulumi"}], **placement}
        spec["workspaceTemplate"]["spec"]["podTemplate"] = {"spec": pod}  # type: ignore[index]
    if config.backend and not config.uses_pulumi_cloud():
        spec["backend"] = config.backend
    if config.secrets_provider:
        spec["secretsProvider"] = config.secrets_provider
    if config.uses_pulumi_cloud():
        spec["envRefs"] = {
            "PULUMI_ACCESS_TOKEN": {
                "type": "Secret",
                "secret": {"name": config.credentials_secret, "key": "accessToken"},
            }
        }
    return spec


def reconciled_stack_configs(config: StackConfig, stack: str, project_root: Path) -> dict[str, StackConfig]:
    """The validated config of every stack `zbi:controlPlane.stacks` names (this one's own when it names none),
    read from the project's stack files before anything is registered."""
    control = config.control_plane
    if control is None or not control.enabled:
        return {}
    found: dict[str, StackConfig] = {}
    problems: list[str] = []
    for name in control.stacks or [stack]:
        if name == stack:
            found[name] = config
            continue
        try:
            other = load_project_stack(
                project_root, name, key="zbi:controlPlane.stacks", missing_fix="list this project's stacks"
            )
        except ConfigError as exc:
            problems += exc.problems
            continue
        if other.role is StackRole.LOCAL:
            problems.append(
                f"zbi:controlPlane.stacks: {name} is a local stack, which the operator cannot reconcile. Fix: remove it"
            )
            continue
        if _cluster_of(other) != _cluster_of(config):
            problems.append(
                f"zbi:controlPlane.stacks: {name} runs on another cluster, which this control plane cannot reach (and "
                f"a reconciler here would fall with this region). Fix: remove it, and set zbi:controlPlane in "
                f"Pulumi.{name}.yaml so its own cluster reconciles it"
            )
            continue
        found[name] = other
    if problems:
        raise ConfigError(problems)
    return found


def _cluster_of(config: StackConfig) -> tuple[str, str] | None:
    """(cluster name, region): the cluster a stack's reconciler must run in."""
    if config.cluster is None or config.platform is None:
        return None
    return config.cluster.name, config.platform.region
