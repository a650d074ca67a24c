"""TLS with pulumi-tls: a platform CA and per-instance server certificates.

The CA key lives only in Pulumi state (encrypted as a secret). Clients that should trust zBI endpoints get the CA
certificate (`ca_cert_pem`); public deployments that want a browser-trusted chain use ACM at the NLB instead
(see README, "TLS").
"""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_tls as tls

# The root never leaves Pulumi state; replacing it means every client re-trusts a new root (docs/security.md, "TLS").
CA_VALIDITY_HOURS = 10 * 365 * 24
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

    def __init__(self, name: str, *, organization: str = "zBI", opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:tls:ZbiCertificateAuthority", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P384", opts=child)
        cert = tls.SelfSignedCert(
            f"{name}-cert",
            private_key_pem=key.private_key_pem,
            is_ca_certificate=True,
            validity_period_hours=CA_VALIDITY_HOURS,
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"{organization} {name} CA", organization=organization),
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        self.ca_cert_pem = cert.cert_pem
        self.ca_private_key_pem = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({"caCertPem": self.ca_cert_pem})


class ServerCertificate(pulumi.ComponentResource):
    """A server certificate signed by the platform CA, for the given DNS names."""

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
