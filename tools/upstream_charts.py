"""The fixtures refresh_upstream.py takes from Kubernetes charts and custom resource definitions: the monitoring
charts (prometheus-community/helm-charts) and the Prometheus Operator's CRDs they carry, cert-manager's CRDs, and the
Pulumi Kubernetes Operator's chart, Stack CRD and metrics.

Each function writes its fixtures with `write_json` and records their source with `record` (refresh_upstream.py's).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from upstream_git import git_commit, git_files, git_show, metric_names

WriteJson = Callable[[str, object], None]
# (fixture, upstream name, path at the tag, how it was taken)
Record = Callable[[str, str, str, str], None]

BLACKBOX_CHART_TAG = "prometheus-blackbox-exporter-11.17.2"
CLOUDWATCH_CHART_TAG = "prometheus-cloudwatch-exporter-0.28.1"
MONITORING_CRDS = ("podmonitors", "probes", "prometheusrules", "servicemonitors")


def chart_value_keys(checkout: Path, tag: str, chart_dir: str) -> set[str]:
    """The chart's top-level values: those values.yaml lists and those its templates read."""
    read = set(yaml.safe_load(git_show(checkout, tag, f"{chart_dir}/values.yaml")))
    for template in git_files(checkout, tag, f"{chart_dir}/templates"):
        read |= set(re.findall(r"\.Values\.([A-Za-z0-9_]+)", git_show(checkout, tag, template)))
    return read


def served_schema(crd: dict[str, Any], version: dict[str, Any], schema: Any) -> dict[str, Any]:
    """The fixture of a CRD's served `version`: its group, version and kind, with `schema` (the version's own, or a
    pruned copy)."""
    return {
        "group": crd["spec"]["group"],
        "version": version["name"],
        "kind": crd["spec"]["names"]["kind"],
        "schema": schema,
    }


def refresh_monitoring_charts(checkout: Path, tag: str, write_json: WriteJson, record: Record) -> None:
    for plural in MONITORING_CRDS:
        path = f"charts/kube-prometheus-stack/charts/crds/crds/crd-{plural}.yaml"
        crd = yaml.safe_load(git_show(checkout, tag, path))
        (version,) = [v for v in crd["spec"]["versions"] if v["served"]]
        write_json(
            f"prometheus-operator/{plural}.schema.json",
            served_schema(crd, version, version["schema"]["openAPIV3Schema"]),
        )
        record(f"prometheus-operator/{plural}.schema.json", "helm-charts", path, "the served version's schema")
    charts = {}
    for chart, chart_tag in (
        ("kube-prometheus-stack", tag),
        ("prometheus-blackbox-exporter", BLACKBOX_CHART_TAG),
        ("prometheus-cloudwatch-exporter", CLOUDWATCH_CHART_TAG),
    ):
        meta = yaml.safe_load(git_show(checkout, chart_tag, f"charts/{chart}/Chart.yaml"))
        charts[chart] = {
            # zBI sets no key a chart does not read.
            "valueKeys": sorted(chart_value_keys(checkout, chart_tag, f"charts/{chart}")),
            "version": meta["version"],
            "appVersion": meta["appVersion"],
            "tag": chart_tag,
            "commit": git_commit(checkout, chart_tag),
        }
    write_json("prometheus-community/charts.json", charts)
    record(
        "prometheus-community/charts.json",
        "helm-charts",
        "charts/*/Chart.yaml, charts/*/values.yaml, charts/*/templates/*",
        "pinned chart versions; top-level values listed or read by templates",
    )


def refresh_cert_manager(checkout: Path, tag: str, write_json: WriteJson, record: Record) -> None:
    """The schemas of the custom resources zBI creates for public TLS (zbi_infra/public_tls.py)."""
    for plural in ("certificates", "issuers"):
        path = f"deploy/crds/cert-manager.io_{plural}.yaml"
        crd = yaml.safe_load(git_show(checkout, tag, path))
        (version,) = [v for v in crd["spec"]["versions"] if v["served"]]
        write_json(
            f"cert-manager/{plural}.schema.json", served_schema(crd, version, version["schema"]["openAPIV3Schema"])
        )
        record(f"cert-manager/{plural}.schema.json", "cert-manager", path, "the served version's schema")


def refresh_pulumi_kubernetes_operator(checkout: Path, tag: str, write_json: WriteJson, record: Record) -> None:
    crd_path = "deploy/crds/pulumi.com_stacks.yaml"
    crd = yaml.safe_load(git_show(checkout, tag, crd_path))
    (version,) = [v for v in crd["spec"]["versions"] if v["served"] and v.get("storage")]
    schema = version["schema"]["openAPIV3Schema"]
    # The workspace's pod template is a whole PodSpec (300 kB); zBI sets none of it, so it is kept as an object.
    workspace = schema["properties"]["spec"]["properties"]["workspaceTemplate"]["properties"]["spec"]["properties"]
    workspace["podTemplate"] = {"type": "object", "description": "pruned by tools/refresh_upstream.py"}
    write_json("pulumi-kubernetes-operator/stacks.schema.json", served_schema(crd, version, schema))
    record("pulumi-kubernetes-operator/stacks.schema.json", "pulumi-kubernetes-operator", crd_path,
           "the served version's schema, workspaceTemplate.spec.podTemplate pruned")  # fmt: skip
    chart_dir = "deploy/helm/pulumi-operator"
    meta = yaml.safe_load(git_show(checkout, tag, f"{chart_dir}/Chart.yaml"))
    read = chart_value_keys(checkout, tag, chart_dir)
    readme = git_show(checkout, tag, f"{chart_dir}/README.md")
    repository = re.search(r"(oci://\S+/pulumi-kubernetes-operator)", readme)
    migration = git_show(checkout, tag, "docs/migration.md")
    write_json(
        "pulumi-kubernetes-operator/chart.json",
        {"name": meta["name"], "version": meta["version"], "appVersion": meta["appVersion"],
         "repository": repository.group(1) if repository else None, "valueKeys": sorted(read),
         "workspaceNeedsAuthDelegator": "`system:auth-delegator` cluster role" in migration},
    )  # fmt: skip
    metrics = metric_names(checkout, tag, r'Name:\s*"([a-z_]+)"', r"operator/internal/controller/pulumi/metrics_")
    write_json("pulumi-kubernetes-operator/metrics.json", {"metrics": metrics})
    record("pulumi-kubernetes-operator/metrics.json", "pulumi-kubernetes-operator",
           "operator/internal/controller/pulumi/metrics_*.go (prometheus Name:)", "metric names")  # fmt: skip
    record("pulumi-kubernetes-operator/chart.json", "pulumi-kubernetes-operator",
           f"{chart_dir}/Chart.yaml, values.yaml, templates/*, README.md; docs/migration.md",
           "chart version, OCI repository, values it reads; the workspace account's required role")  # fmt: skip
