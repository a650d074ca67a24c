"""Publicly trusted certificates (endpoints.publicTls): ACM at the NLB on AWS, cert-manager with Let's Encrypt on
any cluster. Planned, checked against the strict schemas (Kubernetes' and cert-manager's vendored CRDs), checkov and
zBI's guardrails."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from tests.conftest import UPSTREAM, PlanStack
from tests.test_manifests import KUBERNETES_VERSION, checkov, unknown_fields
from zbi_infra.config.public_tls import ACME_SERVERS
from zbi_infra.errors import ConfigError
from zbi_infra.plan import render
from zbi_infra.policies import ACM_CERTIFICATE_ANNOTATION, Resource, evaluate
from zbi_infra.public_tls import PUBLIC_TLS_SECRET

CERT_MANAGER = {
    (data["group"], data["version"], data["kind"]): data["schema"]
    for data in (json.loads(p.read_text()) for p in (UPSTREAM / "cert-manager").glob("*.schema.json"))
}
ZONE = {"hostedZoneId": "Z0123456789ABCDEFGHIJ"}
ACME = {"provider": "acme", "acme": {"email": "ops@example.com"}}
PUBLIC = {"publicGrpc": True, "hostnames": ["wallets.lwd.example.com"]}


def wallets(endpoints: dict) -> dict:
    """A testnet instance added to a stack (regtest is never public)."""
    return {"zbi:instances": {"wallets": {"network": "testnet", "endpoints": endpoints}}}


def acm_plan(plan_stack: PlanStack):
    return plan_stack(
        "dev", merge={"zbi:dns": ZONE, "zbi:instances": {"testnet": {"endpoints": {"publicTls": {"provider": "acm"}}}}}
    )


def guardrail_violations(plan) -> list:
    return evaluate(Resource(r.type, r.name, r.inputs, r.urn) for r in plan.resources)


def test_acm_certificate_validated_in_the_stacks_zone_and_terminated_at_the_nlb(plan_stack: PlanStack) -> None:
    plan = acm_plan(plan_stack)
    (certificate,) = plan.of_type("aws:acm/certificate:Certificate")
    assert certificate.inputs["domainName"] == "testnet.lwd.zbi.example"
    assert certificate.inputs["validationMethod"] == "DNS"
    records = [r for r in plan.of_type("aws:route53/record:Record") if r.name.startswith("testnet-public-tls-")]
    assert [r.inputs["zoneId"] for r in records] == [ZONE["hostedZoneId"]]
    (record,) = records
    assert record.inputs["type"] == "CNAME" and record.inputs["records"][0].endswith(".acm-validations.aws.")
    assert record.inputs["name"].endswith(".testnet.lwd.zbi.example.")
    (validation,) = plan.of_type("aws:acm/certificateValidation:CertificateValidation")
    assert validation.inputs["validationRecordFqdns"] == [record.inputs["name"].rstrip(".")]
    (service,) = [
        s for s in plan.of_type("kubernetes:core/v1:Service") if s.inputs["spec"].get("type") == "LoadBalancer"
    ]
    annotations = service.inputs["metadata"]["annotations"]
    assert annotations[ACM_CERTIFICATE_ANNOTATION] == validation.inputs["certificateArn"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-ssl-ports"] == "443"
    # TLS onwards to the pods: the gateway still serves the stack CA's certificate behind the NLB.
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-backend-protocol"] == "ssl"
    (gateway,) = [d for d in plan.of_type("kubernetes:apps/v1:Deployment") if d.inputs["metadata"]["name"] == "gateway"]
    volumes = {v["name"]: v for v in gateway.inputs["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "grpc-tls"
    assert guardrail_violations(plan) == []


def test_acme_on_an_existing_cluster_issues_from_lets_encrypt_and_the_light_wallet_serves_it(
    plan_stack: PlanStack,
) -> None:
    plan = plan_stack("local", merge=wallets({**PUBLIC, "publicTls": ACME}))
    assert not any(r.type.startswith("aws:") for r in plan.resources)
    (issuer,) = plan.of_type("kubernetes:cert-manager.io/v1:Issuer")
    assert issuer.inputs["spec"]["acme"]["server"] == ACME_SERVERS["letsencrypt"]
    (certificate,) = plan.of_type("kubernetes:cert-manager.io/v1:Certificate")
    assert certificate.inputs["spec"]["dnsNames"] == PUBLIC["hostnames"]
    assert certificate.inputs["spec"]["issuerRef"]["name"] == issuer.inputs["metadata"]["name"]
    (wallet,) = [s for s in plan.of_type("kubernetes:apps/v1:StatefulSet") if s.name == "wallets-lightwalletd"]
    secrets = {v.get("secret", {}).get("secretName") for v in wallet.inputs["spec"]["template"]["spec"]["volumes"]}
    assert PUBLIC_TLS_SECRET in secrets and "grpc-tls" not in secrets
    assert guardrail_violations(plan) == []


def test_acme_behind_the_gateway_projects_the_public_pair_beside_the_private_ca(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev", merge={"zbi:instances": {"testnet": {"endpoints": {"publicTls": ACME}}}})
    (gateway,) = [d for d in plan.of_type("kubernetes:apps/v1:Deployment") if d.inputs["metadata"]["name"] == "gateway"]
    (tls,) = [v for v in gateway.inputs["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls"]
    sources = {s["secret"]["name"]: [i["key"] for i in s["secret"]["items"]] for s in tls["projected"]["sources"]}
    # The wallet-facing pair from cert-manager; the CA the gateway verifies lightwalletd with, from the stack CA.
    assert sources == {PUBLIC_TLS_SECRET: ["tls.crt", "tls.key"], "grpc-tls": ["ca.crt"]}
    (wallet,) = [s for s in plan.of_type("kubernetes:apps/v1:StatefulSet") if s.name == "testnet-lightwalletd"]
    secrets = {v.get("secret", {}).get("secretName") for v in wallet.inputs["spec"]["template"]["spec"]["volumes"]}
    assert "grpc-tls" in secrets
    assert guardrail_violations(plan) == []
    # The guardrail still bites: drop the pair from the gateway and its public Service no longer ends in TLS.
    for resource in plan.resources:
        if resource is gateway:
            resource.inputs["spec"]["template"]["spec"]["volumes"] = [
                v for v in resource.inputs["spec"]["template"]["spec"]["volumes"] if v["name"] != "tls"
            ]
    assert [v.policy for v in guardrail_violations(plan)] == ["public-endpoints-use-tls"]


@pytest.fixture(scope="module")
def public_tls_manifests(plan_stack: PlanStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("public-tls")
    plan = plan_stack(
        "dev",
        merge={
            "zbi:dns": ZONE,
            "zbi:instances": {
                "testnet": {"endpoints": {"publicTls": {"provider": "acm"}}},
                "wallets": {
                    "network": "testnet",
                    "endpoints": {**PUBLIC, "hostnames": ["w.example.com"], "publicTls": ACME},
                },
            },
        },
    )
    render.write(plan, out)
    return out / "manifests"


def test_the_public_tls_manifests_pass_the_strict_schemas(public_tls_manifests: Path) -> None:
    import yaml

    checked = set()
    for file in sorted(public_tls_manifests.glob("*.yaml")):
        obj = yaml.safe_load(file.read_text())
        group, _, version = obj["apiVersion"].partition("/")
        schema = CERT_MANAGER.get((group, version, obj["kind"]))
        if schema is not None:
            jsonschema.Draft202012Validator(schema).validate(obj)
            assert unknown_fields(obj.get("spec"), schema["properties"]["spec"], "spec") == [], file.name
            checked.add(obj["kind"])
        else:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
                checked.add(obj["kind"])
            except kubernetes_validate.SchemaNotFoundError:
                assert group.endswith(("coreos.com", "pulumi.com", "snapshot.storage.k8s.io")), file.name
    assert {"Issuer", "Certificate", "CronJob", "Role", "NetworkPolicy", "Service", "Deployment"} <= checked
    # The vendored schema is strict enough to catch a misspelt field.
    schema = CERT_MANAGER[("cert-manager.io", "v1", "Certificate")]
    assert unknown_fields({"dnsName": ["x"]}, schema["properties"]["spec"], "spec") == ["spec.dnsName"]


def test_checkov_passes_the_public_tls_manifests(public_tls_manifests: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [*checkov(), "-d", str(public_tls_manifests), "--framework", "kubernetes", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert report["summary"]["failed"] == 0, failed


@pytest.mark.parametrize(
    ("stack", "merge", "message"),
    [
        ("local", wallets({**PUBLIC, "publicTls": {"provider": "acm"}}), "acm needs AWS"),
        ("dev", {"zbi:dns": None, "zbi:instances": {"testnet": {"endpoints": {"publicTls": {"provider": "acm"}}}}},
         "zbi:dns is not set"),
        ("local", wallets({"publicTls": ACME}), "set publicGrpc: true"),
        ("local", wallets({**PUBLIC, "hostnames": ["*.example.com"], "publicTls": ACME}), "only through DNS-01"),
        ("local", wallets({**PUBLIC, "publicTls": {"provider": "acme"}}), "needs acme.email"),
    ],
)  # fmt: skip
def test_public_tls_that_cannot_work_is_refused_naming_the_key(plan_stack: PlanStack, stack, merge, message) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        plan_stack(stack, merge=merge)
    assert "publicTls" in str(refused.value) or "publicGrpc" in str(refused.value)


@pytest.mark.parametrize(("stack", "merge", "front"), [
    ("local", wallets({**PUBLIC, "publicTls": ACME}), "statefulset/lightwalletd"),
    ("dev", {"zbi:instances": {"testnet": {"endpoints": {"publicTls": ACME}}}}, "deployment/gateway"),
])  # fmt: skip
def test_a_renewed_acme_certificate_is_rolled_onto_the_front_door_weekly(plan_stack: PlanStack, stack, merge, front):
    plan = plan_stack(stack, merge=merge)
    # The renewal roller (dev's testnet also has its history export's CronJob).
    (cron,) = [c for c in plan.of_type("kubernetes:batch/v1:CronJob") if "history-export" not in c.name]
    pod = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][1:] == ["rollout", "restart", front]
    # Weekly: Let's Encrypt's 90-day certificate is renewed at day 60, so the new one is served by day 67.
    _minute, _hour, day, month, weekday = cron.inputs["spec"]["schedule"].split()
    assert day == month == "*" and weekday.isdigit()
    (role,) = [r for r in plan.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role") if r.name.endswith("roller")]
    (rule,) = role.inputs["rules"]
    kind, name = front.split("/")
    assert (
        rule["resources"] == [f"{kind}s"] and rule["resourceNames"] == [name] and set(rule["verbs"]) == {"get", "patch"}
    )
    assert pod["securityContext"]["runAsNonRoot"] is True and container["securityContext"]["readOnlyRootFilesystem"]
    # The instance's quota leaves room for the job's pod.
    (quota,) = [
        q
        for q in plan.of_type("kubernetes:core/v1:ResourceQuota")
        if q.inputs["metadata"]["namespace"] == cron.inputs["metadata"]["namespace"]
    ]
    assert int(quota.inputs["spec"]["hard"]["pods"]) >= 1
