"""The zcashd sidecar of a Zakura instance in zcashd-compatibility mode (zbi_infra/render/zcashd_compat.py)."""

from __future__ import annotations

import pulumi_kubernetes as k8s

from zbi_infra import kube
from zbi_infra.node.context import DATA_VOLUME, InstanceContext, secret_env
from zbi_infra.releases import ZAKURAD
from zbi_infra.render import zakurad, zcashd_compat

# Opening zcashd's block index after an upgrade or a long outage takes hours; its RPC port opens early (warm-up).
STARTUP_BUDGET_SECONDS = 12 * 3600
# The sidecar's RPC port on the node's RPC Service, when the gateway serves it.
ZCASHD_RPC_PORT_NAME = "zcashd-rpc"


def behind_gateway(ctx: InstanceContext) -> bool:
    """The instance's zcashd sidecar is served by its access gateway (at /zcashd)."""
    return ctx.config.node.zcashd_compat is not None and ctx.args.access is not None


def zcashd_compat_container(ctx: InstanceContext, uid: int) -> k8s.core.v1.ContainerArgs:
    node = ctx.config.node
    gateway = behind_gateway(ctx)
    assert node.zcashd_compat is not None
    # The compat image of the same Zakura release (the zcashd build is pinned by that release's manifest).
    tag = zcashd_compat.image_tag(node.image.tag or ZAKURAD.tag)
    image = kube.image_ref(node.image.repository or ZAKURAD.repository, tag, None)

    def tcp_probe(period_seconds: int, failures: int) -> k8s.core.v1.ProbeArgs:
        return k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=zcashd_compat.RPC_PORT),
            period_seconds=period_seconds,
            timeout_seconds=5,
            failure_threshold=failures,
        )

    return k8s.core.v1.ContainerArgs(
        name="zcashd",
        image=image,
        image_pull_policy="IfNotPresent",
        command=[zcashd_compat.BINARY],
        args=zcashd_compat.sidecar_args(
            ctx.config.network, p2p_port=ctx.ports.p2p, wallet=node.zcashd_compat.wallet, behind_gateway=gateway
        ),
        # Its own home on the pod's scratch volume: the read-only root has none, and zcashd writes nothing there.
        env=[
            k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp"),
            *(secret_env(zcashd_compat.CREDENTIAL_ENV) if gateway else []),
        ],
        ports=[k8s.core.v1.ContainerPortArgs(name=ZCASHD_RPC_PORT_NAME, container_port=zcashd_compat.RPC_PORT)]
        if gateway
        else None,
        startup_probe=tcp_probe(30, STARTUP_BUDGET_SECONDS // 30),
        # The RPC port answers once zcashd runs; it is not a sync check (zcashd follows its zakurad).
        readiness_probe=tcp_probe(30, 3),
        liveness_probe=tcp_probe(60, 10),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name=DATA_VOLUME, mount_path=zakurad.DATA_DIR),
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
        ],
        resources=kube.resources(node.resources),
        security_context=kube.container_security(uid),
    )


def zcashd_upstream(ctx: InstanceContext) -> tuple[str | None, bool]:
    """GatewayUpstreams' zcashd fields: the sidecar's port on the node's RPC Service (None when the gateway does not
    serve it), and whether its wallet runs."""
    compat = ctx.config.node.zcashd_compat
    if compat is None or not behind_gateway(ctx):
        return None, False
    return f"{ctx.service_host(f'{ctx.node_name}-rpc')}:{zcashd_compat.RPC_PORT}", compat.wallet
