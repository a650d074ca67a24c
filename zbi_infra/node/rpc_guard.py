"""The RPC guard's container, ConfigMap and volumes in a zebrad or zakurad pod (the config: render/rpc_guard.py).

It runs the njs gateway's image (nginx-unprivileged, as its user 101, whichever engine the gateway runs), nginx
itself rather than the image's entrypoint (whose scripts rewrite files under /etc/nginx, read-only here). It costs
one more container per node pod (GUARD_RESOURCES below); zcashd authenticates natively and gets none.
"""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra import kube
from zbi_infra.node.context import FULL_NODE, RPC_SECRET, InstanceContext
from zbi_infra.releases import GATEWAY
from zbi_infra.render.rpc_guard import NODE_LOOPBACK_RPC_PORT, authorization_include, rpc_guard_nginx_conf

CONTAINER = "rpc-guard"
# The key of the instance's `rpc-credentials` Secret that holds the guard's expected Authorization (an nginx include).
AUTHORIZATION_KEY = "rpc-guard-authorization.conf"
POD_CONFIG_DIR = "/etc/zbi-rpc-guard"
POD_AUTHORIZATION_DIR = "/etc/zbi-rpc-guard-credential"
POD_TEMP_DIR = "/tmp"
# nginx with buffering off holds a few pages per connection; the CPU is TLS-free proxying of a node's RPC.
GUARD_RESOURCES = k8s.core.v1.ResourceRequirementsArgs(
    requests={"cpu": "50m", "memory": "32Mi"}, limits={"cpu": "500m", "memory": "128Mi"}
)
GUARD_UID_SKIP = (
    f"CKV_K8S_40=the RPC guard runs as {GATEWAY.repository}'s own user {GATEWAY.user} (uid {GATEWAY.uid}, from its "
    "Dockerfile), which owns its nginx directories"
)


def rpc_guard_config(ctx: InstanceContext) -> str:
    return rpc_guard_nginx_conf(
        listen=f"0.0.0.0:{ctx.ports.rpc}",
        upstream=f"127.0.0.1:{NODE_LOOPBACK_RPC_PORT}",
        authorization_file=f"{POD_AUTHORIZATION_DIR}/{AUTHORIZATION_KEY}",
        temp_dir=POD_TEMP_DIR,
    )


def rpc_guard_config_map(ctx: InstanceContext, node_name: str) -> tuple[k8s.core.v1.ConfigMap, str]:
    """The guard's ConfigMap and a checksum of its content (a change rolls the pods)."""
    content = rpc_guard_config(ctx)
    config_map = k8s.core.v1.ConfigMap(
        f"{ctx.name}-{node_name}-rpc-guard",
        metadata=ctx.meta(f"{node_name}-rpc-guard", component=FULL_NODE, app=node_name),
        data={"nginx.conf": content},
        opts=ctx.in_namespace,
    )
    return config_map, hashlib.sha256(content.encode()).hexdigest()[:16]


def rpc_guard_container(ctx: InstanceContext) -> k8s.core.v1.ContainerArgs:
    # nginx accepting on the RPC port is what this container offers; zebrad's own readiness (/ready on the health
    # port) still decides whether the pod serves.
    def tcp_probe(period_seconds: int, failures: int) -> k8s.core.v1.ProbeArgs:
        return k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="rpc"),
            period_seconds=period_seconds,
            timeout_seconds=3,
            failure_threshold=failures,
        )

    return k8s.core.v1.ContainerArgs(
        name=CONTAINER,
        image=kube.image_ref(GATEWAY.repository, GATEWAY.tag, None),
        image_pull_policy="IfNotPresent",
        command=["nginx", "-e", "stderr", "-c", f"{POD_CONFIG_DIR}/nginx.conf", "-g", "daemon off;"],
        ports=[k8s.core.v1.ContainerPortArgs(name="rpc", container_port=ctx.ports.rpc)],
        readiness_probe=tcp_probe(10, 3),
        liveness_probe=tcp_probe(20, 3),
        resources=GUARD_RESOURCES,
        security_context=kube.container_security(GATEWAY.uid),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="rpc-guard-config", mount_path=POD_CONFIG_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="rpc-guard-credential", mount_path=POD_AUTHORIZATION_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="rpc-guard-tmp", mount_path=POD_TEMP_DIR),
        ],
    )


def rpc_guard_volumes(node_name: str) -> list[k8s.core.v1.VolumeArgs]:
    return [
        k8s.core.v1.VolumeArgs(
            name="rpc-guard-config",
            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=f"{node_name}-rpc-guard"),
        ),
        # Only the guard's key, readable by the pod's group (fsGroup) and no one else.
        k8s.core.v1.VolumeArgs(
            name="rpc-guard-credential",
            secret=k8s.core.v1.SecretVolumeSourceArgs(
                secret_name=RPC_SECRET,
                items=[k8s.core.v1.KeyToPathArgs(key=AUTHORIZATION_KEY, path=AUTHORIZATION_KEY)],
                default_mode=0o440,
            ),
        ),
        k8s.core.v1.VolumeArgs(name="rpc-guard-tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="64Mi")),
    ]


def credential_secret_data(user: str, password: pulumi.Output[str]) -> dict[str, pulumi.Output[str]]:
    """The guard's key for the instance's `rpc-credentials` Secret (a Pulumi secret, as the password it comes from)."""
    return {AUTHORIZATION_KEY: pulumi.Output.secret(password.apply(lambda p: authorization_include(user, p)))}
