"""Each instance has a CA of its own: the plan issues real keys and certificates (pulumi-tls's rules, modelled in
tests/tls_provider_model.py), and `cryptography`'s RFC 5280 verifier judges them: a server certificate verifies under
its own instance's CA for each of its names, never under another instance's, and lifetimes are the documented ones,
through years of renewals."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from tests.conftest import PlanStack
from tests.k8s_objects import one
from tests.tls_provider_model import TlsProviderModel
from zbi_infra.plan import mocks
from zbi_infra.plan.engine import Plan
from zbi_infra.tls import CA_EARLY_RENEWAL_HOURS, CA_VALIDITY_HOURS, SERVER_EARLY_RENEWAL_HOURS, SERVER_VALIDITY_HOURS

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
INSTANCES = ("testnet", "other")
SECOND = {"zbi:instances": {"other": {"network": "testnet", "endpoints": {"hostnames": ["other.lwd.zbi.example"]}}}}


# The TLS Secrets as registered (the plan masks their secret values): resource name -> stringData.
SECRETS: dict[str, dict[str, str]] = {}


@pytest.fixture(scope="module")
def issued(plan_stack: PlanStack) -> tuple[Plan, TlsProviderModel]:
    model = TlsProviderModel(NOW)
    original = mocks.PlanMocks.new_resource

    def new_resource(self: mocks.PlanMocks, args: Any) -> tuple[str | None, dict[str, Any]]:
        resource_id, outputs = original(self, args)
        if args.typ == "kubernetes:core/v1:Secret" and args.name.endswith("-grpc-tls-secret"):
            SECRETS[args.name] = dict(args.inputs["stringData"])
        real = model.outputs(args.typ, args.name, dict(args.inputs))
        return resource_id, {**outputs, **(real or {})}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mocks.PlanMocks, "new_resource", new_resource)
        plan = plan_stack("dev", merge=SECOND)
    return plan, model


def ca_of(model: TlsProviderModel, instance: str) -> x509.Certificate:
    return model.certificates[f"{instance}-tls-ca-cert"]


def leaf_of(model: TlsProviderModel, instance: str) -> x509.Certificate:
    return model.certificates[f"{instance}-grpc-tls-cert"]


def names(cert: x509.Certificate) -> list[str]:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def verify(leaf: x509.Certificate, anchors: list[x509.Certificate], name: str, at: datetime.datetime) -> None:
    verifier = PolicyBuilder().store(Store(anchors)).time(at).build_server_verifier(x509.DNSName(name))
    verifier.verify(leaf, [])


def test_each_instance_has_a_ca_of_its_own(issued: tuple[Plan, TlsProviderModel]) -> None:
    _, model = issued
    cas = [ca_of(model, instance) for instance in INSTANCES]
    keys = {ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            for ca in cas}  # fmt: skip
    assert len(keys) == len(INSTANCES)
    assert not any(name.endswith("-ca-cert") and not name.endswith("-tls-ca-cert") for name in model.certificates)


def test_a_server_certificate_verifies_under_its_own_instances_ca_only(issued: tuple[Plan, TlsProviderModel]) -> None:
    _, model = issued
    at = NOW + datetime.timedelta(hours=1)
    for instance in INSTANCES:
        leaf = leaf_of(model, instance)
        assert names(leaf)
        for name in names(leaf):
            verify(leaf, [ca_of(model, instance)], name, at)
            for other in INSTANCES:
                if other != instance:
                    with pytest.raises(VerificationError):
                        verify(leaf, [ca_of(model, other)], name, at)
        # Its own CA does not make it valid for another instance's names either.
        other_names = {n for other in INSTANCES if other != instance for n in names(leaf_of(model, other))}
        for name in other_names - set(names(leaf)):
            with pytest.raises(VerificationError):
                verify(leaf, [ca_of(model, instance)], name, at)


def test_the_secret_ships_the_instances_own_ca(issued: tuple[Plan, TlsProviderModel]) -> None:
    plan, model = issued
    for instance in INSTANCES:
        assert one(plan, "Secret", "grpc-tls", f"zbi-{instance}")["type"] == "kubernetes.io/tls"
        data = SECRETS[f"{instance}-grpc-tls-secret"]
        shipped = x509.load_pem_x509_certificate(data["ca.crt"].encode())
        assert shipped == ca_of(model, instance)
        assert x509.load_pem_x509_certificate(data["tls.crt"].encode()) == leaf_of(model, instance)


def test_lifetimes_are_the_documented_ones(issued: tuple[Plan, TlsProviderModel]) -> None:
    _, model = issued
    for instance in INSTANCES:
        ca, leaf = ca_of(model, instance), leaf_of(model, instance)
        assert ca.not_valid_after_utc - ca.not_valid_before_utc == datetime.timedelta(days=2 * 365)
        assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == datetime.timedelta(days=90)
        # Valid until its last second, not after.
        name = names(leaf)[0]
        verify(leaf, [ca], name, leaf.not_valid_after_utc)
        with pytest.raises(VerificationError):
            verify(leaf, [ca], name, leaf.not_valid_after_utc + datetime.timedelta(seconds=1))


def test_years_of_renewals_never_break_a_client_that_refreshes_its_ca_yearly(
    issued: tuple[Plan, TlsProviderModel],
) -> None:
    """A daily `pulumi up` over six years, by the provider's renewal rule (re-issue once `now` is within
    `early_renewal_hours` of the end; a new CA certificate re-issues the server certificate, whose `ca_cert_pem`
    forces replacement). A client fetches the CA certificate once a year; every day, the served certificate must
    verify under the one it holds."""
    plan, _ = issued
    ca_inputs = dict(plan.named("testnet-tls-ca-cert").inputs)
    leaf_inputs = dict(plan.named("testnet-grpc-tls-cert").inputs)
    assert (ca_inputs["validityPeriodHours"], ca_inputs["earlyRenewalHours"]) == (
        CA_VALIDITY_HOURS,
        CA_EARLY_RENEWAL_HOURS,
    )
    assert (leaf_inputs["validityPeriodHours"], leaf_inputs["earlyRenewalHours"]) == (
        SERVER_VALIDITY_HOURS, SERVER_EARLY_RENEWAL_HOURS)  # fmt: skip
    model = TlsProviderModel(NOW)
    key = model.outputs("tls:index/privateKey:PrivateKey", "ca-key", {"ecdsaCurve": "P384"})
    leaf_key = model.outputs("tls:index/privateKey:PrivateKey", "leaf-key", {"ecdsaCurve": "P256"})
    assert key and leaf_key
    request = model.outputs(
        "tls:index/certRequest:CertRequest",
        "csr",
        {"privateKeyPem": leaf_key["privateKeyPem"], "dnsNames": ["lwd.example"], "subject": {"commonName": "x"}},
    )
    assert request

    def issue_ca(now: datetime.datetime) -> dict[str, Any]:
        model.now = now
        return model.outputs("tls:index/selfSignedCert:SelfSignedCert", "ca", {**ca_inputs, **key})  # type: ignore[return-value]

    def issue_leaf(now: datetime.datetime, ca: dict[str, Any]) -> x509.Certificate:
        model.now = now
        inputs = {**leaf_inputs, **request, "caCertPem": ca["certPem"], "caPrivateKeyPem": key["privateKeyPem"]}
        return x509.load_pem_x509_certificate(
            model.outputs("tls:index/locallySignedCert:LocallySignedCert", "l", inputs)["certPem"].encode()
        )  # type: ignore[index]

    def due(cert: x509.Certificate, now: datetime.datetime, early_hours: int) -> bool:
        return now >= cert.not_valid_after_utc - datetime.timedelta(hours=early_hours)

    ca = issue_ca(NOW)
    leaf = issue_leaf(NOW, ca)
    held = x509.load_pem_x509_certificate(ca["certPem"].encode())
    for day in range(6 * 365):
        now = NOW + datetime.timedelta(days=day)
        current = x509.load_pem_x509_certificate(ca["certPem"].encode())
        if due(current, now, CA_EARLY_RENEWAL_HOURS):
            ca = issue_ca(now)
            leaf = issue_leaf(now, ca)
        elif due(leaf, now, SERVER_EARLY_RENEWAL_HOURS):
            leaf = issue_leaf(now, ca)
        if day % 365 == 364:
            held = x509.load_pem_x509_certificate(ca["certPem"].encode())
        verify(leaf, [held], "lwd.example", now)
