"""The light-wallet tier of an instance: lightwalletd or Zaino, autoscaled, each replica with its own cache volume."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra import kube
from zbi_infra.config.instance import LightwalletKind
from zbi_infra.node.context import (
    DEFAULT_IMAGES,
    LIGHT_WALLET,
    RPC_USER,
    SERVICE_ACCOUNT,
    SKIP_AWAIT,
    InstanceContext,
    cpu_autoscaler,
    front_door_service,
    secret_env,
    tmp_volume,
)
from zbi_infra.render import lightwallet
from zbi_infra.render.startup import wait_for_tcp_script
from zbi_infra.tls import CERTIFICATE_CHECKSUM_ANNOTATION
from zbi_infra.zcash_ports import LIGHTWALLETD_GRPC_PORT, LIGHTWALLETD_HTTP_PORT, ZAINO_GRPC_PORT

LIGHTWALLET_STARTUP_BUDGET_SECONDS = 2 * 3600
SECRET_ENV_SKIP = (
    "CKV_K8S_35=lightwalletd reads RPC credentials from flags or env vars only, not files; the env vars come from "
    "a Secret, never from the pod spec"
)


@dataclass(frozen=True)
class LightWalletEndpoints:
    grpc_endpoint: pulumi.Output[str]
    # The public load balancer's DNS name once it has one; None for a cluster-internal endpoint.
    load_balancer_hostname: pulumi.Output[str] | None
    # The tier's Service: what a gateway in front of it resolves when it starts.
    service: k8s.core.v1.Service


def grpc_port(kind: LightwalletKind) -> int:
    return LIGHTWALLETD_GRPC_PORT if kind is LightwalletKind.LIGHTWALLETD else ZAINO_GRPC_PORT


def build_light_wallet(
    ctx: InstanceContext,
    rpc_service: k8s.core.v1.Service,
    *,
    rpc_password: pulumi.Output[str],
    tls_secret: str | None,
    behind_gateway: bool,
    tls_checksum: pulumi.Input[str] | None = None,
) -> LightWalletEndpoints:
    """`behind_gateway`: the instance's gateway is its public face, and this tier's Service stays in the cluster."""
    config, tier = ctx.config, ctx.config.lightwallet
    kind = tier.kind
    name = kind.value
    image = DEFAULT_IMAGES[kind]
    match = kube.selector(instance=ctx.name, component=LIGHT_WALLET)
    tls = tls_secret is not None
    port = grpc_port(kind)
    data_dir = lightwallet.LIGHTWALLETD_DATA_DIR if kind is LightwalletKind.LIGHTWALLETD else lightwallet.ZAINO_DATA_DIR
    mounts = [
        k8s.core.v1.VolumeMountArgs(name="cache", mount_path=data_dir),
        k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
    ]
    volumes = [tmp_volume()]
    if tls_secret:
        mounts.append(k8s.core.v1.VolumeMountArgs(name="tls", mount_path=lightwallet.TLS_DIR, read_only=True))
        volumes.append(
            k8s.core.v1.VolumeArgs(name="tls", secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=tls_secret))
        )
    rpc_host = ctx.service_host(f"{ctx.node_name}-rpc")
    skips: dict[str, str]
    if kind is LightwalletKind.LIGHTWALLETD:
        skips = ctx.checkov_skips(SECRET_ENV_SKIP, digest=tier.image.digest, image=image)
        ports = [
            k8s.core.v1.ContainerPortArgs(name="grpc", container_port=LIGHTWALLETD_GRPC_PORT),
            k8s.core.v1.ContainerPortArgs(name="metrics", container_port=LIGHTWALLETD_HTTP_PORT),
        ]
        # The binary (the image's ENTRYPOINT), as the image's lightwalletd user.
        command = ["lightwalletd", *lightwallet.lightwalletd_args(rpc_host=rpc_host, rpc_port=ctx.ports.rpc, tls=tls)]
        env: list[k8s.core.v1.EnvVarArgs] = secret_env(lightwallet.LIGHTWALLETD_CREDENTIAL_ENV)
        scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(LIGHTWALLETD_HTTP_PORT)}
    else:
        skips = ctx.checkov_skips(digest=tier.image.digest, image=image)
        ports = [k8s.core.v1.ContainerPortArgs(name="grpc", container_port=ZAINO_GRPC_PORT)]
        zaino_toml = rpc_password.apply(
            lambda password: lightwallet.render_zaino_toml(
                config.network,
                validator_address=f"{rpc_host}:{ctx.ports.rpc}",
                rpc_user=RPC_USER,
                rpc_password=password,
                tls=tls,
            )
        )
        k8s.core.v1.Secret(
            f"{ctx.name}-zaino-config",
            metadata=ctx.meta("zaino-config", component=LIGHT_WALLET, app=name),
            type="Opaque",
            # A Secret because it holds the RPC password (Zaino refuses passwords from the environment).
            string_data={lightwallet.ZAINO_CONFIG_FILE: zaino_toml},
            opts=ctx.in_namespace,
        )
        volumes.append(
            k8s.core.v1.VolumeArgs(name="config", secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name="zaino-config"))
        )
        mounts.append(k8s.core.v1.VolumeMountArgs(name="config", mount_path="/etc/zaino", read_only=True))
        # `zainod start --config FILE` (zainod/src/cli.rs); the image's entrypoint only creates directories.
        command = ["zainod", "start", "--config", lightwallet.ZAINO_CONFIG_PATH]
        # Zaino's default paths are built from HOME even when the config names them.
        env = [k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp")]
        scrape = {"prometheus.io/scrape": "false"}

    def tcp_probe(period_seconds: int, failures: int) -> k8s.core.v1.ProbeArgs:
        return k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="grpc"),
            period_seconds=period_seconds,
            timeout_seconds=5,
            failure_threshold=failures,
        )

    image_ref = ctx.image(kind, tier.image, tls=tls)
    security = kube.container_security(image.uid)
    # lightwalletd exits after ten failed tries to reach its node (common/common.go FirstRPC), and the RPC Service
    # lists only ready nodes: without this wait it would crash-loop through a node's whole initial sync.
    wait_for_node = k8s.core.v1.ContainerArgs(
        name="wait-for-node",
        image=image_ref,
        image_pull_policy="IfNotPresent",
        command=["bash", "-c", wait_for_tcp_script(rpc_host, ctx.ports.rpc)],
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": "10m", "memory": "16Mi"}, limits={"cpu": "100m", "memory": "64Mi"}
        ),
        security_context=security,
    )
    container = k8s.core.v1.ContainerArgs(
        name=name,
        image=image_ref,
        image_pull_policy="IfNotPresent",
        ports=ports,
        startup_probe=tcp_probe(10, LIGHTWALLET_STARTUP_BUDGET_SECONDS // 10),
        readiness_probe=tcp_probe(10, 3),
        liveness_probe=tcp_probe(30, 5),
        volume_mounts=mounts,
        resources=kube.resources(tier.resources),
        security_context=security,
        command=command,
        env=env,
    )
    # At the HPA's maximum; claims of replicas scaled away are retained, so they count too.
    ctx.footprint.add_pods(tier.max_replicas, [container], [wait_for_node])
    ctx.footprint.add_claims(tier.max_replicas, tier.cache_size_gib)
    # A StatefulSet so that each replica keeps its own compact-block cache across restarts.
    statefulset = k8s.apps.v1.StatefulSet(
        f"{ctx.name}-{name}",
        metadata=ctx.meta(name, component=LIGHT_WALLET, app=name, annotations={**skips, **SKIP_AWAIT}),
        spec=k8s.apps.v1.StatefulSetSpecArgs(
            service_name=f"{name}-grpc",
            replicas=tier.min_replicas,
            pod_management_policy="Parallel",
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match),
            persistent_volume_claim_retention_policy=k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                when_deleted="Retain", when_scaled="Retain"
            ),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels=kube.labels(instance=ctx.name, component=LIGHT_WALLET, name=name),
                    # A renewed certificate rolls the pods: lightwalletd and Zaino read it only at start.
                    annotations={**scrape, **({CERTIFICATE_CHECKSUM_ANNOTATION: tls_checksum} if tls_checksum else {})},
                ),
                spec=k8s.core.v1.PodSpecArgs(
                    service_account_name=SERVICE_ACCOUNT,
                    automount_service_account_token=False,
                    priority_class_name=(ctx.args.priority_class_names or {}).get(LIGHT_WALLET),
                    security_context=kube.pod_security(image.uid),
                    termination_grace_period_seconds=60,
                    init_containers=[wait_for_node],
                    containers=[container],
                    volumes=volumes,
                    topology_spread_constraints=kube.zone_spread(match, strict=False),
                    enable_service_links=False,
                ),
            ),
            volume_claim_templates=[
                k8s.core.v1.PersistentVolumeClaimArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name="cache", labels=match),
                    spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                        access_modes=["ReadWriteOnce"],
                        storage_class_name=ctx.args.cache_storage_class_name or ctx.args.storage_class_name,
                        resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                            requests={"storage": f"{tier.cache_size_gib}Gi"}
                        ),
                    ),
                )
            ],
        ),
        # The HPA owns the replica count once running.
        opts=ctx.child(depends_on=[rpc_service], ignore_changes=["spec.replicas"]),
    )
    cpu_autoscaler(
        ctx,
        statefulset,
        kind="StatefulSet",
        name=name,
        component=LIGHT_WALLET,
        replicas=(tier.min_replicas, tier.max_replicas),
        target_cpu_percent=tier.target_cpu_percent,
        # A new replica first fills its cache; scaling down too eagerly throws that work away.
        scale_down_window_seconds=900,
    )
    kube.disruption_budget(ctx, name, LIGHT_WALLET, match, replicas=tier.min_replicas)

    public = config.endpoints.public_grpc and not behind_gateway
    service = front_door_service(
        ctx,
        f"{ctx.name}-{name}-grpc",
        f"{name}-grpc",
        component=LIGHT_WALLET,
        app=name,
        selector=match,
        public=public,
        ports=[
            k8s.core.v1.ServicePortArgs(
                name="grpc", port=443 if public else port, target_port="grpc", app_protocol="grpc"
            )
        ],
    )
    if not public:
        return LightWalletEndpoints(
            pulumi.Output.from_input(f"{ctx.service_host(f'{name}-grpc')}:{port}"), None, service
        )
    hostname = service.status.apply(kube.load_balancer_address)
    if config.endpoints.hostnames:
        return LightWalletEndpoints(pulumi.Output.from_input(f"{config.endpoints.hostnames[0]}:443"), hostname, service)
    return LightWalletEndpoints(hostname.apply(lambda host: f"{host}:443"), hostname, service)
