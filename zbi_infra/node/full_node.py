"""The full-node tier of an instance: zebrad (or, on regtest only, the legacy zcashd) as a StatefulSet: its config
file, its Services and the StatefulSet that runs the containers of full_node_containers.py with their sidecars."""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra import kube
from zbi_infra.autoscaler import SAFE_TO_EVICT
from zbi_infra.config.instance import LightwalletKind, Network, NodeKind
from zbi_infra.node.context import (
    DATA_VOLUME,
    DEFAULT_IMAGES,
    FULL_NODE,
    SERVICE_ACCOUNT,
    SKIP_AWAIT,
    InstanceContext,
    tmp_volume,
)
from zbi_infra.node.full_node_containers import (
    ZEBRA_FAMILY,
    bootstrap_container,
    peer_forwarder,
    zcashd_container,
    zebra_container,
)
from zbi_infra.node.history_scaling import build_floor_claims, claim_spec, replica_plan
from zbi_infra.node.rpc_guard import GUARD_UID_SKIP, rpc_guard_config_map, rpc_guard_container, rpc_guard_volumes
from zbi_infra.node.zcashd_compat import ZCASHD_RPC_PORT_NAME, behind_gateway, zcashd_compat_container
from zbi_infra.render import zakurad, zcashd, zcashd_compat, zebrad
from zbi_infra.render.peering import regtest_forwards
from zbi_infra.zcash_ports import ZEBRA_METRICS_PORT

ZCASHD_SECRET_ENV_SKIP = (
    "CKV_K8S_35=zcashd's credentials reach it as -rpcuser/-rpcpassword expanded by the kubelet from Secret-backed "
    "env vars (never in the pod spec), so its zcash.conf stays a non-secret ConfigMap"
)
# The forwarders listen on loopback only, where no kubelet probe reaches; zebrad's /healthy (a connected peer) is the
# probe of the path they serve, and a socat that exits is restarted like any container.
FORWARDER_PROBE_SKIPS = (
    "CKV_K8S_8=the regtest peer forwarders listen on 127.0.0.1 only; zebrad's /healthy probes the peering they carry",
    "CKV_K8S_9=the regtest peer forwarders listen on 127.0.0.1 only; zebrad's /healthy probes the peering they carry",
)


def build_full_node(
    ctx: InstanceContext, rpc_secret: k8s.core.v1.Secret, restore_snapshot: str | None
) -> dict[str, k8s.core.v1.Service]:
    config, node = ctx.config, ctx.config.node
    name, kind = ctx.node_name, node.kind
    headless = f"{name}-headless"
    forwards = (
        regtest_forwards(
            statefulset=name,
            headless_domain=ctx.service_host(headless),
            replicas=node.replicas,
            p2p_port=ctx.ports.p2p,
        )
        if config.network is Network.REGTEST
        else []
    )
    if kind is NodeKind.ZAKURAD:
        file_name = "zakurad.toml"
        pruning = node.pruning
        content = zakurad.render_zakurad_toml(
            config.network,
            extra_options=node.extra_options,
            prune_retention_blocks=pruning.tx_retention_blocks if pruning else None,
            zcashd_compat=node.zcashd_compat is not None,
            readiness=node.readiness,
        )
    elif kind is NodeKind.ZEBRAD:
        file_name = "zebrad.toml"
        content = zebrad.render_zebrad_toml(
            config.network,
            regtest_peers=[f.local_address for f in forwards] if forwards else None,
            extra_options=node.extra_options,
            readiness=node.readiness,
        )
    else:
        file_name = "zcash.conf"
        content = zcashd.render_zcash_conf(
            config.network,
            # zcashd resolves peer names itself; connect= keeps a regtest node talking to its siblings only.
            regtest_peers=[f"{f.target_host}:{f.target_port}" for f in forwards],
            extra_options=node.extra_options,
            serve_light_wallet=config.lightwallet.kind is not LightwalletKind.NONE,
        )
    config_map = k8s.core.v1.ConfigMap(
        f"{ctx.name}-{name}-config",
        metadata=ctx.meta(f"{name}-config", component=FULL_NODE, app=name),
        data={file_name: content},
        opts=ctx.in_namespace,
    )

    match = kube.selector(instance=ctx.name, component=FULL_NODE)
    services = _services(ctx, name, headless, match)
    uid = DEFAULT_IMAGES[kind].uid
    if kind in ZEBRA_FAMILY:
        external_host = services["p2p"].status.apply(kube.load_balancer_address) if "p2p" in services else None
        container = zebra_container(ctx, uid, external_host)
    else:
        container = zcashd_container(ctx, uid)
    config_dir = ZEBRA_FAMILY[kind].CONFIG_DIR if kind in ZEBRA_FAMILY else zcashd.CONFIG_DIR
    container.volume_mounts = [
        k8s.core.v1.VolumeMountArgs(name=DATA_VOLUME, mount_path=_data_dir(kind)),
        k8s.core.v1.VolumeMountArgs(name="config", mount_path=config_dir, read_only=True),
        k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
    ]
    init_containers = []
    guarded = kind in ZEBRA_FAMILY
    guard_config, guard_checksum = rpc_guard_config_map(ctx, name) if guarded else (None, None)
    if node.bootstrap_archive is not None:
        init_containers.append(bootstrap_container(ctx, uid, node.bootstrap_archive))
    sidecars = [rpc_guard_container(ctx)] if guarded else []
    sidecars += [peer_forwarder(forward) for forward in forwards] if kind is NodeKind.ZEBRAD else []
    if node.zcashd_compat is not None:
        sidecars.append(zcashd_compat_container(ctx, uid))
    skips = ctx.checkov_skips(
        *([ZCASHD_SECRET_ENV_SKIP] if kind is NodeKind.ZCASHD or behind_gateway(ctx) else []),
        *(FORWARDER_PROBE_SKIPS if forwards and kind is NodeKind.ZEBRAD else ()),
        *([GUARD_UID_SKIP] if guarded else []),
        digest=node.image.digest,
        image=DEFAULT_IMAGES[kind],
    )
    # History instances: KEDA owns the replica count between a floor and a ceiling (node/history_scaling.py).
    plan = replica_plan(ctx, restore_snapshot)
    floor_claims = build_floor_claims(ctx, plan, match, restore_snapshot)
    # A StatefulSet rolls one pod at a time, replacing it: no surge.
    ctx.footprint.add_pods(plan.ceiling, [container, *sidecars], init_containers)
    ctx.footprint.add_claims(plan.ceiling, node.storage.size_gib)
    k8s.apps.v1.StatefulSet(
        f"{ctx.name}-{name}",
        metadata=ctx.meta(name, component=FULL_NODE, app=name, annotations={**skips, **SKIP_AWAIT}),
        spec=k8s.apps.v1.StatefulSetSpecArgs(
            service_name=headless,
            replicas=plan.replicas,
            # Regtest peers must all be up to find each other; chain nodes never depend on start order.
            pod_management_policy="Parallel",
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match),
            update_strategy=k8s.apps.v1.StatefulSetUpdateStrategyArgs(type="RollingUpdate"),
            # A deleted StatefulSet or a scale-down keeps its claims: chain data is days of sync (an elastic history
            # replica's is minutes from the newest snapshot, so its claim goes with it).
            persistent_volume_claim_retention_policy=k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                when_deleted="Retain", when_scaled=plan.when_scaled
            ),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels=kube.labels(instance=ctx.name, component=FULL_NODE, name=name),
                    annotations={
                        # A config change rolls the pods; Kubernetes does not restart on ConfigMap edits.
                        "zbi.io/config-checksum": hashlib.sha256(content.encode()).hexdigest()[:16],
                        **({"zbi.io/rpc-guard-checksum": guard_checksum} if guard_checksum else {}),
                        # The Cluster Autoscaler never drains a node for a full node: restarting one costs minutes
                        # to hours of reopening state, scale-down saves cents.
                        SAFE_TO_EVICT: "false",
                        **_scrape_annotations(kind),
                    },
                ),
                spec=k8s.core.v1.PodSpecArgs(
                    service_account_name=SERVICE_ACCOUNT,
                    automount_service_account_token=False,
                    priority_class_name=(ctx.args.priority_class_names or {}).get(FULL_NODE),
                    security_context=kube.pod_security(uid),
                    # zebrad flushes RocksDB and zcashd its LevelDB on SIGTERM; a kill mid-write costs a resync.
                    termination_grace_period_seconds=300 if kind in ZEBRA_FAMILY else 600,
                    init_containers=init_containers or None,
                    containers=[container, *sidecars],
                    volumes=[
                        k8s.core.v1.VolumeArgs(
                            name="config", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=f"{name}-config")
                        ),
                        tmp_volume(),
                        *(rpc_guard_volumes(name) if guarded else []),
                    ],
                    topology_spread_constraints=kube.zone_spread(match, strict=True),
                    affinity=kube.host_anti_affinity(match),
                    enable_service_links=False,
                ),
            ),
            volume_claim_templates=[
                k8s.core.v1.PersistentVolumeClaimArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=DATA_VOLUME, labels=match),
                    spec=claim_spec(ctx, source=plan.template_source, source_ref=plan.template_source_ref),
                )
            ],
        ),
        opts=ctx.child(
            depends_on=[config_map, rpc_secret, *([guard_config] if guard_config else []), *floor_claims],
            ignore_changes=["spec.replicas"] if plan.elastic else None,
        ),
    )
    kube.disruption_budget(ctx, name, FULL_NODE, match, replicas=plan.replicas)
    if node.replicas == 1:
        pulumi.log.warn(
            f"instance {ctx.name}: node.replicas is 1 — no redundancy and no PodDisruptionBudget; "
            "set replicas >= 2 for high availability",
            resource=ctx.component,
        )
    return services


def _data_dir(kind: NodeKind) -> str:
    return ZEBRA_FAMILY[kind].DATA_DIR if kind in ZEBRA_FAMILY else zcashd.DATA_DIR


def _scrape_annotations(kind: NodeKind) -> dict[str, str]:
    if kind in ZEBRA_FAMILY:
        return {"prometheus.io/scrape": "true", "prometheus.io/port": str(ZEBRA_METRICS_PORT)}
    return {"prometheus.io/scrape": "false"}


def _services(ctx: InstanceContext, name: str, headless: str, match: dict[str, str]) -> dict[str, k8s.core.v1.Service]:
    ports = ctx.ports
    services = {
        "headless": k8s.core.v1.Service(
            f"{ctx.name}-{name}-headless",
            metadata=ctx.meta(headless, component=FULL_NODE, app=name),
            spec=k8s.core.v1.ServiceSpecArgs(
                cluster_ip="None",
                # Peers of a regtest network must resolve each other before any is ready.
                publish_not_ready_addresses=True,
                selector=match,
                ports=[k8s.core.v1.ServicePortArgs(name="p2p", port=ports.p2p, target_port="p2p")],
            ),
            opts=ctx.in_namespace,
        ),
        # Only ready (synced) replicas serve RPC.
        "rpc": k8s.core.v1.Service(
            f"{ctx.name}-{name}-rpc",
            metadata=ctx.meta(f"{name}-rpc", component=FULL_NODE, app=name),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=match,
                ports=[
                    k8s.core.v1.ServicePortArgs(name="rpc", port=ports.rpc, target_port="rpc"),
                    # The zcashd sidecar's RPC, for the gateway only (NetworkPolicies), when it serves it.
                    *(
                        [
                            k8s.core.v1.ServicePortArgs(
                                name=ZCASHD_RPC_PORT_NAME, port=zcashd_compat.RPC_PORT, target_port=ZCASHD_RPC_PORT_NAME
                            )
                        ]
                        if behind_gateway(ctx)
                        else []
                    ),
                ],
            ),
            opts=ctx.in_namespace,
        ),
    }
    if ctx.config.node.inbound_p2p:
        ctx.footprint.add_service("LoadBalancer", 1)
        services["p2p"] = k8s.core.v1.Service(
            f"{ctx.name}-{name}-p2p",
            metadata=ctx.meta(
                f"{name}-p2p", component=FULL_NODE, app=name, annotations=ctx.args.load_balancer_annotations
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="LoadBalancer",
                external_traffic_policy="Local",
                selector=match,
                ports=[k8s.core.v1.ServicePortArgs(name="p2p", port=ports.p2p, target_port="p2p")],
            ),
            opts=ctx.in_namespace,
        )
    return services
