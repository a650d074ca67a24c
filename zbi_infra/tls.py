"""TLS with pulumi-tls: one CA per instance, and the instance's server certificate.

Each instance has a CA of its own, so the trust anchor a tenant's clients hold has signed nothing but that instance's
certificate: a certificate of another instance does not verify under it (tests/test_instance_cas.py). pulumi-tls
cannot write the X.509 name-constraints extension, which is what would have made one shared root safe to trust for
one tenant's names only (docs/security.md, "TLS"). CA keys live only in Pulumi state (encrypted as secrets). Clients
get their instance's CA certificate (the `caCertPems` stack output); public deployments that want a browser-trusted
chain use ACM or ACME at the front door instead (README, "TLS").
"""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_tls as tls

# An instance CA's certificate: two years, re-issued with the same key by the first `pulumi up` in its last year. The
# re-issued certificate has the same subject and key, so clients still holding the previous one verify the new server
# certificates: they have a year to fetch it. Replacing the key is a rotation (docs/security.md, "TLS").
CA_VALIDITY_HOURS = 2 * 365 * 24
CA_EARLY_RENEWAL_HOURS = 365 * 24
# Server keys sit in the instance's namespace: a key that leaks stays usable for at most 90 days.
SERVER_VALIDITY_HOURS = 90 * 24
# Renewed by the first `pulumi up` once less than this remains: the control plane's resync, a deploy, or the drift
# workflow's reconcile (a certificate due for renewal shows as drift) has 30 days to run.
SERVER_EARLY_RENEWAL_HOURS = 30 * 24
# On the pod templates of the workloads that serve the certificate: lightwalletd, Zaino and nginx read it only at
# start, and a renewed certificate changes only its Secret, so its checksum in the template rolls them.
CERTIFICATE_CHECKSUM_ANNOTATION = "zbi.io/tls-checksum"


def certificate_checksum(cert_pem: str) -> str:
    return hashlib.sha256(cert_pem.encode()).hexdigest()[:16]


class ZbiCertificateAuthority(pulumi.ComponentResource):
    ca_cert_pem: pulumi.Output[str]
    ca_private_key_pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        organization: str = "zBI",
        common_name: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("zbi:tls:ZbiCertificateAuthority", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P384", opts=child)
        cert = tls.SelfSignedCert(
            f"{name}-cert",
            private_key_pem=key.private_key_pem,
            is_ca_certificate=True,
            validity_period_hours=CA_VALIDITY_HOURS,
            early_renewal_hours=CA_EARLY_RENEWAL_HOURS,
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=common_name or f"{organization} {name} CA", organization=organization
            ),
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        self.ca_cert_pem = cert.cert_pem
        self.ca_private_key_pem = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"caCertPem": self.ca_cert_pem})


class ServerCertificate(pulumi.ComponentResource):
    """A server certificate signed by its instance's CA, for the given DNS names."""

    cert_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        ca: ZbiCertificateAuthority,
        dns_names: list[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("zbi:tls:ServerCertificate", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=key.private_key_pem,
            dns_names=dns_names,
            subject=tls.CertRequestSubjectArgs(common_name=dns_names[0], organization="zBI"),
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca.ca_private_key_pem,
            ca_cert_pem=ca.ca_cert_pem,
            validity_period_hours=SERVER_VALIDITY_HOURS,
            early_renewal_hours=SERVER_EARLY_RENEWAL_HOURS,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            opts=child,
        )
        self.cert_pem = cert.cert_pem
        self.checksum = cert.cert_pem.apply(certificate_checksum)
        self.private_key_pem = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"certPem": self.cert_pem})
