"""Every rendered manifest passes the real Kubernetes schemas (strict) and checkov with zero failed checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import UPSTREAM, PlanStack, uv_binary
from zbi_infra.config.platform import EKS_KUBERNETES_VERSIONS, ClusterConfig
from zbi_infra.plan import render

# The version the dev stack's cluster runs: manifests are validated against its schemas.
KUBERNETES_VERSION = f"{ClusterConfig(name='x').version}.0"
# Instances that exercise every branch of ZcashNode, added to the dev stack.
VARIANTS = {
    "regnet": {"network": "regtest", "node": {"replicas": 3}, "lightwallet": {"kind": "none"}},
    "legacy": {"network": "regtest", "node": {"kind": "zcashd"}},
    "public": {"network": "mainnet", "node": {"inboundP2p": True}},
    "zaino": {"network": "mainnet", "lightwallet": {"kind": "zaino"}},
    "solo": {"network": "testnet", "node": {"replicas": 1}, "lightwallet": {"minReplicas": 1}},
    "zakura": {"network": "testnet", "node": {"kind": "zakurad"}, "lightwallet": {"kind": "zaino"}},
    "pruned": {
        "network": "mainnet",
        "node": {"kind": "zakurad", "pruning": {"txRetentionBlocks": 20000}, "inboundP2p": True},
        "lightwallet": {"kind": "none"},
    },
    "compat": {"network": "mainnet", "node": {"kind": "zakurad", "zcashdCompat": {"wallet": True}}},
    # The dev stack's testnet (which has a gateway) with the history cache: its volume per gateway replica.
    "testnet": {"history": {"cache": {"sizeGib": 10}}},
    # Elastic replicas with fast snapshot restore, and the history export's CronJob, ServiceAccount and NetworkPolicy
    # (tests/test_history_scaling*.py, tests/test_history_export_aws.py).
    "archive": {
        "network": "mainnet",
        "history": {
            "scaling": {"fastSnapshotRestore": True},
            "export": {
                "enabled": True,
                "image": {
                    "repository": "123456789012.dkr.ecr.us-east-1.amazonaws.com/zbi-history-export",
                    "tag": "0.1.0",
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def manifests(plan_stack: PlanStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("manifests")
    render.write(plan_stack("dev", merge={"zbi:instances": VARIANTS, "zbi:controlPlane": CONTROL_PLANE}), out)
    return out / "manifests"


def test_every_manifest_validates_strictly(manifests: Path) -> None:
    files = sorted(manifests.glob("*.yaml"))
    kinds = {yaml.safe_load(f.read_text())["kind"] for f in files}
    assert {"StatefulSet", "Service", "NetworkPolicy", "HorizontalPodAutoscaler", "StorageClass"} <= kinds
    without_schema = set()
    for file in files:
        obj = yaml.safe_load(file.read_text())
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            without_schema.add(f"{obj['apiVersion']}/{obj['kind']}")
    # Custom resources: the Prometheus Operator's and the Pulumi Kubernetes Operator's are checked against their CRDs
    # below; the external-snapshotter's CRDs are not vendored.
    monitoring = {
        f"monitoring.coreos.com/v1/{kind}" for kind in ("PodMonitor", "PrometheusRule", "Probe", "ServiceMonitor")
    }
    operator = {"pulumi.com/v1/Stack", "keda.sh/v1alpha1/ScaledObject"}
    assert without_schema <= {"snapshot.storage.k8s.io/v1/VolumeSnapshotClass"} | monitoring | operator, without_schema


CRD_SCHEMAS = {
    (data["group"], data["version"], data["kind"]): data["schema"]
    for directory in ("prometheus-operator", "pulumi-kubernetes-operator", "keda")
    for data in (json.loads(p.read_text()) for p in (UPSTREAM / directory).glob("*.schema.json"))
}
# The in-cluster control plane too: its namespaces, accounts and Stack resources.
CONTROL_PLANE = {
    "repository": "https://github.com/zbi-example/zbi",
    "organization": "zbi-example",
    "workspaceImage": "pulumi/pulumi-python:3.200.0-nonroot@sha256:" + "0" * 64,
}


def unknown_fields(value: object, schema: dict, path: str = "") -> list[str]:
    """Fields a structural schema does not declare: Kubernetes would prune them silently."""
    if isinstance(value, dict) and "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        found = []
        for key, child in value.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += unknown_fields(child, schema["properties"][key], f"{path}.{key}")
        return found
    if isinstance(value, list) and "items" in schema:
        return [f for i, item in enumerate(value) for f in unknown_fields(item, schema["items"], f"{path}[{i}]")]
    return []


def test_custom_resources_validate_against_their_crds(manifests: Path) -> None:
    checked = 0
    kinds_checked: set[str] = set()
    for file in sorted(manifests.glob("*.yaml")):
        obj = yaml.safe_load(file.read_text())
        group, _, version = obj["apiVersion"].partition("/")
        schema = CRD_SCHEMAS.get((group, version, obj["kind"]))
        if schema is None:
            continue
        # Not checked against the metaschema: CRDs carry Go regular expressions ("^(?i)…") that Python's re refuses;
        # they apply only to fields zBI does not set.
        jsonschema.Draft202012Validator(schema).validate(obj)
        assert unknown_fields(obj.get("spec"), schema["properties"]["spec"], "spec") == [], file.name
        checked += 1
        kinds_checked.add(obj["kind"])
    assert {"PodMonitor", "PrometheusRule", "Probe", "Stack", "ScaledObject"} <= kinds_checked


def test_a_misspelled_field_of_a_monitor_would_be_caught() -> None:
    schema = CRD_SCHEMAS[("monitoring.coreos.com", "v1", "PodMonitor")]
    spec = {"selector": {"matchLabels": {"a": "b"}}, "podMetricsEndpoints": [{"prot": "metrics"}]}
    assert unknown_fields(spec, schema["properties"]["spec"], "spec") == ["spec.podMetricsEndpoints[0].prot"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate({"spec": {"podMetricsEndpoints": "not-a-list"}})


def test_an_unknown_field_would_be_caught(manifests: Path) -> None:
    statefulset = yaml.safe_load((manifests / "zbi-testnet__StatefulSet__zebrad.yaml").read_text())
    statefulset["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSION, strict=True)


# Pinned: a checkov release with new checks must not turn CI red without a change here.
CHECKOV = "checkov==3.3.30"


def checkov() -> list[str]:
    """checkov in an isolated environment of its own, installed from PyPI on first use (`uv tool run`)."""
    uv = uv_binary()
    runner = [uv] if uv else [sys.executable, "-m", "uv"]
    return [*runner, "tool", "run", "--from", CHECKOV, "checkov"]


@pytest.mark.slow
def test_checkov_reports_no_failed_check(manifests: Path, tmp_path: Path) -> None:
    # Isolated (uv tool run): checkov pins an old `packaging` that breaks pulumi in a shared environment.
    result = subprocess.run(
        [*checkov(), "-d", str(manifests), "--framework", "kubernetes", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    if not result.stdout.lstrip().startswith("{"):
        pytest.fail(f"checkov did not run ({CHECKOV} via uv tool run): {result.stderr.strip()[-300:]}")
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["passed"] > 150
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    # CKV_K8S_38: the jobs that call the API (the history snapshot rotation, the TLS roller) need their token.
    allowed = {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_38", "CKV_K8S_40", "CKV_K8S_43"}
    assert skipped <= allowed, skipped


def test_the_schemas_cover_every_kubernetes_version_zbi_accepts() -> None:
    supported = tuple(int(part) for part in kubernetes_validate.latest_version().split(".")[:2])
    for version in EKS_KUBERNETES_VERSIONS:
        assert tuple(int(part) for part in version.split(".")) <= supported, version
    assert KUBERNETES_VERSION == "1.33.0"
