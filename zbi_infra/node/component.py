"""ZcashNode: one Zcash instance on Kubernetes — a full-node StatefulSet and an autoscaled light-wallet tier.

Nothing here assumes AWS: the caller hands in a StorageClass name and, for public endpoints, the load-balancer
annotations of its platform. Each workload lives in its own module of this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from zbi_infra import kube
from zbi_infra.config.access import AccessFile
from zbi_infra.config.instance import InstanceConfig, LightwalletKind
from zbi_infra.config.stack import plan_date
from zbi_infra.digest_guardrail import REQUIRE_DIGESTS_LABEL
from zbi_infra.errors import ConfigError
from zbi_infra.node.context import RPC_SECRET, RPC_USER, SERVICE_ACCOUNT, InstanceContext, namespace_of
from zbi_infra.node.full_node import build_full_node
from zbi_infra.node.gateway import GATEWAY_NAME, build_gateway
from zbi_infra.node.history_export_job import HistoryExportTarget, build_history_export
from zbi_infra.node.history_export_job import credential_secret_data as export_credential_data
from zbi_infra.node.history_scaling import HistorySnapshots, build_snapshot_rotation
from zbi_infra.node.light_wallet import build_light_wallet, grpc_port
from zbi_infra.node.network_policies import build_network_policies
from zbi_infra.node.public_tls_renewal import build_renewal_roller
from zbi_infra.node.quota import build_quota
from zbi_infra.node.rpc_guard import credential_secret_data
from zbi_infra.node.zcashd_compat import zcashd_upstream
from zbi_infra.public_tls import acme_certificate
from zbi_infra.release_check import instance_release_problems
from zbi_infra.render.gateway import GatewayUpstreams
from zbi_infra.tls import ServerCertificate, ZbiCertificateAuthority


@dataclass(frozen=True)
class SnapshotSource:
    """A CSI snapshot that exists outside Kubernetes (e.g. an EBS snapshot copied by DLM), imported statically."""

    driver: str
    snapshot_handle: pulumi.Input[str]
    snapshot_class: str | None = None


@dataclass(frozen=True)
class ZcashNodeArgs:
    config: InstanceConfig
    # None: the cluster's default StorageClass (kind, k3s and minikube ship one).
    storage_class_name: pulumi.Input[str] | None = None
    # The light-wallet caches' class (small volumes: no provisioned IOPS); None: `storage_class_name`.
    cache_storage_class_name: pulumi.Input[str] | None = None
    # None: no TLS at the pod; only sensible where TLS terminates in front (ACM at the NLB) or for internal use.
    certificate_authority: ZbiCertificateAuthority | None = None
    # Platform-specific annotations for a public gRPC LoadBalancer (e.g. AWS NLB).
    load_balancer_annotations: dict[str, str] = field(default_factory=dict)
    # The public front door's own annotations (zbi_infra/public_tls.py: ACM); None: `load_balancer_annotations`.
    front_door_annotations: Mapping[str, pulumi.Input[str]] | None = None
    # The controller that reconciles the front door's load balancer (the AWS Load Balancer Controller): the Service
    # depends on it, so it is deleted first, while the controller can still remove its finalizer and the NLB.
    load_balancer_controller: pulumi.Resource | None = None
    cluster_domain: str = "cluster.local"
    # Start new replicas from this snapshot instead of syncing from genesis (fast bootstrap, DR restore).
    restore_from: SnapshotSource | None = None
    # Tier ("full-node", "light-wallet", "gateway") -> an existing PriorityClass (zbi_infra.priorities).
    priority_class_names: Mapping[str, str] | None = None
    # The instance administrator's access file: with one, an access gateway fronts the instance (its public load
    # balancer, TLS, keys, allowlists, rate limits); it needs `certificate_authority` for its certificate.
    access: AccessFile | None = None
    # SHA-256 of the monitoring probe's key (zbi_infra.config.access.PROBE_USER): the gateway admits that user.
    probe_key_sha256: pulumi.Input[str] | None = None
    # The day release support is judged on (zbi_infra/release_check.py); None: today, or `ZBI_AS_OF`.
    today: date | None = None
    # History instances: the CSI driver (and fast-snapshot-restore zones) their rotating snapshot is taken with;
    # None: replicas above the floor sync from peers (zbi_infra/node/history_scaling.py).
    history_snapshots: HistorySnapshots | None = None
    # With `history.export.enabled`: the bucket, prefix and IRSA role the export job writes with (ZbiHistoryExport).
    history_export: HistoryExportTarget | None = None


class ZcashNode(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    rpc_endpoint: pulumi.Output[str]
    grpc_endpoint: pulumi.Output[str] | None
    # The public load balancer's DNS name (the gateway's when there is one), for DNS records.
    grpc_load_balancer_hostname: pulumi.Output[str] | None
    # host:443 of the access gateway (JSON-RPC and gRPC), when the instance has an access file.
    gateway_endpoint: pulumi.Output[str] | None
    rpc_password: pulumi.Output[str]
    tls_secret_name: str | None

    def __init__(self, name: str, args: ZcashNodeArgs, opts: pulumi.ResourceOptions | None = None):
        if args.access is not None and args.certificate_authority is None:
            # Refused before anything is registered.
            raise ValueError(
                f"ZcashNode {name}: an access gateway terminates TLS with the instance's certificate. Fix: pass "
                "certificate_authority, or no access file"
            )
        exporting = args.config.history is not None and args.config.history.export.enabled
        if exporting and args.history_export is None:
            raise ValueError(
                f"ZcashNode {name}: history.export.enabled writes to an S3 bucket with an IRSA role. Fix: pass "
                "history_export (zbi_infra.history_export_aws.ZbiHistoryExport(...).target(region)), or disable it"
            )
        # The stack file's release rules, applied to the library's callers too, before anything is registered.
        releases = instance_release_problems(
            name, args.config, args.today or plan_date(), key=f"ZcashNode {name}: InstanceConfig node"
        )
        if releases.errors:
            raise ConfigError(releases.errors, what=f"ZcashNode {name}")
        super().__init__("zbi:node:ZcashNode", name, None, opts)
        for warning in releases.warnings:
            pulumi.log.warn(warning, resource=self)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=namespace_of(name),
                labels={
                    "app.kubernetes.io/part-of": kube.PART_OF,
                    "app.kubernetes.io/instance": name,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                    **({REQUIRE_DIGESTS_LABEL: "true"} if config.require_image_digests else {}),
                },
            ),
            opts=child,
        )
        ctx = InstanceContext(
            name=name,
            config=config,
            args=args,
            component=self,
            in_namespace=pulumi.ResourceOptions(parent=self, depends_on=[namespace]),
        )
        k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=ctx.meta(SERVICE_ACCOUNT),
            automount_service_account_token=False,
            opts=ctx.in_namespace,
        )

        password = random.RandomPassword(f"{name}-rpc-password", length=40, special=False, opts=child)
        self.rpc_password = pulumi.Output.secret(password.result)
        rpc_secret = k8s.core.v1.Secret(
            f"{name}-rpc-credentials",
            metadata=ctx.meta(RPC_SECRET),
            type="Opaque",
            string_data={
                "username": RPC_USER,
                "password": self.rpc_password,
                # The RPC guard in front of zebrad compares callers' Authorization with this (node/rpc_guard.py).
                **credential_secret_data(RPC_USER, self.rpc_password),
                # The history export job's `user:password` file (node/history_export_job.py), only when it runs.
                **(export_credential_data(RPC_USER, self.rpc_password) if exporting else {}),
            },
            opts=ctx.in_namespace,
        )

        light_wallet = config.lightwallet.kind is not LightwalletKind.NONE
        self.tls_secret_name = tls_checksum = None
        if args.certificate_authority is not None and (light_wallet or args.access is not None):
            self.tls_secret_name, tls_checksum = _tls_secret(ctx, args.certificate_authority)

        # With endpoints.publicTls.provider acme: the front door serves cert-manager's certificate instead.
        public_secret = acme_certificate(
            name, config, namespace=ctx.namespace, labels={"app.kubernetes.io/part-of": kube.PART_OF}, opts=ctx.child()
        )
        restore_snapshot = _import_snapshot(ctx, args.restore_from) if args.restore_from else None
        services = build_full_node(ctx, rpc_secret, restore_snapshot)
        build_snapshot_rotation(ctx)
        self.rpc_endpoint = pulumi.Output.from_input(
            f"http://{ctx.service_host(f'{ctx.node_name}-rpc')}:{ctx.ports.rpc}"
        )
        self.grpc_endpoint = self.grpc_load_balancer_hostname = self.gateway_endpoint = None
        behind_gateway = args.access is not None
        grpc_service = grpc_tls_name = None
        # nginx resolves its upstreams when it starts: the gateway waits for the Services it names.
        upstream_services: list[pulumi.Resource] = [services["rpc"]]
        if light_wallet:
            endpoints = build_light_wallet(
                ctx,
                services["rpc"],
                rpc_password=self.rpc_password,
                tls_secret=public_secret if public_secret and not behind_gateway else self.tls_secret_name,
                # cert-manager's certificate rolls through its renewal roller; the private one through its checksum.
                tls_checksum=None if public_secret and not behind_gateway else tls_checksum,
                behind_gateway=behind_gateway,
            )
            self.grpc_endpoint = endpoints.grpc_endpoint
            self.grpc_load_balancer_hostname = endpoints.load_balancer_hostname
            grpc_service = ctx.service_host(f"{config.lightwallet.kind.value}-grpc")
            grpc_tls_name = grpc_service if self.tls_secret_name else None
            upstream_services.append(endpoints.service)
        if args.access is not None:
            assert self.tls_secret_name is not None
            upstreams = GatewayUpstreams(
                rpc=f"{ctx.service_host(f'{ctx.node_name}-rpc')}:{ctx.ports.rpc}",
                grpc=f"{grpc_service}:{grpc_port(config.lightwallet.kind)}" if grpc_service else None,
                grpc_tls_name=grpc_tls_name,
                zcashd=zcashd_upstream(ctx)[0],
                zcashd_wallet=zcashd_upstream(ctx)[1],
            )
            gateway = build_gateway(
                ctx,
                args.access,
                upstreams,
                rpc_password=self.rpc_password,
                tls_secret=self.tls_secret_name,
                tls_checksum=tls_checksum,
                depends_on=upstream_services,
                public_tls_secret=public_secret,
            )
            self.gateway_endpoint = gateway.endpoint
            self.grpc_load_balancer_hostname = gateway.load_balancer_hostname
            if light_wallet:
                self.grpc_endpoint = gateway.endpoint
        if public_secret:  # the front door reads its certificate at start: roll it onto renewals
            front = ("deployment", GATEWAY_NAME) if behind_gateway else ("statefulset", config.lightwallet.kind.value)
            build_renewal_roller(ctx, kind=front[0], workload=front[1])
        build_network_policies(ctx, gateway=behind_gateway)
        if exporting and args.history_export is not None:
            build_history_export(ctx, args.history_export)
        if config.quota.enabled:
            build_quota(ctx, ctx.footprint, config.quota.headroom_percent)

        self.namespace = namespace.metadata.apply(lambda m: str(m.name))
        self.register_outputs(
            {
                "namespace": self.namespace,
                "rpcEndpoint": self.rpc_endpoint,
                "grpcEndpoint": self.grpc_endpoint,
                "gatewayEndpoint": self.gateway_endpoint,
            }
        )


def _tls_secret(ctx: InstanceContext, ca: ZbiCertificateAuthority) -> tuple[str, pulumi.Output[str]]:
    """The instance certificate: its public hostnames and the in-cluster names of the light-wallet tier and the
    gateway, whichever the instance has (one certificate; the gateway also verifies the light-wallet tier with it)."""
    services = [GATEWAY_NAME] if ctx.args.access is not None else []
    if ctx.config.lightwallet.kind is not LightwalletKind.NONE:
        services.append(f"{ctx.config.lightwallet.kind.value}-grpc")
    dns_names = [*ctx.config.endpoints.hostnames]
    for service in services:
        dns_names += [ctx.service_host(service), f"{service}.{ctx.namespace}.svc", f"{service}.{ctx.namespace}"]
    certificate = ServerCertificate(f"{ctx.name}-grpc-tls", ca=ca, dns_names=dns_names, opts=ctx.child())
    k8s.core.v1.Secret(
        f"{ctx.name}-grpc-tls-secret",
        metadata=ctx.meta("grpc-tls"),
        type="kubernetes.io/tls",
        string_data={"tls.crt": certificate.cert_pem, "tls.key": certificate.private_key_pem, "ca.crt": ca.ca_cert_pem},
        opts=ctx.in_namespace,
    )
    return "grpc-tls", certificate.checksum


def _import_snapshot(ctx: InstanceContext, source: SnapshotSource) -> str:
    """VolumeSnapshotContent (cluster-scoped) pre-bound to a VolumeSnapshot in the instance namespace: the
    static-provisioning path of the CSI snapshotter for snapshots made outside the cluster."""
    content_name = f"zbi-{ctx.name}-restore"
    content = k8s.apiextensions.CustomResource(
        f"{ctx.name}-restore-content",
        api_version="snapshot.storage.k8s.io/v1",
        kind="VolumeSnapshotContent",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=content_name),
        spec={
            "deletionPolicy": "Retain",
            "driver": source.driver,
            "source": {"snapshotHandle": source.snapshot_handle},
            "volumeSnapshotClassName": source.snapshot_class,
            "volumeSnapshotRef": {"name": "restore", "namespace": ctx.namespace},
        },
        opts=ctx.in_namespace,
    )
    k8s.apiextensions.CustomResource(
        f"{ctx.name}-restore-snapshot",
        api_version="snapshot.storage.k8s.io/v1",
        kind="VolumeSnapshot",
        metadata=ctx.meta("restore"),
        spec={"volumeSnapshotClassName": source.snapshot_class, "source": {"volumeSnapshotContentName": content_name}},
        opts=ctx.child(depends_on=[content]),
    )
    return "restore"
