"""ZcashNode: one Zcash instance on Kubernetes — a full-node StatefulSet and an autoscaled light-wallet tier.

Nothing here assumes AWS: the caller hands in a StorageClass name and, for public endpoints, the load-balancer
annotations of its platform.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from zbi_infra import kube
from zbi_infra.config.instance import InstanceConfig, LightwalletKind, Network, NodeKind
from zbi_infra.render import lightwallet, zcashd, zebrad
from zbi_infra.tls import ServerCertificate, ZbiCertificateAuthority
from zbi_infra.zcash_ports import (
    LIGHTWALLETD_GRPC_PORT,
    LIGHTWALLETD_HTTP_PORT,
    PORTS,
    ZAINO_GRPC_PORT,
    ZEBRA_HEALTH_PORT,
    ZEBRA_METRICS_PORT,
)

DEFAULT_IMAGES = {
    NodeKind.ZEBRAD: ("zfnd/zebra", "6.3.0"),
    NodeKind.ZCASHD: ("electriccoinco/zcashd", "v6.3.0"),
    LightwalletKind.LIGHTWALLETD: ("electriccoinco/lightwalletd", "v0.4.18"),
    LightwalletKind.ZAINO: ("zingodevops/zainod", "0.1.2"),
}
# Fixed, high UIDs: every writable path is a mounted volume owned through fsGroup, so images need no home directory.
UIDS = {
    NodeKind.ZEBRAD: 10001,
    NodeKind.ZCASHD: 10002,
    LightwalletKind.LIGHTWALLETD: 10003,
    LightwalletKind.ZAINO: 10004,
}
FULL_NODE = "full-node"
LIGHT_WALLET = "light-wallet"
RPC_USER = "zbi"
MONITORING_NAMESPACE_LABEL = "zbi.io/monitoring"
# Pods in other namespaces with this label may call an instance's internal gRPC (and later, its RPC gateway).
GRPC_CLIENT_LABEL = "zbi.io/grpc-client"
DATA_VOLUME = "data"
# Startup budgets: opening (and migrating) a large state database can take hours after an upgrade.
ZEBRAD_STARTUP_BUDGET_SECONDS = 6 * 3600
ZCASHD_STARTUP_BUDGET_SECONDS = 12 * 3600
LIGHTWALLET_STARTUP_BUDGET_SECONDS = 2 * 3600
SECRET_ENV_SKIP = (
    "CKV_K8S_35=lightwalletd reads RPC credentials from flags or env vars only, not files; the env vars come from "
    "a Secret, never from the pod spec"
)
ZCASHD_SECRET_ENV_SKIP = (
    "CKV_K8S_35=zcashd's credentials reach it as -rpcuser/-rpcpassword expanded by the kubelet from Secret-backed "
    "env vars (never in the pod spec), so its zcash.conf stays a non-secret ConfigMap"
)
DIGEST_SKIP = "CKV_K8S_43=images are pinned by version tag; set image.digest in the instance config to pin by digest"
# Pulumi would otherwise wait for every replica to be Ready, which for a chain node is a first sync (hours to days).
# Rollouts stay safe without it: readiness probes gate traffic and the PodDisruptionBudget limits disruption.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}
PULL_POLICY_SKIP = (
    "CKV_K8S_15=IfNotPresent: pinned tags never move, and a registry outage must not stop a node restarting"
)


@dataclass(frozen=True)
class ZcashNodeArgs:
    config: InstanceConfig
    # None: the cluster's default StorageClass (kind, k3s and minikube ship one).
    storage_class_name: pulumi.Input[str] | None = None
    # None: no TLS at the pod; only sensible where TLS terminates in front (ACM at the NLB) or for internal use.
    certificate_authority: ZbiCertificateAuthority | None = None
    # Platform-specific annotations for a public gRPC LoadBalancer (e.g. AWS NLB).
    load_balancer_annotations: dict[str, str] = field(default_factory=dict)
    cluster_domain: str = "cluster.local"
    # Start new replicas from this snapshot instead of syncing from genesis (fast bootstrap, DR restore).
    restore_from: SnapshotSource | None = None


@dataclass(frozen=True)
class SnapshotSource:
    """A CSI snapshot that exists outside Kubernetes (e.g. an EBS snapshot copied by DLM), imported statically."""

    driver: str
    snapshot_handle: pulumi.Input[str]
    snapshot_class: str | None = None


class ZcashNode(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    rpc_endpoint: pulumi.Output[str]
    grpc_endpoint: pulumi.Output[str] | None
    grpc_load_balancer_hostname: pulumi.Output[str] | None
    rpc_password: pulumi.Output[str]
    tls_secret_name: str | None

    def __init__(self, name: str, args: ZcashNodeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:node:ZcashNode", name, None, opts)
        self._name = name
        self._args = args
        self._config = config = args.config
        self._ns = f"zbi-{name}"
        self._ports = PORTS[config.network]
        self._node_kind = config.node.kind
        self._node_name = config.node.kind.value
        child = pulumi.ResourceOptions(parent=self)

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=self._ns,
                labels={
                    "app.kubernetes.io/part-of": kube.PART_OF,
                    "app.kubernetes.io/instance": name,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            ),
            opts=child,
        )
        self._in_ns = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=self._meta("zcash"),
            automount_service_account_token=False,
            opts=self._in_ns,
        )

        password = random.RandomPassword(f"{name}-rpc-password", length=40, special=False, opts=child)
        self.rpc_password = pulumi.Output.secret(password.result)
        rpc_secret = k8s.core.v1.Secret(
            f"{name}-rpc-credentials",
            metadata=self._meta("rpc-credentials"),
            type="Opaque",
            string_data={"username": RPC_USER, "password": self.rpc_password},
            opts=self._in_ns,
        )

        self.tls_secret_name = None
        if args.certificate_authority is not None and config.lightwallet.kind is not LightwalletKind.NONE:
            self.tls_secret_name = self._tls_secret(args.certificate_authority)

        self._restore_snapshot = self._import_snapshot(args.restore_from) if args.restore_from else None
        node_services = self._full_node(rpc_secret)
        self.rpc_endpoint = pulumi.Output.from_input(
            f"http://{self._node_name}-rpc.{self._ns}.svc.{args.cluster_domain}:{self._ports.rpc}"
        )
        self.grpc_endpoint = None
        self.grpc_load_balancer_hostname = None
        if config.lightwallet.kind is not LightwalletKind.NONE:
            self.grpc_endpoint = self._light_wallet(node_services["rpc"])
        self._network_policies()

        self.namespace = namespace.metadata.apply(lambda m: str(m.name))
        self.register_outputs(
            {"namespace": self.namespace, "rpcEndpoint": self.rpc_endpoint, "grpcEndpoint": self.grpc_endpoint}
        )

    # ---- helpers -------------------------------------------------------------------------------------------

    def _meta(self, name: str, *, component: str | None = None, app: str | None = None, annotations=None):
        labels = {"app.kubernetes.io/part-of": kube.PART_OF, "app.kubernetes.io/instance": self._name}
        if component:
            labels = kube.labels(instance=self._name, component=component, name=app or component)
        return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=self._ns, labels=labels, annotations=annotations)

    def _image(self, kind: NodeKind | LightwalletKind, override) -> str:
        repository, tag = DEFAULT_IMAGES[kind]
        return kube.image_ref(override.repository or repository, override.tag or tag, override.digest)

    def _checkov_skips(self, *reasons: str, digest: str | None) -> dict[str, str]:
        skips = list(reasons) + ([] if digest else [DIGEST_SKIP]) + [PULL_POLICY_SKIP]
        return {f"checkov.io/skip{i}": reason for i, reason in enumerate(skips, start=1)}

    def _tls_secret(self, ca: ZbiCertificateAuthority) -> str:
        grpc_service = f"{self._config.lightwallet.kind.value}-grpc"
        dns_names = [
            *self._config.endpoints.hostnames,
            f"{grpc_service}.{self._ns}.svc.{self._args.cluster_domain}",
            f"{grpc_service}.{self._ns}.svc",
            f"{grpc_service}.{self._ns}",
        ]
        certificate = ServerCertificate(
            f"{self._name}-grpc-tls", ca=ca, dns_names=dns_names, opts=pulumi.ResourceOptions(parent=self)
        )
        k8s.core.v1.Secret(
            f"{self._name}-grpc-tls-secret",
            metadata=self._meta("grpc-tls"),
            type="kubernetes.io/tls",
            string_data={
                "tls.crt": certificate.cert_pem,
                "tls.key": certificate.private_key_pem,
                "ca.crt": ca.ca_cert_pem,
            },
            opts=self._in_ns,
        )
        return "grpc-tls"

    def _import_snapshot(self, source: SnapshotSource) -> str:
        """VolumeSnapshotContent (cluster-scoped) pre-bound to a VolumeSnapshot in the instance namespace: the
        static-provisioning path of the CSI snapshotter for snapshots made outside the cluster."""
        content_name = f"zbi-{self._name}-restore"
        content = k8s.apiextensions.CustomResource(
            f"{self._name}-restore-content",
            api_version="snapshot.storage.k8s.io/v1",
            kind="VolumeSnapshotContent",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=content_name),
            spec={
                "deletionPolicy": "Retain",
                "driver": source.driver,
                "source": {"snapshotHandle": source.snapshot_handle},
                "volumeSnapshotClassName": source.snapshot_class,
                "volumeSnapshotRef": {"name": "restore", "namespace": self._ns},
            },
            opts=self._in_ns,
        )
        k8s.apiextensions.CustomResource(
            f"{self._name}-restore-snapshot",
            api_version="snapshot.storage.k8s.io/v1",
            kind="VolumeSnapshot",
            metadata=self._meta("restore"),
            spec={
                "volumeSnapshotClassName": source.snapshot_class,
                "source": {"volumeSnapshotContentName": content_name},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[content]),
        )
        return "restore"

    def _disruption_budget(self, app: str, component: str, match: dict[str, str], *, replicas: int) -> None:
        """One pod at a time may be evicted. Only with two or more replicas: a PDB over a single pod would block
        every node drain."""
        if replicas < 2:
            return
        k8s.policy.v1.PodDisruptionBudget(
            f"{self._name}-{app}-pdb",
            metadata=self._meta(f"{app}-pdb", component=component, app=app),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match)
            ),
            opts=self._in_ns,
        )

    def _peer_addresses(self, headless: str) -> list[str]:
        domain = f"{headless}.{self._ns}.svc.{self._args.cluster_domain}"
        return [f"{self._node_name}-{i}.{domain}:{self._ports.p2p}" for i in range(self._config.node.replicas)]

    # ---- full node -----------------------------------------------------------------------------------------

    def _full_node(self, rpc_secret: k8s.core.v1.Secret) -> dict[str, k8s.core.v1.Service]:
        config, node = self._config, self._config.node
        name, kind = self._node_name, self._node_kind
        headless = f"{name}-headless"
        peers = self._peer_addresses(headless) if config.network is Network.REGTEST else None
        if kind is NodeKind.ZEBRAD:
            file_name = "zebrad.toml"
            content = zebrad.render_zebrad_toml(config.network, regtest_peers=peers, extra_options=node.extra_options)
        else:
            file_name = "zcash.conf"
            content = zcashd.render_zcash_conf(
                config.network,
                regtest_peers=peers,
                extra_options=node.extra_options,
                serve_light_wallet=config.lightwallet.kind is not LightwalletKind.NONE,
            )
        config_map = k8s.core.v1.ConfigMap(
            f"{self._name}-{name}-config",
            metadata=self._meta(f"{name}-config", component=FULL_NODE, app=name),
            data={file_name: content},
            opts=self._in_ns,
        )

        match = kube.selector(instance=self._name, component=FULL_NODE)
        pod_labels = kube.labels(instance=self._name, component=FULL_NODE, name=name)
        uid = UIDS[kind]
        container, init_containers = (
            self._zebrad_container(uid) if kind is NodeKind.ZEBRAD else self._zcashd_container(uid, rpc_secret)
        )
        config_mount_dir = "/etc/zebra" if kind is NodeKind.ZEBRAD else "/etc/zcash"
        volumes = [
            k8s.core.v1.VolumeArgs(
                name="config", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=f"{name}-config")
            ),
            k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="1Gi")),
        ]
        container.volume_mounts = [
            k8s.core.v1.VolumeMountArgs(name=DATA_VOLUME, mount_path=_data_dir(kind)),
            k8s.core.v1.VolumeMountArgs(name="config", mount_path=config_mount_dir, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
        ]
        checksum = _short_hash(content)
        skips = self._checkov_skips(
            *([ZCASHD_SECRET_ENV_SKIP] if kind is NodeKind.ZCASHD else []),
            digest=node.image.digest,
        )
        k8s.apps.v1.StatefulSet(
            f"{self._name}-{name}",
            metadata=self._meta(name, component=FULL_NODE, app=name, annotations={**skips, **SKIP_AWAIT}),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                service_name=headless,
                replicas=node.replicas,
                # Regtest peers must all be up to find each other; chain nodes never depend on start order.
                pod_management_policy="Parallel",
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match),
                update_strategy=k8s.apps.v1.StatefulSetUpdateStrategyArgs(type="RollingUpdate"),
                # A deleted StatefulSet or a scale-down keeps its claims: chain data is days of sync.
                persistent_volume_claim_retention_policy=k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                    when_deleted="Retain", when_scaled="Retain"
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=pod_labels,
                        annotations={
                            # A config change rolls the pods; Kubernetes does not restart on ConfigMap edits.
                            "zbi.io/config-checksum": checksum,
                            **_scrape_annotations(kind),
                        },
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name="zcash",
                        automount_service_account_token=False,
                        security_context=kube.pod_security(uid),
                        # zebrad flushes RocksDB and zcashd its LevelDB on SIGTERM; a kill mid-write costs a resync.
                        termination_grace_period_seconds=300 if kind is NodeKind.ZEBRAD else 600,
                        init_containers=init_containers or None,
                        containers=[container],
                        volumes=volumes,
                        topology_spread_constraints=kube.zone_spread(match, strict=True),
                        affinity=kube.host_anti_affinity(match),
                        enable_service_links=False,
                    ),
                ),
                volume_claim_templates=[
                    k8s.core.v1.PersistentVolumeClaimArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(name=DATA_VOLUME, labels=match),
                        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                            access_modes=["ReadWriteOnce"],
                            storage_class_name=self._args.storage_class_name,
                            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                                requests={"storage": f"{node.storage.size_gib}Gi"}
                            ),
                            data_source=k8s.core.v1.TypedLocalObjectReferenceArgs(
                                api_group="snapshot.storage.k8s.io", kind="VolumeSnapshot", name=self._restore_snapshot
                            )
                            if self._restore_snapshot
                            else None,
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[config_map, rpc_secret]),
        )

        services = self._full_node_services(name, headless, match)
        self._disruption_budget(name, FULL_NODE, match, replicas=node.replicas)
        if node.replicas == 1:
            pulumi.log.warn(
                f"instance {self._name}: node.replicas is 1 — no redundancy and no PodDisruptionBudget; "
                "set replicas >= 2 for high availability",
                resource=self,
            )
        return services

    def _zebrad_container(self, uid: int) -> tuple[k8s.core.v1.ContainerArgs, list]:
        node = self._config.node
        ports = self._ports
        period = 10

        def http_probe(path: str, period_seconds: int, failures: int) -> k8s.core.v1.ProbeArgs:
            return k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port="health"),
                period_seconds=period_seconds,
                timeout_seconds=5,
                failure_threshold=failures,
            )

        container = k8s.core.v1.ContainerArgs(
            name="zebrad",
            image=self._image(NodeKind.ZEBRAD, node.image),
            image_pull_policy="IfNotPresent",
            command=["zebrad"],
            args=["-c", zebrad.CONFIG_PATH, "start"],
            ports=[
                k8s.core.v1.ContainerPortArgs(name="p2p", container_port=ports.p2p),
                k8s.core.v1.ContainerPortArgs(name="rpc", container_port=ports.rpc),
                k8s.core.v1.ContainerPortArgs(name="health", container_port=ZEBRA_HEALTH_PORT),
                k8s.core.v1.ContainerPortArgs(name="metrics", container_port=ZEBRA_METRICS_PORT),
            ],
            env=[k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp")],
            # /healthy: the node has peers. /ready: synced to within ready_max_blocks_behind of the network tip.
            startup_probe=http_probe("/healthy", period, ZEBRAD_STARTUP_BUDGET_SECONDS // period),
            readiness_probe=http_probe("/ready", 15, 3),
            # Five minutes without peers: restart. A restart also clears zebrad's in-memory banlist, the known cure
            # for stalls on banned peers around network upgrades.
            liveness_probe=http_probe("/healthy", 30, 10),
            resources=kube.resources(node.resources),
            security_context=kube.container_security(uid),
        )
        return container, []

    def _zcashd_container(self, uid: int, rpc_secret: k8s.core.v1.Secret) -> tuple[k8s.core.v1.ContainerArgs, list]:
        node = self._config.node
        ports = self._ports
        image = self._image(NodeKind.ZCASHD, node.image)
        env = [
            k8s.core.v1.EnvVarArgs(name="HOME", value=zcashd.DATA_DIR),
            *_credential_env(),
        ]
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

        data_mount = k8s.core.v1.VolumeMountArgs(name=DATA_VOLUME, mount_path=zcashd.DATA_DIR)
        fetch_params = k8s.core.v1.ContainerArgs(
            name="fetch-params",
            image=image,
            image_pull_policy="IfNotPresent",
            # Sapling parameters land on the data volume (HOME), fetched once per volume.
            command=["zcash-fetch-params"],
            env=[k8s.core.v1.EnvVarArgs(name="HOME", value=zcashd.DATA_DIR)],
            volume_mounts=[data_mount, k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
            resources=kube.resources(node.resources),
            security_context=kube.container_security(uid),
        )
        container = k8s.core.v1.ContainerArgs(
            name="zcashd",
            image=image,
            image_pull_policy="IfNotPresent",
            command=["zcashd"],
            args=[
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
            env=env,
            # A real RPC round trip: zcashd answers -28 (warming up) until its block index is loaded.
            startup_probe=rpc_probe(f"{cli} getblockcount >/dev/null", 30, ZCASHD_STARTUP_BUDGET_SECONDS // 30),
            readiness_probe=rpc_probe(
                f"{cli} getblockchaininfo | grep -q '\"initial_block_download_complete\": true'", 30, 3
            ),
            liveness_probe=rpc_probe(f"{cli} getblockcount >/dev/null", 60, 5),
            resources=kube.resources(node.resources),
            security_context=kube.container_security(uid),
        )
        return container, [fetch_params]

    def _full_node_services(self, name: str, headless: str, match: dict[str, str]) -> dict[str, k8s.core.v1.Service]:
        ports = self._ports
        services = {
            "headless": k8s.core.v1.Service(
                f"{self._name}-{name}-headless",
                metadata=self._meta(headless, component=FULL_NODE, app=name),
                spec=k8s.core.v1.ServiceSpecArgs(
                    cluster_ip="None",
                    # Peers of a regtest network must resolve each other before any is ready.
                    publish_not_ready_addresses=True,
                    selector=match,
                    ports=[k8s.core.v1.ServicePortArgs(name="p2p", port=ports.p2p, target_port="p2p")],
                ),
                opts=self._in_ns,
            ),
            # Only ready (synced) replicas serve RPC.
            "rpc": k8s.core.v1.Service(
                f"{self._name}-{name}-rpc",
                metadata=self._meta(f"{name}-rpc", component=FULL_NODE, app=name),
                spec=k8s.core.v1.ServiceSpecArgs(
                    type="ClusterIP",
                    selector=match,
                    ports=[k8s.core.v1.ServicePortArgs(name="rpc", port=ports.rpc, target_port="rpc")],
                ),
                opts=self._in_ns,
            ),
        }
        if self._config.node.inbound_p2p:
            services["p2p"] = k8s.core.v1.Service(
                f"{self._name}-{name}-p2p",
                metadata=self._meta(
                    f"{name}-p2p", component=FULL_NODE, app=name, annotations=self._args.load_balancer_annotations
                ),
                spec=k8s.core.v1.ServiceSpecArgs(
                    type="LoadBalancer",
                    external_traffic_policy="Local",
                    selector=match,
                    ports=[k8s.core.v1.ServicePortArgs(name="p2p", port=ports.p2p, target_port="p2p")],
                ),
                opts=self._in_ns,
            )
        return services

    # ---- light-wallet tier ---------------------------------------------------------------------------------

    def _light_wallet(self, rpc_service: k8s.core.v1.Service) -> pulumi.Output[str]:
        config, tier = self._config, self._config.lightwallet
        kind = tier.kind
        name = kind.value
        uid = UIDS[kind]
        match = kube.selector(instance=self._name, component=LIGHT_WALLET)
        pod_labels = {
            **kube.labels(instance=self._name, component=LIGHT_WALLET, name=name),
            "zbi.io/rpc-client": "true",
        }
        tls = self.tls_secret_name is not None
        grpc_port = LIGHTWALLETD_GRPC_PORT if kind is LightwalletKind.LIGHTWALLETD else ZAINO_GRPC_PORT
        data_dir = (
            lightwallet.LIGHTWALLETD_DATA_DIR if kind is LightwalletKind.LIGHTWALLETD else lightwallet.ZAINO_DATA_DIR
        )
        mounts = [
            k8s.core.v1.VolumeMountArgs(name="cache", mount_path=data_dir),
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
        ]
        volumes = [k8s.core.v1.VolumeArgs(name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="1Gi"))]
        if tls:
            mounts.append(k8s.core.v1.VolumeMountArgs(name="tls", mount_path=lightwallet.TLS_DIR, read_only=True))
            volumes.append(
                k8s.core.v1.VolumeArgs(
                    name="tls", secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=self.tls_secret_name)
                )
            )
        rpc_host = f"{self._node_name}-rpc.{self._ns}.svc.{self._args.cluster_domain}"
        skips: dict[str, str]
        if kind is LightwalletKind.LIGHTWALLETD:
            skips = self._checkov_skips(SECRET_ENV_SKIP, digest=tier.image.digest)
            ports = [
                k8s.core.v1.ContainerPortArgs(name="grpc", container_port=LIGHTWALLETD_GRPC_PORT),
                k8s.core.v1.ContainerPortArgs(name="metrics", container_port=LIGHTWALLETD_HTTP_PORT),
            ]
            command = ["lightwalletd"]
            args = lightwallet.lightwalletd_args(rpc_host=rpc_host, rpc_port=self._ports.rpc, tls=tls)
            env: list[k8s.core.v1.EnvVarArgs] | None = _credential_env(lightwallet.LIGHTWALLETD_CREDENTIAL_ENV)
            scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(LIGHTWALLETD_HTTP_PORT)}
        else:
            skips = self._checkov_skips(digest=tier.image.digest)
            ports = [k8s.core.v1.ContainerPortArgs(name="grpc", container_port=ZAINO_GRPC_PORT)]
            # zainod parses the validator address as IP:port, so the config names the RPC Service's cluster IP.
            zaino_toml = pulumi.Output.all(rpc_service.spec.cluster_ip, self.rpc_password).apply(
                lambda v: lightwallet.render_zaino_toml(
                    config.network,
                    validator_address=f"{v[0]}:{self._ports.rpc}",
                    rpc_user=RPC_USER,
                    rpc_password=v[1],
                    tls=tls,
                )
            )
            k8s.core.v1.Secret(
                f"{self._name}-zaino-config",
                metadata=self._meta("zaino-config", component=LIGHT_WALLET, app=name),
                type="Opaque",
                # Secret because it holds the RPC password; the Output is secret for the same reason.
                string_data={"zindexer.toml": zaino_toml},
                opts=self._in_ns,
            )
            volumes.append(
                k8s.core.v1.VolumeArgs(
                    name="config", secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name="zaino-config")
                )
            )
            mounts.append(k8s.core.v1.VolumeMountArgs(name="config", mount_path="/etc/zaino", read_only=True))
            command, args, env = ["zainod"], ["--config", lightwallet.ZAINO_CONFIG_PATH], None
            scrape = {"prometheus.io/scrape": "false"}

        def tcp_probe(period_seconds: int, failures: int) -> k8s.core.v1.ProbeArgs:
            return k8s.core.v1.ProbeArgs(
                tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="grpc"),
                period_seconds=period_seconds,
                timeout_seconds=5,
                failure_threshold=failures,
            )

        container = k8s.core.v1.ContainerArgs(
            name=name,
            image=self._image(kind, tier.image),
            image_pull_policy="IfNotPresent",
            ports=ports,
            startup_probe=tcp_probe(10, LIGHTWALLET_STARTUP_BUDGET_SECONDS // 10),
            readiness_probe=tcp_probe(10, 3),
            liveness_probe=tcp_probe(30, 5),
            volume_mounts=mounts,
            resources=kube.resources(tier.resources),
            security_context=kube.container_security(uid),
            command=command,
            args=args,
            env=env,
        )
        # A StatefulSet so that each replica keeps its own compact-block cache across restarts.
        statefulset = k8s.apps.v1.StatefulSet(
            f"{self._name}-{name}",
            metadata=self._meta(name, component=LIGHT_WALLET, app=name, annotations={**skips, **SKIP_AWAIT}),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                service_name=f"{name}-grpc",
                replicas=tier.min_replicas,
                pod_management_policy="Parallel",
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=match),
                persistent_volume_claim_retention_policy=k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                    when_deleted="Retain", when_scaled="Retain"
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=pod_labels, annotations=scrape),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name="zcash",
                        automount_service_account_token=False,
                        security_context=kube.pod_security(uid),
                        termination_grace_period_seconds=60,
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
                            storage_class_name=self._args.storage_class_name,
                            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                                requests={"storage": f"{tier.cache_size_gib}Gi"}
                            ),
                        ),
                    )
                ],
            ),
            # The HPA owns the replica count once running.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[rpc_service], ignore_changes=["spec.replicas"]),
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{self._name}-{name}-hpa",
            metadata=self._meta(name, component=LIGHT_WALLET, app=name),
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="StatefulSet", name=name
                ),
                min_replicas=tier.min_replicas,
                max_replicas=tier.max_replicas,
                metrics=[
                    k8s.autoscaling.v2.MetricSpecArgs(
                        type="Resource",
                        resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                            name="cpu",
                            target=k8s.autoscaling.v2.MetricTargetArgs(
                                type="Utilization", average_utilization=tier.target_cpu_percent
                            ),
                        ),
                    )
                ],
                # A new replica first fills its cache; scaling down too eagerly throws that work away.
                behavior=k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
                    scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(stabilization_window_seconds=900)
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[statefulset]),
        )
        self._disruption_budget(name, LIGHT_WALLET, match, replicas=tier.min_replicas)

        public = config.endpoints.public_grpc
        service = k8s.core.v1.Service(
            f"{self._name}-{name}-grpc",
            metadata=self._meta(
                f"{name}-grpc",
                component=LIGHT_WALLET,
                app=name,
                annotations=self._args.load_balancer_annotations if public else None,
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="LoadBalancer" if public else "ClusterIP",
                selector=match,
                load_balancer_source_ranges=config.endpoints.allowed_cidrs if public else None,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="grpc", port=443 if public else grpc_port, target_port="grpc", app_protocol="grpc"
                    )
                ],
            ),
            opts=self._in_ns,
        )
        if public:
            hostname = service.status.apply(_load_balancer_address)
            self.grpc_load_balancer_hostname = hostname
            if config.endpoints.hostnames:
                return pulumi.Output.from_input(f"{config.endpoints.hostnames[0]}:443")
            return hostname.apply(lambda host: f"{host}:443")
        return pulumi.Output.from_input(f"{name}-grpc.{self._ns}.svc.{self._args.cluster_domain}:{grpc_port}")

    # ---- network policies ----------------------------------------------------------------------------------

    def _network_policies(self) -> None:
        config, ports = self._config, self._ports
        full_node = kube.selector(instance=self._name, component=FULL_NODE)
        light_wallet = kube.selector(instance=self._name, component=LIGHT_WALLET)
        regtest = config.network is Network.REGTEST
        np = k8s.networking.v1

        def policy(name: str, spec: k8s.networking.v1.NetworkPolicySpecArgs) -> None:
            np.NetworkPolicy(f"{self._name}-netpol-{name}", metadata=self._meta(name), spec=spec, opts=self._in_ns)

        def tcp(*numbers: int | str) -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
            return [np.NetworkPolicyPortArgs(protocol="TCP", port=n) for n in numbers]

        anywhere = [np.NetworkPolicyPeerArgs(ip_block=np.IPBlockArgs(cidr="0.0.0.0/0", except_=["169.254.169.254/32"]))]
        monitoring = [
            np.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={MONITORING_NAMESPACE_LABEL: "true"})
            )
        ]
        siblings = [np.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=full_node))]

        policy(
            "default-deny",
            np.NetworkPolicySpecArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(), policy_types=["Ingress", "Egress"]),
        )
        policy(
            "allow-dns",
            np.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(),
                policy_types=["Egress"],
                egress=[
                    np.NetworkPolicyEgressRuleArgs(
                        to=[
                            np.NetworkPolicyPeerArgs(
                                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels={"kubernetes.io/metadata.name": "kube-system"}
                                ),
                                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"k8s-app": "kube-dns"}),
                            )
                        ],
                        ports=[np.NetworkPolicyPortArgs(protocol="UDP", port=53), *tcp(53)],
                    )
                ],
            ),
        )
        rpc_clients = [
            np.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=light_wallet)),
        ]
        full_node_ingress = [
            # P2P: the public network for mainnet/testnet; only the instance's own nodes for regtest.
            np.NetworkPolicyIngressRuleArgs(from_=siblings if regtest else anywhere, ports=tcp(ports.p2p)),
            np.NetworkPolicyIngressRuleArgs(from_=rpc_clients, ports=tcp(ports.rpc)),
        ]
        if self._node_kind is NodeKind.ZEBRAD:
            full_node_ingress.append(np.NetworkPolicyIngressRuleArgs(from_=monitoring, ports=tcp(ZEBRA_METRICS_PORT)))
        full_node_egress = (
            [np.NetworkPolicyEgressRuleArgs(to=siblings, ports=tcp(ports.p2p))]
            # Peers listen on many ports; everything but the instance metadata service is fair game.
            if regtest
            else [np.NetworkPolicyEgressRuleArgs(to=anywhere)]
        )
        policy(
            "full-node",
            np.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=full_node),
                policy_types=["Ingress", "Egress"],
                ingress=full_node_ingress,
                egress=full_node_egress,
            ),
        )
        if config.lightwallet.kind is LightwalletKind.NONE:
            return
        grpc_clients = (
            anywhere
            if config.endpoints.public_grpc
            else [
                np.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs()),
                np.NetworkPolicyPeerArgs(
                    namespace_selector=k8s.meta.v1.LabelSelectorArgs(),
                    pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={GRPC_CLIENT_LABEL: "true"}),
                ),
            ]
        )
        wallet_ingress = [np.NetworkPolicyIngressRuleArgs(from_=grpc_clients, ports=tcp("grpc"))]
        if config.lightwallet.kind is LightwalletKind.LIGHTWALLETD:
            wallet_ingress.append(np.NetworkPolicyIngressRuleArgs(from_=monitoring, ports=tcp(LIGHTWALLETD_HTTP_PORT)))
        policy(
            "light-wallet",
            np.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=light_wallet),
                policy_types=["Ingress", "Egress"],
                ingress=wallet_ingress,
                egress=[np.NetworkPolicyEgressRuleArgs(to=siblings, ports=tcp(ports.rpc))],
            ),
        )


def _data_dir(kind: NodeKind) -> str:
    return zebrad.DATA_DIR if kind is NodeKind.ZEBRAD else zcashd.DATA_DIR


ZCASHD_CREDENTIAL_ENV = {"username": "RPC_USER", "password": "RPC_PASSWORD"}


def _credential_env(names: dict[str, str] | None = None) -> list[k8s.core.v1.EnvVarArgs]:
    """The RPC credentials from the instance's Secret, as environment variables named per consumer."""
    names = names or ZCASHD_CREDENTIAL_ENV

    def from_secret(env: str, key: str) -> k8s.core.v1.EnvVarArgs:
        return k8s.core.v1.EnvVarArgs(
            name=env,
            value_from=k8s.core.v1.EnvVarSourceArgs(
                secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name="rpc-credentials", key=key)
            ),
        )

    return [from_secret(names["username"], "username"), from_secret(names["password"], "password")]


def _scrape_annotations(kind: NodeKind) -> dict[str, str]:
    if kind is NodeKind.ZEBRAD:
        return {"prometheus.io/scrape": "true", "prometheus.io/port": str(ZEBRA_METRICS_PORT)}
    return {"prometheus.io/scrape": "false"}


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _load_balancer_address(status) -> str:
    ingress = (status.load_balancer.ingress or []) if status and status.load_balancer else []
    if not ingress:
        return "pending"
    return str(ingress[0].hostname or ingress[0].ip)
