"""Rolling the front door onto a renewed public certificate (`publicTls.provider: acme`).

cert-manager renews a Let's Encrypt certificate a third of its lifetime before expiry (day 60 of 90) by rewriting
its Secret; the kubelet refreshes the mounted files, but nginx (the gateway) and lightwalletd/Zaino read their
certificate once, at start. A weekly CronJob therefore runs `kubectl rollout restart` on the front door — one
replica at a time, under its PodDisruptionBudget — so a renewed certificate is served within 7 days, with 3 weeks to
spare. Its account may patch that one workload and nothing else.
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from zbi_infra import kube
from zbi_infra.node.api_client import api_client_identity
from zbi_infra.node.context import InstanceContext, tmp_volume
from zbi_infra.releases import Image

ROLLER = "public-tls-roller"
# Kubernetes' own kubectl image (build/server-image/kubectl/Dockerfile: debian-base with bash and coreutils, kubectl
# at /bin/kubectl, no USER: zBI runs it as nobody). Within one minor version of the clusters zBI accepts. Pinned by
# the digest independent public manifests pin this tag to (tests/fixtures/upstream/kubernetes/kubectl-image.json).
KUBECTL = Image("registry.k8s.io/kubectl", "v1.34.1", "after 2025-08-27 (v1.34.0)", "nobody", 65534, "/bin/kubectl")
KUBECTL_DIGEST = "sha256:59bafa07ff3a6d4b417e7633ddb9d79a9606ca98bf64bac080b3e65748669250"
SCHEDULE = "17 4 * * 1"  # Mondays 04:17 UTC


def build_renewal_roller(ctx: InstanceContext, *, kind: str, workload: str) -> k8s.batch.v1.CronJob:
    """`kind` "deployment" or "statefulset", `workload` its name in the instance's namespace."""
    labels = kube.labels(instance=ctx.name, component=ROLLER, name=ROLLER)
    account = api_client_identity(
        ctx,
        ROLLER,
        [
            k8s.rbac.v1.PolicyRuleArgs(
                api_groups=["apps"], resources=[f"{kind}s"], resource_names=[workload], verbs=["get", "patch"]
            )
        ],
    )
    resources = k8s.core.v1.ResourceRequirementsArgs(
        requests={"cpu": "10m", "memory": "32Mi"}, limits={"cpu": "100m", "memory": "64Mi"}
    )
    container = k8s.core.v1.ContainerArgs(
        name="kubectl",
        image=kube.image_ref(KUBECTL.repository, KUBECTL.tag, KUBECTL_DIGEST),
        image_pull_policy="IfNotPresent",
        command=[KUBECTL.binary, "rollout", "restart", f"{kind}/{workload}"],
        env=[k8s.core.v1.EnvVarArgs(name="HOME", value="/tmp")],  # kubectl's cache, on the writable volume
        resources=resources,
        security_context=kube.container_security(KUBECTL.uid),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
    )
    ctx.footprint.add_pods(1, [container])
    skips = ctx.checkov_skips(
        "CKV_K8S_38=kubectl needs its token to restart the front door; the Role allows that one workload only",
        "CKV_K8S_8=a run-to-completion job: no liveness probe",
        "CKV_K8S_9=a run-to-completion job: no readiness probe",
        digest=KUBECTL_DIGEST,
    )
    return k8s.batch.v1.CronJob(
        f"{ctx.name}-{ROLLER}",
        metadata=ctx.meta(ROLLER, component=ROLLER, app=ROLLER, annotations=skips),
        spec=k8s.batch.v1.CronJobSpecArgs(
            schedule=SCHEDULE,
            time_zone="Etc/UTC",
            concurrency_policy="Forbid",
            successful_jobs_history_limit=1,
            failed_jobs_history_limit=3,
            job_template=k8s.batch.v1.JobTemplateSpecArgs(
                spec=k8s.batch.v1.JobSpecArgs(
                    backoff_limit=3,
                    active_deadline_seconds=600,
                    ttl_seconds_after_finished=86400,
                    template=k8s.core.v1.PodTemplateSpecArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations=skips),
                        spec=k8s.core.v1.PodSpecArgs(
                            service_account_name=ROLLER,
                            automount_service_account_token=True,
                            restart_policy="OnFailure",
                            security_context=kube.pod_security(KUBECTL.uid),
                            containers=[container],
                            volumes=[tmp_volume()],
                            enable_service_links=False,
                        ),
                    ),
                )
            ),
        ),
        opts=ctx.child(depends_on=[account]),
    )
