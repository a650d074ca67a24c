"""Publicly trusted certificates (endpoints.publicTls): ACM at the NLB on AWS, cert-manager with Let's Encrypt on
any cluster. Planned, checked against the strict schemas (Kubernetes' and cert-manager's vendored CRDs), checkov and
zBI's guardrails."""

from __future__ import annotations

import copy
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.conftest import ROOT, UPSTREAM, PlanStack, deep_merge
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
    # TLS onwards to the pods: the gateway still serves the instance CA's certificate behind the NLB.
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
    # The wallet-facing pair from cert-manager; the CA the gateway verifies lightwalletd with, from the instance CA.
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


@pytest.mark.slow
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


def test_the_roller_runs_the_kubectl_image_public_manifests_pin(plan_stack: PlanStack) -> None:
    """registry.k8s.io/kubectl at a tag and digest independent public manifests agree on, run as its Dockerfile
    builds it (kubectl at /bin/kubectl; no USER, so zBI's non-root uid applies)."""
    evidence = json.loads((UPSTREAM / "kubernetes" / "kubectl-image.json").read_text())
    reference = f"{evidence['image']}:{evidence['tag']}@{evidence['digest']}"
    pins = evidence["public_pins"]["pins"]
    agreeing = [p for p in pins if evidence["digest"].removeprefix("sha256:") in p["line"]]
    assert len({p["id"] for p in agreeing}) >= 4 and sum(reference in p["line"] for p in pins) >= 3
    plan = plan_stack("dev", merge={"zbi:instances": {"testnet": {"endpoints": {"publicTls": ACME}}}})
    (cron,) = plan.of_type("kubernetes:batch/v1:CronJob")
    pod = cron.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == reference
    dockerfile = evidence["dockerfile"]["quotes"]
    assert f'ENTRYPOINT ["{container["command"][0]}"]' in dockerfile and "COPY ${BINARY} /bin/" in dockerfile
    assert not any(q.startswith("USER") for q in dockerfile)
    assert pod["securityContext"]["runAsUser"] == 65534 and pod["securityContext"]["runAsNonRoot"] is True
    # Pinned by digest: checkov's digest check is no longer skipped for it.
    skips = cron.inputs["metadata"]["annotations"].values()
    assert not any(s.startswith("CKV_K8S_43") for s in skips)


def endpoints_of(plan_stack: PlanStack, stack: str, merge: dict, access: dict[str, Any]) -> list:
    """`zbi endpoints`' view of `stack` with `merge` applied, as the command builds it."""
    from zbi_infra.commands.endpoints import endpoints
    from zbi_infra.config import load_stack_config
    from zbi_infra.plan.project import find_project

    stack_file = find_project(ROOT).stack_file(stack)
    config = copy.deepcopy(stack_file.config)
    for key, patch in merge.items():
        config[key] = deep_merge(config[key], patch) if isinstance(config.get(key), dict) else patch
    return endpoints(plan_stack(stack, merge=merge), load_stack_config(config), stack=stack, access=access)


def test_endpoints_of_a_staging_certificate_skip_verification_and_say_why(plan_stack: PlanStack) -> None:
    """Let's Encrypt staging chains to a root no client holds: `zbi endpoints` must not promise a trusted
    certificate, and its commands must run anyway (grpcurl -insecure, curl -k); production issues trusted ones."""

    def endpoint_for(server: str):
        acme = {"provider": "acme", "acme": {"email": "ops@example.com", "server": server}}
        (endpoint,) = [e for e in endpoints_of(plan_stack, "local", wallets({**PUBLIC, "publicTls": acme}), {})
                       if e.instance == "wallets"]  # fmt: skip
        return endpoint

    staging, trusted = endpoint_for("letsencrypt-staging"), endpoint_for("letsencrypt")
    assert "untrusted test root" in staging.ca and staging.ca_file == ""
    assert "-insecure" in shlex.split(staging.commands["grpc"])
    assert trusted.ca.startswith("none to add") and "-insecure" not in shlex.split(trusted.commands["grpc"])
    assert "-cacert" not in shlex.split(trusted.commands["grpc"])


def test_a_private_gateway_is_port_forwarded_from_a_port_a_user_may_bind(plan_stack: PlanStack) -> None:
    """`kubectl port-forward 443:443` fails without root: the gateway's 443 comes to localhost:8443, and the
    commands dial it there while checking the in-cluster name."""
    merge = {"zbi:instances": {"testnet": {"endpoints": {"publicGrpc": False, "hostnames": []}}}}
    (testnet,) = endpoints_of(plan_stack, "dev", merge, {"testnet": True})
    assert testnet.front == "gateway" and testnet.address == "localhost:8443"
    assert testnet.commands["port-forward"].startswith("kubectl -n zbi-testnet port-forward svc/gateway 8443:443")
    curl = shlex.split(testnet.commands["json-rpc"])
    assert curl[curl.index("--connect-to") + 1] == "gateway.zbi-testnet.svc:8443:localhost:8443"
    grpc = shlex.split(testnet.commands["grpc"])
    assert grpc[grpc.index("-servername") + 1] == "gateway.zbi-testnet.svc" and "localhost:8443" in grpc


@pytest.mark.parametrize(("tls", "expected"), [
    (None, "the instance's own CA"),
    ({"provider": "acm"}, "ACM, at an NLB of the AWS Load Balancer Controller"),
    (ACME, "Let's Encrypt via cert-manager (HTTP-01 through IngressClass nginx)"),
    ({"provider": "acme", "acme": {"email": "ops@example.com", "server": "letsencrypt-staging"}}, "untrusted"),
])  # fmt: skip
def test_the_plan_summary_says_who_signs_the_front_doors_certificate(plan_stack, project, tls, expected) -> None:
    from tests.test_plan_summary import config_of
    from zbi_infra.plan.summary import summary

    merge = {
        "zbi:dns": ZONE,
        "zbi:instances": {"testnet": {"endpoints": {"publicTls": tls}, "node": {"inboundP2p": True}}},
    }
    plan, config = config_of(plan_stack, project, "dev", merge)
    lines = summary(plan, config, monthly_usd=None).splitlines()
    front = lines.index(next(line for line in lines if "(Service gateway;" in line))
    assert lines[front + 1].startswith("      certificate: ") and expected in lines[front + 1]
    # The P2P load balancer is plain TCP: no certificate line under it.
    p2p = lines.index(next(line for line in lines if "(Service zebrad-p2p;" in line))
    assert not lines[p2p + 1].strip().startswith("certificate:")
