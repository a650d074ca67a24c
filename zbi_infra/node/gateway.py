"""The access gateway of an instance: nginx with njs, or OpenResty's with Lua (gateway.engine), in front of the
full node's JSON-RPC and the light-wallet server's gRPC, per-user keys, method allowlists and rate limits from the
instance's access file, and an mtail sidecar that turns its access log into Prometheus metrics.

Configuration lives in a ConfigMap: nginx reads the caller's entry of the user table (a file per key) on every
request, so a new key or a revocation takes effect once the kubelet refreshes the mounted files (about a minute),
without a restart. A change to `nginx.conf`, the engine's modules or the metrics program changes the pod template's
hash annotation and rolls the Deployment; nginx drains on the image's stop signal (SIGQUIT in both images),
finishing what it accepted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra import kube
from zbi_infra.config.access import AccessFile
from zbi_infra.config.resources import memory_mib
from zbi_infra.node.context import (
    RPC_USER,
    SERVICE_ACCOUNT,
    SKIP_AWAIT,
    InstanceContext,
    cpu_autoscaler,
    front_door_service,
    tmp_volume,
)
from zbi_infra.node.gateway_cache_volume import cache_volume, history_cache, nginx_resources
from zbi_infra.public_tls import tls_volume
from zbi_infra.releases import GATEWAY_ENGINE_IMAGES, MTAIL
from zbi_infra.render import gateway_metrics
from zbi_infra.render.gateway import (
    POD_CONFIG_DIR,
    POD_LISTEN_PORT,
    POD_TLS_DIR,
    POD_UPSTREAM_DIR,
    UPSTREAM_AUTH_INCLUDE_SUFFIX,
    UPSTREAM_AUTH_KEY,
    GatewayUpstreams,
    is_user_file,
    upstream_auth_directive,
    users_files,
)
from zbi_infra.render.gateway_nginx import pod_files
from zbi_infra.tls import CERTIFICATE_CHECKSUM_ANNOTATION

GATEWAY_COMPONENT = "gateway"
GATEWAY_NAME = "gateway"
UPSTREAM_SECRET = "gateway-upstream"
CONFIG_HASH_ANNOTATION = "zbi.io/gateway-config-sha256"
# Long enough for the load balancer to stop sending new connections before nginx starts draining.
PRE_STOP_SECONDS = 10
# What a draining replica gives in-flight calls; longer streams (GetBlockRange of the whole chain) reconnect.
DRAIN_SECONDS = 60
MTAIL_RESOURCES = k8s.core.v1.ResourceRequirementsArgs(
    requests={"cpu": "20m", "memory": "32Mi"}, limits={"cpu": "200m", "memory": "96Mi"}
)


@dataclass(frozen=True)
class GatewayEndpoints:
    # host:443 — a public hostname, the load balancer's name, or the in-cluster Service.
    endpoint: pulumi.Output[str]
    load_balancer_hostname: pulumi.Output[str] | None


def config_hash(files: dict[str, str]) -> str:
    """Of everything nginx and mtail read only at start: the user table is re-read per request and left out."""
    digest = hashlib.sha256()
    for name in sorted(files):
        if not is_user_file(name):
            digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()


def build_gateway(
    ctx: InstanceContext,
    access: AccessFile,
    upstreams: GatewayUpstreams,
    *,
    rpc_password: pulumi.Output[str],
    tls_secret: str,
    depends_on: list[pulumi.Resource],
    tls_checksum: pulumi.Input[str] | None = None,
    public_tls_secret: str | None = None,
) -> GatewayEndpoints:
    config = ctx.config
    settings = config.gateway
    match = kube.selector(instance=ctx.name, component=GATEWAY_COMPONENT)
    cache = history_cache(ctx)
    cache_storage = [cache_volume(ctx, cache)] if cache else []

    files = {
        **pod_files(
            access,
            upstreams,
            max_body_bytes=settings.max_body_kib * 1024,
            metrics_syslog=f"127.0.0.1:{gateway_metrics.SYSLOG_PORT}",
            memory_limit_mib=memory_mib(settings.resources.limits()["memory"]),
            history_cache=cache,
            engine=settings.engine,
        ),
        gateway_metrics.PROGRAM_FILE: gateway_metrics.mtail_program(),
    }
    data: pulumi.Input[dict[str, str]] = dict(files)
    probe_hash = ctx.args.probe_key_sha256
    if probe_hash is not None:
        # The hash of a random 256-bit key is no secret: the ConfigMap stays readable in every diff. It names the
        # probe's file, so the whole of the data waits for it.
        data = pulumi.Output.unsecret(pulumi.Output.from_input(probe_hash)).apply(
            lambda digest: {**files, **users_files(access, probe_key_sha256=digest)}
        )
    config_map = k8s.core.v1.ConfigMap(
        f"{ctx.name}-gateway-config",
        metadata=ctx.meta("gateway-config", component=GATEWAY_COMPONENT, app=GATEWAY_NAME),
        data=data,
        opts=ctx.in_namespace,
    )
    upstream_secret = k8s.core.v1.Secret(
        f"{ctx.name}-gateway-upstream",
        metadata=ctx.meta(UPSTREAM_SECRET, component=GATEWAY_COMPONENT, app=GATEWAY_NAME),
        type="Opaque",
        # The node's own credentials: the gateway replaces the caller's with these, never passing a user's key on.
        # rpc_password is a Pulumi secret, and so is what is derived from it.
        # The second key is the same, as the nginx directive nginx.conf includes at start (no per-request read); the
        # password is generated once per stack, and a new one replaces the node's pods and, by this Secret, needs
        # the gateways restarted (docs/gateway-limits.md).
        string_data={
            UPSTREAM_AUTH_KEY: rpc_password.apply(lambda p: f"{RPC_USER}:{p}"),
            UPSTREAM_AUTH_KEY + UPSTREAM_AUTH_INCLUDE_SUFFIX: rpc_password.apply(
                lambda p: upstream_auth_directive(f"{RPC_USER}:{p}")
            ),
        },
        opts=ctx.in_namespace,
    )

    # nginx-unprivileged for njs, OpenResty for Lua (zbi_infra/releases.py): each engine's binary and user.
    engine_image = GATEWAY_ENGINE_IMAGES[settings.engine]
    image = ctx.image_of(engine_image, settings.image)
    nginx_probe = k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path="/healthz", port="https", scheme="HTTPS"),
        period_seconds=10,
        timeout_seconds=3,
        failure_threshold=3,
    )
    nginx = k8s.core.v1.ContainerArgs(
        name=GATEWAY_NAME,
        image=image,
        image_pull_policy="IfNotPresent",
        # nginx itself, not the image's entrypoint or CMD (nginx-unprivileged's scripts rewrite files under
        # /etc/nginx, read-only here; OpenResty's CMD loads its own nginx.conf).
        command=[engine_image.binary, "-e", "stderr", "-c", f"{POD_CONFIG_DIR}/nginx.conf", "-g", "daemon off;"],
        ports=[k8s.core.v1.ContainerPortArgs(name="https", container_port=POD_LISTEN_PORT)],
        readiness_probe=nginx_probe,
        liveness_probe=nginx_probe,
        lifecycle=k8s.core.v1.LifecycleArgs(
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                exec_=k8s.core.v1.ExecActionArgs(command=["sleep", str(PRE_STOP_SECONDS)])
            )
        ),
        resources=nginx_resources(settings.resources, cache),
        security_context=kube.container_security(engine_image.uid),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="config", mount_path=POD_CONFIG_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="upstream", mount_path=POD_UPSTREAM_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="tls", mount_path=POD_TLS_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
            *(mount for _, mount in cache_storage),
        ],
    )
    metrics_probe = k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path="/metrics", port="metrics"),
        period_seconds=30,
        timeout_seconds=5,
        failure_threshold=3,
    )
    metrics = k8s.core.v1.ContainerArgs(
        name="metrics",
        image=kube.image_ref(MTAIL.repository, MTAIL.tag, None),
        image_pull_policy="IfNotPresent",
        args=[
            f"--progs={POD_CONFIG_DIR}",
            f"--logs=udp://127.0.0.1:{gateway_metrics.SYSLOG_PORT}",
            f"--port={gateway_metrics.METRICS_PORT}",
            "--emit_prog_label=false",
            "--logtostderr",
        ],
        ports=[k8s.core.v1.ContainerPortArgs(name="metrics", container_port=gateway_metrics.METRICS_PORT)],
        readiness_probe=metrics_probe,
        liveness_probe=metrics_probe,
        resources=MTAIL_RESOURCES,
        security_context=kube.container_security(MTAIL.uid),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="config", mount_path=POD_CONFIG_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
        ],
    )
    # The metrics sidecar is pinned by tag even when nginx is pinned by digest.
    skips = ctx.checkov_skips(digest=None, image=engine_image)
    # At the HPA's maximum, plus the one replica a rollout surges.
    ctx.footprint.add_pods(settings.max_replicas + 1, [nginx, metrics])
    deployment = k8s.apps.v1.Deployment(
        f"{ctx.name}-gateway",
        metadata=ctx.meta(GATEWAY_NAME, component=GATEWAY_COMPONENT, annotations={**skips, **SKIP_AWAIT}),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=settings.min_replicas,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match),
            # A new replica is ready before an old one goes: capacity never drops during a rollout.
            strategy=k8s.apps.v1.DeploymentStrategyArgs(
                type="RollingUpdate",
                rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
            ),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels=kube.labels(instance=ctx.name, component=GATEWAY_COMPONENT, name=GATEWAY_NAME),
                    annotations={
                        CONFIG_HASH_ANNOTATION: config_hash(files),
                        # nginx reads its certificate only at start: a renewed one rolls the pods.
                        **({CERTIFICATE_CHECKSUM_ANNOTATION: tls_checksum} if tls_checksum else {}),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(gateway_metrics.METRICS_PORT),
                    },
                ),
                spec=k8s.core.v1.PodSpecArgs(
                    service_account_name=SERVICE_ACCOUNT,
                    automount_service_account_token=False,
                    priority_class_name=(ctx.args.priority_class_names or {}).get(GATEWAY_COMPONENT),
                    security_context=kube.pod_security(engine_image.uid),
                    termination_grace_period_seconds=PRE_STOP_SECONDS + DRAIN_SECONDS,
                    containers=[nginx, metrics],
                    volumes=[
                        k8s.core.v1.VolumeArgs(
                            name="config",
                            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name="gateway-config"),
                        ),
                        k8s.core.v1.VolumeArgs(
                            name="upstream", secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=UPSTREAM_SECRET)
                        ),
                        tls_volume(tls_secret, public_tls_secret),  # zbi_infra/public_tls.py
                        tmp_volume(),
                        *(volume for volume, _ in cache_storage),
                    ],
                    topology_spread_constraints=kube.zone_spread(match, strict=False),
                    enable_service_links=False,
                ),
            ),
        ),
        # The HPA owns the replica count once running.
        opts=ctx.child(depends_on=[config_map, upstream_secret, *depends_on], ignore_changes=["spec.replicas"]),
    )
    cpu_autoscaler(
        ctx,
        deployment,
        kind="Deployment",
        name=GATEWAY_NAME,
        component=GATEWAY_COMPONENT,
        replicas=(settings.min_replicas, settings.max_replicas),
        target_cpu_percent=settings.target_cpu_percent,
    )
    kube.disruption_budget(ctx, GATEWAY_NAME, GATEWAY_COMPONENT, match, replicas=settings.min_replicas)

    public = config.endpoints.public_grpc
    service = front_door_service(
        ctx,
        f"{ctx.name}-gateway-service",
        GATEWAY_NAME,
        component=GATEWAY_COMPONENT,
        app=GATEWAY_NAME,
        selector=match,
        public=public,
        ports=[k8s.core.v1.ServicePortArgs(name="https", port=443, target_port="https")],
    )
    if not public:
        return GatewayEndpoints(pulumi.Output.from_input(f"{ctx.service_host(GATEWAY_NAME)}:443"), None)
    hostname = service.status.apply(kube.load_balancer_address)
    if config.endpoints.hostnames:
        return GatewayEndpoints(pulumi.Output.from_input(f"{config.endpoints.hostnames[0]}:443"), hostname)
    return GatewayEndpoints(hostname.apply(lambda host: f"{host}:443"), hostname)
