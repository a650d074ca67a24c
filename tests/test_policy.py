"""zBI's guardrails: every stack passes them, every deliberately broken variant is caught — offline (`zbi plan
--policy`) and by the real policy pack served by pulumi-policy, called over its gRPC Analyzer interface the way
`pulumi preview --policy-pack policy` calls it."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc

from tests.conftest import ROOT, PlanStack
from tests.plugin_server import plugin_channel
from zbi_infra.plan.engine import Plan, PlannedResource
from zbi_infra.policies import GUARDRAILS, Resource, evaluate, no_public_node_rpc, public_endpoints_use_tls

PRIMARY_OUTPUTS = {
    "dev": {"disasterRecovery": {"drKmsKeyArn": "arn:aws:kms:us-west-2:123456789012:key/x", "instances": ["testnet"]}}
}
VARIANTS = {
    "regnet": {"network": "regtest", "node": {"replicas": 3}, "lightwallet": {"kind": "none"}},
    "legacy": {"network": "regtest", "node": {"kind": "zcashd"}},
    "zaino": {"network": "testnet", "lightwallet": {"kind": "zaino"}},
    "public": {
        "network": "mainnet",
        "node": {"inboundP2p": True},
        # A light-wallet server on its own public load balancer (no gateway): TLS must end at its pods.
        "endpoints": {"publicGrpc": True, "allowedCidrs": ["34.192.0.0/12"]},
    },
    # A history instance that exports the chain to S3 (tests/test_history_export_aws.py).
    "archive": {
        "network": "mainnet",
        "history": {
            "export": {
                "enabled": True,
                "image": {
                    "repository": "123456789012.dkr.ecr.us-east-1.amazonaws.com/zbi-history-export",
                    "tag": "0.1.0",
                },
            }
        },
    },
}


def resources(plan: Plan) -> list[Resource]:
    return [Resource(r.type, r.name, r.inputs, r.urn) for r in plan.resources]


@pytest.fixture(scope="module")
def dev(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:instances": VARIANTS})


def test_every_stack_passes_every_guardrail(plan_stack: PlanStack, dev: Plan) -> None:
    plans = [
        dev,
        plan_stack("local"),
        plan_stack("dr", stack_outputs=PRIMARY_OUTPUTS),
        plan_stack("dr", merge={"zbi:dr": {"activate": True}}, stack_outputs=PRIMARY_OUTPUTS),
    ]
    for plan in plans:
        assert evaluate(resources(plan)) == [], plan.stack


def mutate(plan: Plan, name: str, change: Callable[[dict[str, Any]], None]) -> list[Resource]:
    changed = []
    for resource in plan.resources:
        inputs = copy.deepcopy(resource.inputs)
        if resource.name == name:
            change(inputs)
        changed.append(Resource(resource.type, resource.name, inputs, resource.urn))
    return changed


def container(inputs: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return inputs["spec"]["template"]["spec"]["containers"][index]


def init_container(inputs: dict[str, Any]) -> dict[str, Any]:
    return inputs["spec"]["template"]["spec"]["initContainers"][0]


def full_node_ingress_block(inputs: dict[str, Any]) -> dict[str, Any]:
    """The P2P rule's ipBlock of the full node's policy (0.0.0.0/0 but the metadata address)."""
    return inputs["spec"]["ingress"][0]["from"][0]["ipBlock"]


def copy_rule(inputs: dict[str, Any]) -> dict[str, Any]:
    return inputs["policyDetails"]["schedules"][0]["crossRegionCopyRules"][0]


BROKEN: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    "an unencrypted chain StorageClass": (
        "zbi-testnet-chain",
        lambda i: i["parameters"].update(encrypted="false"),
    ),
    "a StorageClass that deletes volumes": ("zbi-testnet-chain", lambda i: i.update(reclaimPolicy="Delete")),
    "a StatefulSet that deletes its claims": (
        "testnet-zebrad",
        lambda i: i["spec"]["persistentVolumeClaimRetentionPolicy"].update(whenDeleted="Delete"),
    ),
    "node RPC behind a load balancer": ("testnet-zebrad-rpc", lambda i: i["spec"].update(type="LoadBalancer")),
    "a privileged container": ("testnet-zebrad", lambda i: container(i)["securityContext"].update(privileged=True)),
    "a container that may run as root": (
        "testnet-lightwalletd",
        lambda i: container(i)["securityContext"].update(runAsUser=0),
    ),
    "privilege escalation": (
        "testnet-zebrad",
        lambda i: i["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
    ),
    "a KMS key that never rotates": ("zbi-dev-ebs-key", lambda i: i.update(enableKeyRotation=False)),
    # A container's own securityContext overrides its pod's: false under a pod's true runs as root if the image does.
    "a container that turns runAsNonRoot off under a pod that has it on": (
        "testnet-zebrad",
        lambda i: container(i)["securityContext"].update(runAsNonRoot=False),
    ),
    "a privileged init container": (
        "testnet-lightwalletd",
        lambda i: init_container(i)["securityContext"].update(privileged=True),
    ),
    "a root init container": (
        "testnet-lightwalletd",
        lambda i: init_container(i)["securityContext"].update(runAsUser=0),
    ),
    "an init container that may escalate": (
        "testnet-lightwalletd",
        lambda i: init_container(i)["securityContext"].pop("allowPrivilegeEscalation"),
    ),
    "a public light-wallet server with --no-tls-very-insecure in its command": (
        "public-lightwalletd",
        lambda i: container(i)["command"].append("--no-tls-very-insecure"),
    ),
    "a public light-wallet server with --no-tls-very-insecure in its args": (
        "public-lightwalletd",
        lambda i: container(i).update(args=["--no-tls-very-insecure"]),
    ),
    "an unencrypted cross-region copy rule": ("dev-backups-snapshots", lambda i: copy_rule(i).update(encrypted=False)),
    "a cross-region copy rule that does not say it encrypts": (
        "dev-backups-snapshots",
        lambda i: copy_rule(i).pop("encrypted"),
    ),
    "an ipBlock except outside its block": (
        "testnet-netpol-full-node",
        lambda i: full_node_ingress_block(i).update(cidr="203.0.113.0/24"),
    ),
    "an ipBlock except that is its whole block": (
        "testnet-netpol-full-node",
        lambda i: full_node_ingress_block(i).update(**{"except": ["0.0.0.0/0"]}),
    ),
    "a public endpoint without TLS": (
        "testnet-gateway",
        lambda i: i["spec"]["template"]["spec"].update(
            volumes=[v for v in i["spec"]["template"]["spec"]["volumes"] if v["name"] != "tls"]
        ),
    ),
    "NetworkPolicies the cluster does not enforce": ("zbi-dev-vpc-cni", lambda i: i.pop("configurationValues")),
    "an export bucket that allows public policies": (
        "archive-history-export-data-public-access-block",
        lambda i: i.update(blockPublicPolicy=False),
    ),
    "an export bucket encrypted with S3's own key only": (
        "archive-history-export-data-encryption",
        lambda i: i["rules"][0]["applyServerSideEncryptionByDefault"].update(sseAlgorithm="AES256"),
    ),
}
EXPECTED = {
    "an unencrypted chain StorageClass": {"chain-storage-encrypted-and-retained"},
    "a StorageClass that deletes volumes": {"chain-storage-encrypted-and-retained"},
    "a StatefulSet that deletes its claims": {"chain-storage-encrypted-and-retained"},
    # Plain JSON-RPC on a load balancer breaks two rules: it is public, and it is not TLS.
    "node RPC behind a load balancer": {"no-public-node-rpc", "public-endpoints-use-tls"},
    "a privileged container": {"no-root-or-privileged-containers"},
    "a container that may run as root": {"no-root-or-privileged-containers"},
    "privilege escalation": {"no-root-or-privileged-containers"},
    "a KMS key that never rotates": {"kms-key-rotation"},
    "a container that turns runAsNonRoot off under a pod that has it on": {"no-root-or-privileged-containers"},
    "a privileged init container": {"no-root-or-privileged-containers"},
    "a root init container": {"no-root-or-privileged-containers"},
    "an init container that may escalate": {"no-root-or-privileged-containers"},
    "a public light-wallet server with --no-tls-very-insecure in its command": {"public-endpoints-use-tls"},
    "a public light-wallet server with --no-tls-very-insecure in its args": {"public-endpoints-use-tls"},
    "an unencrypted cross-region copy rule": {"snapshots-copied-cross-region"},
    "a cross-region copy rule that does not say it encrypts": {"snapshots-copied-cross-region"},
    "an ipBlock except outside its block": {"network-policy-blocks-valid"},
    "an ipBlock except that is its whole block": {"network-policy-blocks-valid"},
    "a public endpoint without TLS": {"public-endpoints-use-tls"},
    "NetworkPolicies the cluster does not enforce": {"network-policies-enforced"},
    "an export bucket that allows public policies": {"s3-buckets-private-and-encrypted"},
    "an export bucket encrypted with S3's own key only": {"s3-buckets-private-and-encrypted"},
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_variant_is_caught_by_its_guardrail(dev: Plan, case: str) -> None:
    name, change = BROKEN[case]
    violations = evaluate(mutate(dev, name, change))
    assert {v.policy for v in violations} == EXPECTED[case], violations


def test_config_that_breaks_a_guardrail_is_caught(plan_stack: PlanStack) -> None:
    open_endpoint = plan_stack(
        "dev", merge={"zbi:cluster": {"endpoint": {"publicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}}}
    )
    assert {v.policy for v in evaluate(resources(open_endpoint))} == {"eks-endpoint-not-open-to-the-world"}
    no_backups = plan_stack("dev", merge={"zbi:backup": {"enabled": False}})
    (violation,) = evaluate(resources(no_backups))
    assert violation.policy == "snapshots-copied-cross-region" and "zbi-testnet-chain" in violation.message


def test_every_guardrail_has_a_description_and_a_remediation_and_is_exercised() -> None:
    assert len({g.name for g in GUARDRAILS}) == len(GUARDRAILS) == 11
    for guardrail in GUARDRAILS:
        assert len(guardrail.description) > 40 and len(guardrail.remediation) > 20
    exercised = set().union(*EXPECTED.values()) | {
        "eks-endpoint-not-open-to-the-world",
        "snapshots-copied-cross-region",
        "images-pinned-by-digest",  # tests/test_pin_images.py: refused without digests, passed with them
    }
    assert exercised == {g.name for g in GUARDRAILS}


@pytest.mark.slow
def test_zbi_plan_policy_exits_3_on_a_violation(tmp_path) -> None:
    from tests.stack_input import project_copy, zbi

    project = project_copy(tmp_path)
    stack = (
        (project / "Pulumi.dev.yaml")
        .read_text()
        .replace("    drRetainDays: 7\n", "    drRetainDays: 7\n    enabled: false\n")
    )
    (project / "Pulumi.nobackup.yaml").write_text(stack)
    result = zbi("plan", "nobackup", "--policy", cwd=project)
    assert result.returncode == 3, result.stderr
    assert "[snapshots-copied-cross-region]" in result.stderr and ": 1 violation\n" in result.stderr
    clean = zbi("plan", "dev", "--policy", cwd=project)
    assert clean.returncode == 0 and "0 violations" in clean.stderr


# ---- the policy pack, served by pulumi-policy ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """`python policy/__main__.py`, as the engine starts a Python policy pack."""
    with plugin_channel([sys.executable, str(ROOT / "policy" / "__main__.py")], ROOT / "policy") as channel:
        yield analyzer_pb2_grpc.AnalyzerStub(channel)


def properties(resource: PlannedResource | Resource) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(dict(resource.inputs if isinstance(resource, PlannedResource) else resource.props), struct)
    return struct


def analyze(stub: analyzer_pb2_grpc.AnalyzerStub, resource: Resource) -> list[str]:
    request = proto.AnalyzeRequest(
        type=resource.type, name=resource.name, urn=resource.urn, properties=properties(resource)
    )
    return [d.policyName for d in stub.Analyze(request, timeout=30).diagnostics]


def analyze_stack(stub: analyzer_pb2_grpc.AnalyzerStub, listed: list[Resource]) -> list[str]:
    request = proto.AnalyzeStackRequest(
        resources=[
            proto.AnalyzerResource(type=r.type, name=r.name, urn=r.urn, properties=properties(r)) for r in listed
        ]
    )
    return [d.policyName for d in stub.AnalyzeStack(request, timeout=60).diagnostics]


def test_the_pack_declares_every_guardrail_as_mandatory(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "zbi-guardrails"
    assert {p.name for p in info.policies} == {g.name for g in GUARDRAILS}
    assert {p.enforcementLevel for p in info.policies} == {proto.MANDATORY}


def test_the_pack_passes_a_plan_and_catches_each_broken_variant(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, dev: Plan
) -> None:
    clean = resources(dev)
    assert [p for r in clean for p in analyze(analyzer, r)] == []
    assert analyze_stack(analyzer, clean) == []
    for case, (name, change) in BROKEN.items():
        broken = mutate(dev, name, change)
        found = set(analyze_stack(analyzer, broken)) | {
            p for r in broken if r.name == name for p in analyze(analyzer, r)
        }
        assert found == EXPECTED[case], case


def _tls_stack(*, secret_type: str, stranger_namespace: str) -> list[Resource]:
    """A public load balancer in namespace `b` whose pods mount a Secret of `secret_type`, and a workload of another
    namespace with the same labels and no TLS at all."""

    def workload(namespace: str, volumes: list[dict[str, Any]]) -> Resource:
        template = {
            "metadata": {"labels": {"app": "wallet"}},
            "spec": {"containers": [{"name": "c"}], "volumes": volumes},
        }
        props = {"metadata": {"namespace": namespace, "name": "wallet"}, "spec": {"template": template}}
        return Resource("kubernetes:apps/v1:Deployment", f"{namespace}-wallet", props, f"urn:{namespace}")

    service = {"metadata": {"namespace": "b"}, "spec": {"type": "LoadBalancer", "selector": {"app": "wallet"},
                                                       "ports": [{"name": "grpc", "port": 443}]}}  # fmt: skip
    secret = {"metadata": {"namespace": "b", "name": "tls"}, "type": secret_type}
    return [
        Resource("kubernetes:core/v1:Service", "b-wallet", service, "urn:service"),
        Resource("kubernetes:core/v1:Secret", "b-tls", secret, "urn:secret"),
        workload("b", [{"name": "tls", "secret": {"secretName": "tls"}}]),
        workload(stranger_namespace, []),
    ]


def test_tls_at_the_pods_means_a_tls_secret_of_the_services_own_namespace() -> None:
    assert public_endpoints_use_tls(_tls_stack(secret_type="kubernetes.io/tls", stranger_namespace="a")) == []
    assert public_endpoints_use_tls(_tls_stack(secret_type="kubernetes.io/tls", stranger_namespace="c")) == []
    # A Secret of another type is no certificate, whatever its name (custom types sort anywhere).
    for other in ("Opaque", "zbi.io/certificate"):
        assert public_endpoints_use_tls(_tls_stack(secret_type=other, stranger_namespace="a")) == [
            ("urn:service", "public Service b-wallet does not end in TLS")
        ]


@pytest.mark.parametrize(("encrypted", "violations"), [(True, 0), (False, 1), (None, 1)])
def test_a_raw_ebs_volume_must_say_it_is_encrypted(encrypted: bool | None, violations: int) -> None:
    props = {"availabilityZone": "us-east-1a", "size": 100} | ({} if encrypted is None else {"encrypted": encrypted})
    found = evaluate([Resource("aws:ebs/volume:Volume", "chain", props, "urn:volume")])
    assert [v.policy for v in found] == ["chain-storage-encrypted-and-retained"] * violations


@pytest.mark.parametrize(
    "port",
    [
        {"name": "rpc", "port": 443, "targetPort": 443},  # named rpc
        {"name": "api", "port": 443, "targetPort": "rpc"},  # aimed at the pods' rpc port
        {"name": "api", "port": 8232, "targetPort": "api"},  # mainnet's RPC port number, whatever the names
        {"name": "api", "port": 443, "targetPort": 18232},  # testnet's, as a target
    ],
)
def test_node_rpc_is_recognised_by_name_or_by_number(port: dict[str, Any]) -> None:
    for kind in ("LoadBalancer", "NodePort"):
        service = Resource("kubernetes:core/v1:Service", "s", {"spec": {"type": kind, "ports": [port]}})
        assert no_public_node_rpc(service), (kind, port)
    internal = Resource("kubernetes:core/v1:Service", "s", {"spec": {"type": "ClusterIP", "ports": [port]}})
    assert no_public_node_rpc(internal) == []
    assert (
        no_public_node_rpc(
            Resource(
                "kubernetes:core/v1:Service",
                "s",
                {"spec": {"type": "LoadBalancer", "ports": [{"name": "grpc", "port": 443, "targetPort": "grpc"}]}},
            )
        )
        == []
    )
