"""The full node's containers: zebrad or Zakura's zakurad (HTTP health probes, the advertised external address) or
zcashd (JSON-RPC probes), the bootstrap init container that unpacks a state archive, and the socat forwarders that
let regtest peers reach each other. full_node.py puts them in the StatefulSet.

Each runs the image's binary directly, as the image's own user (tests/fixtures/upstream/*/Dockerfile): the images'
entrypoint scripts chown and create directories as root, which a non-root pod with a read-only root filesystem cannot
do, and zBI's volumes are already owned through fsGroup.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra import kube
from zbi_infra.config.instance import BootstrapArchiveConfig, NodeKind
from zbi_infra.node.context import DATA_VOLUME, InstanceContext, secret_env
from zbi_infra.releases import SOCAT
from zbi_infra.render import zakurad, zcashd, zebrad
from zbi_infra.render.bootstrap import GIB, render_bootstrap_script
from zbi_infra.render.peering import PeerForward, socat_args
from zbi_infra.render.startup import EXTERNAL_HOST_ENV, advertise_external_address_script
from zbi_infra.zcash_ports import ZEBRA_HEALTH_PORT, ZEBRA_METRICS_PORT

# Zebra and its fork Zakura: the same probes, ports and layout, each under its own paths (render/zebrad.py, zakurad.py).
ZEBRA_FAMILY = {NodeKind.ZEBRAD: zebrad, NodeKind.ZAKURAD: zakurad}
# Startup budgets: opening (and migrating) a large state database can take hours after an upgrade.
ZEBRAD_STARTUP_BUDGET_SECONDS = 6 * 3600
ZCASHD_STARTUP_BUDGET_SECONDS = 12 * 3600
ZCASHD_CREDENTIAL_ENV = {"username": "RPC_USER", "password": "RPC_PASSWORD"}
FORWARDER_RESOURCES = k8s.core.v1.ResourceRequirementsArgs(
    requests={"cpu": "10m", "memory": "16Mi"}, limits={"cpu": "200m", "memory": "64Mi"}
)


def zebrad_command() -> list[str]:
    return ["zebrad", "-c", zebrad.CONFIG_PATH, "start"]


def zebra_container(
    ctx: InstanceContext, uid: int, external_host: pulumi.Output[str] | None
) -> k8s.core.v1.ContainerArgs:
    node, ports = ctx.config.node, ctx.ports

    def http_probe(path: str, period_seconds: int, failures: int) -> k8s.core.v1.ProbeArgs:
        return k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port="health"),
            period_seconds=period_seconds,
            timeout_seconds=5,
            failure_threshold=failures,
            success_threshold=1,
        )

    # zebrad reads only its own config file here: no ZEBRA_* variable is set, so none overrides it.
    env = [k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp")]
    kind = node.kind
    command = zakurad.zakurad_command() if kind is NodeKind.ZAKURAD else zebrad_command()
    if external_host is not None:
        env.append(k8s.core.v1.EnvVarArgs(name=EXTERNAL_HOST_ENV, value=external_host))
        command = ["/bin/sh", "-c", advertise_external_address_script(p2p_port=ports.p2p, command=command)]
    return k8s.core.v1.ContainerArgs(
        name=kind.value,
        image=ctx.image(kind, node.image),
        image_pull_policy="IfNotPresent",
        command=command,
        ports=[
            # No RPC port: zebrad's RPC listens on 127.0.0.1 only, behind the RPC guard (node/rpc_guard.py).
            k8s.core.v1.ContainerPortArgs(name="p2p", container_port=ports.p2p),
            k8s.core.v1.ContainerPortArgs(name="health", container_port=ZEBRA_HEALTH_PORT),
            k8s.core.v1.ContainerPortArgs(name="metrics", container_port=ZEBRA_METRICS_PORT),
        ],
        env=env,
        # /healthy: the node has peers. /ready: synced to within ready_max_blocks_behind of the network tip and a
        # tip grown within ready_max_tip_age. The readiness probe's numbers feed tests/readiness_model.py: a lagging
        # replica leaves within 5 s (zebrad's progress loop) + 3 x 15 s, and the thresholds, not the probe, absorb
        # ordinary block gaps.
        startup_probe=http_probe("/healthy", 10, ZEBRAD_STARTUP_BUDGET_SECONDS // 10),
        readiness_probe=http_probe("/ready", 15, 3),
        # Five minutes without peers: restart. A restart also clears zebrad's in-memory banlist, the known cure
        # for stalls on banned peers around network upgrades.
        liveness_probe=http_probe("/healthy", 30, 10),
        resources=kube.resources(node.resources),
        security_context=kube.container_security(uid),
    )


def zcashd_container(ctx: InstanceContext, uid: int) -> k8s.core.v1.ContainerArgs:
    node, ports = ctx.config.node, ctx.ports
    cli = (
        f"zcash-cli -conf={zcashd.CONFIG_PATH} -datadir={zcashd.DATA_DIR}"
        ' -rpcuser="$RPC_USER" -rpcpassword="$RPC_PASSWORD"'
    )

    def rpc_probe(script: str, period_seconds: int, failures: int) -> k8s.core.v1.ProbeArgs:
        return k8s.core.v1.ProbeArgs(
            exec_=k8s.core.v1.ExecActionArgs(command=["sh", "-c", script]),
            period_seconds=period_seconds,
            timeout_seconds=20,
            failure_threshold=failures,
        )

    # A real RPC round trip: zcashd answers -28 (warming up) until its block index is loaded. On regtest (the only
    # network zcashd runs on) there is no tip to catch up with, so a loaded index is ready.
    answers = f"{cli} getblockcount >/dev/null"
    return k8s.core.v1.ContainerArgs(
        name="zcashd",
        image=ctx.image(NodeKind.ZCASHD, node.image),
        image_pull_policy="IfNotPresent",
        # The binary itself, not /entrypoint.sh: that script `touch`es a file under the read-only root filesystem.
        command=[
            "zcashd",
            f"-conf={zcashd.CONFIG_PATH}",
            f"-datadir={zcashd.DATA_DIR}",
            "-printtoconsole",
            "-rpcuser=$(RPC_USER)",
            "-rpcpassword=$(RPC_PASSWORD)",
        ],
        ports=[
            k8s.core.v1.ContainerPortArgs(name="p2p", container_port=ports.p2p),
            k8s.core.v1.ContainerPortArgs(name="rpc", container_port=ports.rpc),
        ],
        env=[k8s.core.v1.EnvVarArgs(name="HOME", value=zcashd.DATA_DIR), *secret_env(ZCASHD_CREDENTIAL_ENV)],
        startup_probe=rpc_probe(answers, 30, ZCASHD_STARTUP_BUDGET_SECONDS // 30),
        readiness_probe=rpc_probe(answers, 30, 3),
        liveness_probe=rpc_probe(answers, 60, 5),
        resources=kube.resources(node.resources),
        security_context=kube.container_security(uid),
    )


def peer_forwarder(forward: PeerForward) -> k8s.core.v1.ContainerArgs:
    return k8s.core.v1.ContainerArgs(
        name=f"peer-{forward.replica}",
        image=kube.image_ref(SOCAT.repository, SOCAT.tag, None),
        image_pull_policy="IfNotPresent",
        command=[SOCAT.binary],
        args=socat_args(forward),
        resources=FORWARDER_RESOURCES,
        security_context=kube.container_security(SOCAT.uid),
    )


def bootstrap_container(ctx: InstanceContext, uid: int, archive: BootstrapArchiveConfig) -> k8s.core.v1.ContainerArgs:
    layout = ZEBRA_FAMILY[ctx.config.node.kind]
    script = render_bootstrap_script(
        url=archive.url,
        sha256=archive.sha256,
        data_dir=layout.DATA_DIR,
        target_dir=layout.STATE_DIR,
        strip_components=archive.strip_components,
        gzip=archive.compression == "gzip",
        archive_bytes=archive.size_gib * GIB,
        extracted_bytes=archive.extracted_size_gib * GIB,
    )
    return k8s.core.v1.ContainerArgs(
        name="bootstrap",
        image=ctx.image(ctx.config.node.kind, ctx.config.node.image),
        image_pull_policy="IfNotPresent",
        command=["/bin/sh", "-c", script],
        # A volume without room stops the script with the fix as its last line: `kubectl describe pod` shows it.
        termination_message_policy="FallbackToLogsOnError",
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name=DATA_VOLUME, mount_path=layout.DATA_DIR),
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
        ],
        resources=kube.resources(ctx.config.node.resources),
        security_context=kube.container_security(uid),
    )
