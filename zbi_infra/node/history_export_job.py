"""The history export CronJob of one instance: `zbi-export` (package zbi_export) reads final blocks from the instance's
full-node RPC and writes them to its S3 prefix as Parquet.

The job reaches the node through the RPC guard in front of zebrad, with the instance's RPC user and password: one key
of the instance's `rpc-credentials` Secret (`user:password`, what `zbi-export --rpc-cookie-file` reads), mounted as a
file readable by the pod's group only. Its NetworkPolicy lets it reach that port of the instance's full nodes, HTTPS
(S3, and STS for IRSA) and DNS, and nothing reaches it. AWS access comes from IRSA
(the role the AWS side made for this service account: zbi_infra/history_export_aws.py); no token of the Kubernetes API
is mounted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra import kube
from zbi_infra.config.history_export import HistoryExportConfig
from zbi_infra.node.context import FULL_NODE, RPC_SECRET, InstanceContext

EXPORT_COMPONENT = "history-export"
# The key of the instance's `rpc-credentials` Secret the job reads: `user:password`, HTTP basic auth's pair.
CREDENTIAL_KEY = "rpc-user-password"
CREDENTIAL_DIR = "/etc/zbi-export"
EXPORT_SERVICE_ACCOUNT = "history-export"
# The IRSA webhook reads this annotation and gives the pod the role's web-identity token and AWS_ROLE_ARN.
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
# The export image's user: `USER 65532:65532` in images/history-export/Dockerfile (no host user has it: checkov
# CKV_K8S_40 wants one of at least 10000).
EXPORT_UID = 65532
HTTPS = 443


@dataclass(frozen=True)
class HistoryExportTarget:
    """Where the export writes: from ZbiHistoryExport on AWS (or any caller with an S3 bucket and an IRSA role)."""

    bucket: pulumi.Input[str]
    prefix: str
    region: str
    role_arn: pulumi.Input[str]


def export_image(config: HistoryExportConfig) -> str:
    image = config.image
    assert image.repository is not None  # the config refuses an enabled export without one
    if image.tag is None:
        return f"{image.repository}@{image.digest}"
    return kube.image_ref(image.repository, image.tag, image.digest)


def export_args(
    ctx: InstanceContext, config: HistoryExportConfig, target: HistoryExportTarget
) -> pulumi.Output[list[str]]:
    """`zbi-export`'s flags (zbi_export/cli.py); its finality depth stays the program's own default."""
    return pulumi.Output.from_input(target.bucket).apply(
        lambda bucket: [
            f"--rpc-url=http://{ctx.service_host(f'{ctx.node_name}-rpc')}:{ctx.ports.rpc}",
            f"--rpc-cookie-file={CREDENTIAL_DIR}/{CREDENTIAL_KEY}",
            f"--destination=s3://{bucket}/{target.prefix.rstrip('/')}",
            f"--network={ctx.config.network.value}",
            f"--partition-blocks={config.partition_blocks}",
            f"--region={target.region}",
        ]
    )


def credential_file(user: str, password: str) -> str:
    """The file `zbi-export --rpc-cookie-file` reads: `user:password`, which it sends as HTTP basic auth, the header
    the RPC guard compares (render/rpc_guard.py)."""
    return f"{user}:{password}"


def credential_secret_data(user: str, password: pulumi.Output[str]) -> dict[str, pulumi.Output[str]]:
    """The job's key for the instance's `rpc-credentials` Secret (a Pulumi secret, as the password it comes from)."""
    return {CREDENTIAL_KEY: pulumi.Output.secret(password.apply(lambda p: credential_file(user, p)))}


def build_history_export(ctx: InstanceContext, target: HistoryExportTarget) -> k8s.batch.v1.CronJob:
    assert ctx.config.history is not None
    config = ctx.config.history.export
    selector = kube.selector(instance=ctx.name, component=EXPORT_COMPONENT)
    labels = kube.labels(instance=ctx.name, component=EXPORT_COMPONENT, name=EXPORT_COMPONENT)
    account = k8s.core.v1.ServiceAccount(
        f"{ctx.name}-{EXPORT_SERVICE_ACCOUNT}",
        metadata=ctx.meta(
            EXPORT_SERVICE_ACCOUNT,
            component=EXPORT_COMPONENT,
            app=EXPORT_COMPONENT,
            annotations={IRSA_ANNOTATION: target.role_arn},  # type: ignore[dict-item]
        ),
        automount_service_account_token=False,
        opts=ctx.in_namespace,
    )
    _network_policy(ctx, selector)
    container = k8s.core.v1.ContainerArgs(
        name="export",
        image=export_image(config),
        image_pull_policy="IfNotPresent",
        # The image's entrypoint is the program (`python -m zbi_export.cli`): only its flags here.
        args=export_args(ctx, config, target),
        env=[k8s.core.v1.EnvVarArgs(name="AWS_STS_REGIONAL_ENDPOINTS", value="regional")],
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": config.resources.cpu, "memory": config.resources.memory},
            limits=config.resources.limits(),
        ),
        security_context=kube.container_security(EXPORT_UID),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="rpc-credential", mount_path=CREDENTIAL_DIR, read_only=True)],
    )
    ctx.footprint.add_pods(1, [container])
    skips = ctx.checkov_skips(
        "CKV_K8S_8=a run-to-completion job: no liveness probe; activeDeadlineSeconds bounds a hung run",
        "CKV_K8S_9=a run-to-completion job: no readiness probe, it serves nothing",
        digest=config.image.digest,
    )
    return k8s.batch.v1.CronJob(
        f"{ctx.name}-{EXPORT_COMPONENT}",
        metadata=ctx.meta(EXPORT_COMPONENT, component=EXPORT_COMPONENT, app=EXPORT_COMPONENT, annotations=skips),
        spec=k8s.batch.v1.CronJobSpecArgs(
            schedule=config.schedule,
            time_zone="Etc/UTC",
            # Two runs would write the same partitions at once; the next run resumes where this one stopped.
            concurrency_policy="Forbid",
            # A run missed by more than an hour (cluster down) is skipped: the next one exports everything anyway.
            starting_deadline_seconds=3600,
            successful_jobs_history_limit=1,
            failed_jobs_history_limit=3,
            job_template=k8s.batch.v1.JobTemplateSpecArgs(
                spec=k8s.batch.v1.JobSpecArgs(
                    backoff_limit=2,
                    active_deadline_seconds=config.run_deadline_minutes * 60,
                    ttl_seconds_after_finished=86400,
                    template=k8s.core.v1.PodTemplateSpecArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations=skips),
                        spec=k8s.core.v1.PodSpecArgs(
                            service_account_name=EXPORT_SERVICE_ACCOUNT,
                            automount_service_account_token=False,
                            restart_policy="Never",
                            security_context=kube.pod_security(EXPORT_UID),
                            containers=[container],
                            # Only the job's key, readable by the pod's group (fsGroup) and no one else.
                            volumes=[
                                k8s.core.v1.VolumeArgs(
                                    name="rpc-credential",
                                    secret=k8s.core.v1.SecretVolumeSourceArgs(
                                        secret_name=RPC_SECRET,
                                        items=[k8s.core.v1.KeyToPathArgs(key=CREDENTIAL_KEY, path=CREDENTIAL_KEY)],
                                        default_mode=0o440,
                                    ),
                                )
                            ],
                            enable_service_links=False,
                        ),
                    ),
                )
            ),
        ),
        opts=ctx.child(depends_on=[account]),
    )


def _network_policy(ctx: InstanceContext, selector: dict[str, str]) -> None:
    """Out: the instance's full nodes on their RPC port (the guard), and HTTPS anywhere but the instance metadata
    service (S3 and STS have no fixed addresses); in: nothing. DNS is the instance's allow-dns policy."""
    np = k8s.networking.v1
    full_node = kube.selector(instance=ctx.name, component=FULL_NODE)
    np.NetworkPolicy(
        f"{ctx.name}-netpol-{EXPORT_COMPONENT}",
        metadata=ctx.meta(EXPORT_COMPONENT),
        spec=np.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            policy_types=["Ingress", "Egress"],
            ingress=[],
            egress=[
                np.NetworkPolicyEgressRuleArgs(
                    to=[np.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=full_node))],
                    ports=[np.NetworkPolicyPortArgs(protocol="TCP", port=ctx.ports.rpc)],
                ),
                np.NetworkPolicyEgressRuleArgs(
                    to=[
                        np.NetworkPolicyPeerArgs(
                            ip_block=np.IPBlockArgs(cidr="0.0.0.0/0", except_=["169.254.169.254/32"])
                        )
                    ],
                    ports=[np.NetworkPolicyPortArgs(protocol="TCP", port=HTTPS)],
                ),
            ],
        ),
        opts=ctx.in_namespace,
    )
