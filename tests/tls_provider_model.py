"""pulumi-tls's resources issuing real keys and certificates, for the plan's mocks.

The rules are terraform-provider-tls's (the provider pulumi-tls bridges), read at v4.2.1 (commit 857b38c,
MPL-2.0; tests/fixtures/upstream/terraform-provider-tls/certificate-profile.json): `createCertificate` in
internal/provider/common_cert.go sets NotBefore to now and NotAfter to now plus `validity_period_hours`, a random
128-bit serial, key usages and extended key usages from `allowed_uses`, and a subject key identifier (SHA-1 of the
public key's point) on a CA; both certificate resources set BasicConstraintsValid. Go's `x509.CreateCertificate`
then takes the authority key identifier from the parent's subject key identifier, marks basic constraints and key
usage critical, and signs with SHA-384 under a P-384 key (SHA-256 under P-256). Our own code, with `cryptography`.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CURVES = {"P256": ec.SECP256R1, "P384": ec.SECP384R1}
PROFILE = json.loads(
    (
        Path(__file__).parent / "fixtures" / "upstream" / "terraform-provider-tls" / "certificate-profile.json"
    ).read_text()
)
KEY_USAGES = set(PROFILE["keyUsages"])
EXTENDED_KEY_USAGES = {name: x509.ObjectIdentifier(oid) for name, oid in PROFILE["extendedKeyUsages"].items()}


class TlsProviderModel:
    """Answers tls:index/* registrations; keeps every certificate it issued by resource name."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now
        self.certificates: dict[str, x509.Certificate] = {}

    def outputs(self, typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        if typ == "tls:index/privateKey:PrivateKey":
            key = ec.generate_private_key(CURVES[inputs["ecdsaCurve"]]())
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            ).decode()
            public = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return {"privateKeyPem": pem, "publicKeyPem": public.decode()}
        if typ == "tls:index/certRequest:CertRequest":
            key = _key(inputs["privateKeyPem"])
            request = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(_name(inputs.get("subject") or {}))
                .add_extension(
                    x509.SubjectAlternativeName([x509.DNSName(n) for n in inputs.get("dnsNames", [])]), critical=False
                )
                .sign(key, _hash(key))
            )
            return {"certRequestPem": request.public_bytes(serialization.Encoding.PEM).decode()}
        if typ == "tls:index/selfSignedCert:SelfSignedCert":
            key = _key(inputs["privateKeyPem"])
            subject = _name(inputs.get("subject") or {})
            cert = self._issue(inputs, subject, subject, key.public_key(), key, issuer_key_id=None)
        elif typ == "tls:index/locallySignedCert:LocallySignedCert":
            request = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
            ca = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
            assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca, "the provider refuses"
            ca_key_id = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            cert = self._issue(
                inputs,
                request.subject,
                ca.subject,
                request.public_key(),
                _key(inputs["caPrivateKeyPem"]),
                issuer_key_id=ca_key_id,
                san=san,
            )
        else:
            return None
        self.certificates[name] = cert
        return {"certPem": cert.public_bytes(serialization.Encoding.PEM).decode()}

    def _issue(
        self,
        inputs: dict[str, Any],
        subject: x509.Name,
        issuer: x509.Name,
        public_key: Any,
        signing_key: ec.EllipticCurvePrivateKey,
        *,
        issuer_key_id: bytes | None,
        san: x509.SubjectAlternativeName | None = None,
    ) -> x509.Certificate:
        uses = set(inputs.get("allowedUses", []))
        is_ca = bool(inputs.get("isCaCertificate"))
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number() >> 31)  # 128 bits, as the provider draws
            .not_valid_before(self.now)
            .not_valid_after(self.now + datetime.timedelta(hours=int(inputs["validityPeriodHours"])))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        )
        if uses & KEY_USAGES:
            builder = builder.add_extension(_key_usage(uses), critical=True)
        if uses & set(EXTENDED_KEY_USAGES):
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([EXTENDED_KEY_USAGES[u] for u in sorted(uses & set(EXTENDED_KEY_USAGES))]),
                critical=False,
            )
        if is_ca:
            builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        if issuer_key_id is not None:
            builder = builder.add_extension(x509.AuthorityKeyIdentifier(issuer_key_id, None, None), critical=False)
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signing_key, _hash(signing_key))


def _key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _hash(key: ec.EllipticCurvePrivateKey) -> hashes.HashAlgorithm:
    return hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()


def _name(subject: dict[str, Any]) -> x509.Name:
    attributes = []
    if subject.get("organization"):
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    if subject.get("commonName"):
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"]))
    return x509.Name(attributes)


def _key_usage(uses: set[str]) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature="digital_signature" in uses,
        content_commitment="content_commitment" in uses,
        key_encipherment="key_encipherment" in uses,
        data_encipherment="data_encipherment" in uses,
        key_agreement="key_agreement" in uses,
        key_cert_sign="cert_signing" in uses,
        crl_sign="crl_signing" in uses,
        encipher_only="encipher_only" in uses,
        decipher_only="decipher_only" in uses,
    )
