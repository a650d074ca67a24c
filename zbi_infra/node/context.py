"""What every workload of one instance shares: its names, namespace, labels, images and Pulumi options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra import kube
from zbi_infra.config.instance import ImageConfig, InstanceConfig, LightwalletKind, NodeKind
from zbi_infra.node.quota import Footprint
from zbi_infra.releases import LIGHTWALLETD, ZAINO, ZAINO_NO_TLS_TAG, ZAKURAD, ZCASHD, ZEBRAD, Image
from zbi_infra.zcash_ports import PORTS, NetworkPorts

if TYPE_CHECKING:
    from zbi_infra.node.component import ZcashNodeArgs

FULL_NODE = "full-node"
LIGHT_WALLET = "light-wallet"
RPC_USER = "zbi"
RPC_SECRET = "rpc-credentials"
SERVICE_ACCOUNT = "zcash"
DATA_VOLUME = "data"
MONITORING_NAMESPACE_LABEL = "zbi.io/monitoring"
# Pods in other namespaces with this label may call an instance's internal gRPC.
GRPC_CLIENT_LABEL = "zbi.io/grpc-client"
DEFAULT_IMAGES: dict[NodeKind | LightwalletKind, Image] = {
    NodeKind.ZEBRAD: ZEBRAD,
    NodeKind.ZAKURAD: ZAKURAD,
    NodeKind.ZCASHD: ZCASHD,
    LightwalletKind.LIGHTWALLETD: LIGHTWALLETD,
    LightwalletKind.ZAINO: ZAINO,
}
DIGEST_SKIP = (
    "CKV_K8S_43=an image of this pod has no digest in zbi_infra/data/image-digests.json (tools/pin_images.py) "
    "and runs by version tag; set image.digest in the instance config to pin it"
)
PULL_POLICY_SKIP = (
    "CKV_K8S_15=IfNotPresent: pinned tags never move, and a registry outage must not stop a node restarting"
)
# checkov CKV_K8S_40: uids from 10000 cannot collide with a host's users.
HIGH_UID = 10000
# Pulumi would otherwise wait for every replica to be Ready, which for a chain node is a first sync (hours to days).
# Rollouts stay safe without it: readiness probes gate traffic and the PodDisruptionBudget limits disruption.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}


def namespace_of(instance: str) -> str:
    """The one place an instance's namespace name is made."""
    return f"zbi-{instance}"


@dataclass
class InstanceContext:
    name: str
    config: InstanceConfig
    args: ZcashNodeArgs
    component: pulumi.ComponentResource
    in_namespace: pulumi.ResourceOptions
    # What the instance's workloads may ask for at most: the builders declare their pods, the quota follows.
    footprint: Footprint = field(default_factory=Footprint)

    @property
    def namespace(self) -> str:
        return namespace_of(self.name)

    @property
    def ports(self) -> NetworkPorts:
        return PORTS[self.config.network]

    @property
    def node_name(self) -> str:
        return self.config.node.kind.value

    def service_host(self, service: str) -> str:
        return f"{service}.{self.namespace}.svc.{self.args.cluster_domain}"

    def child(self, **options: object) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self.component, **options)  # type: ignore[arg-type]

    def meta(
        self,
        name: str,
        *,
        component: str | None = None,
        app: str | None = None,
        annotations: dict[str, str] | None = None,
    ) -> k8s.meta.v1.ObjectMetaArgs:
        labels = {"app.kubernetes.io/part-of": kube.PART_OF, "app.kubernetes.io/instance": self.name}
        if component:
            labels = kube.labels(instance=self.name, component=component, name=app or component)
        return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=self.namespace, labels=labels, annotations=annotations)

    def image(self, kind: NodeKind | LightwalletKind, override: ImageConfig, *, tls: bool = True) -> str:
        default = DEFAULT_IMAGES[kind]
        tag = default.tag if kind is not LightwalletKind.ZAINO or tls else ZAINO_NO_TLS_TAG
        return self.image_of(default, override, tag=tag)

    def image_of(self, default: Image, override: ImageConfig, *, tag: str | None = None) -> str:
        return kube.image_ref(
            override.repository or default.repository, override.tag or tag or default.tag, override.digest
        )

    def checkov_skips(self, *reasons: str, digest: str | None, image: Image | None = None) -> dict[str, str]:
        skips = list(reasons) + ([] if digest else [DIGEST_SKIP]) + [PULL_POLICY_SKIP]
        if image is not None and image.uid < HIGH_UID:
            skips.append(
                f"CKV_K8S_40={image.repository} runs as its own user {image.user} (uid {image.uid}, from its "
                "Dockerfile), which owns its home and working directory; another uid could not enter them"
            )
        return {f"checkov.io/skip{i}": reason for i, reason in enumerate(skips, start=1)}


def secret_env(names: dict[str, str]) -> list[k8s.core.v1.EnvVarArgs]:
    """The RPC credentials from the instance's Secret, as environment variables named per consumer."""

    def from_secret(env: str, key: str) -> k8s.core.v1.EnvVarArgs:
        return k8s.core.v1.EnvVarArgs(
            name=env,
            value_from=k8s.core.v1.EnvVarSourceArgs(
                secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=RPC_SECRET, key=key)
            ),
        )

    return [from_secret(names["username"], "username"), from_secret(names["password"], "password")]


def tmp_volume() -> k8s.core.v1.VolumeArgs:
    return k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="1Gi"))


def front_door_service(
    ctx: InstanceContext,
    resource_name: str,
    name: str,
    *,
    component: str,
    app: str,
    selector: dict[str, str],
    public: bool,
    ports: list[k8s.core.v1.ServicePortArgs],
) -> k8s.core.v1.Service:
    """The Service clients reach an instance through: a load balancer limited to `endpoints.allowedCidrs` when
    `public`, else cluster-internal."""
    ctx.footprint.add_service("LoadBalancer" if public else "ClusterIP", len(ports))
    return k8s.core.v1.Service(
        resource_name,
        metadata=ctx.meta(
            name, component=component, app=app, annotations=_front_door_annotations(ctx) if public else None
        ),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="LoadBalancer" if public else "ClusterIP",
            # Local: no kube-proxy SNAT, so pods see client addresses: the NetworkPolicy enforces allowedCidrs and
            # per-address rate limits count addresses (the NLB health-checks each node's kube-proxy, which answers
            # only on nodes with a ready pod).
            external_traffic_policy="Local" if public else None,
            selector=selector,
            load_balancer_source_ranges=ctx.config.endpoints.allowed_cidrs if public else None,
            ports=ports,
        ),
        opts=pulumi.ResourceOptions.merge(ctx.in_namespace, pulumi.ResourceOptions(depends_on=[controller]))
        if (controller := ctx.args.load_balancer_controller) is not None and public
        else ctx.in_namespace,
    )


def _front_door_annotations(ctx: InstanceContext) -> Any:
    own = ctx.args.front_door_annotations
    return dict(own) if own is not None else ctx.args.load_balancer_annotations


def cpu_autoscaler(
    ctx: InstanceContext,
    workload: k8s.apps.v1.Deployment | k8s.apps.v1.StatefulSet,
    *,
    kind: str,
    name: str,
    component: str,
    replicas: tuple[int, int],
    target_cpu_percent: int,
    scale_down_window_seconds: int | None = None,
) -> k8s.autoscaling.v2.HorizontalPodAutoscaler:
    """An HPA on CPU for a tier's `kind`/`name` between `replicas` (min, max); the workload ignores its replica count
    once this owns it."""
    behavior = (
        k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
            scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(stabilization_window_seconds=scale_down_window_seconds)
        )
        if scale_down_window_seconds is not None
        else None
    )
    return k8s.autoscaling.v2.HorizontalPodAutoscaler(
        f"{ctx.name}-{name}-hpa",
        metadata=ctx.meta(name, component=component, app=name),
        spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
            scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                api_version="apps/v1", kind=kind, name=name
            ),
            min_replicas=replicas[0],
            max_replicas=replicas[1],
            metrics=[kube.cpu_utilization(target_cpu_percent)],
            behavior=behavior,
        ),
        opts=ctx.child(depends_on=[workload]),
    )
