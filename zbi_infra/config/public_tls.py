"""`zbi:instances.<name>.endpoints.publicTls`: a publicly trusted certificate for a public instance, which mobile
and desktop wallets accept without adding a CA. Without it the stack's private CA signs the instance certificate
(the default, and the only choice for a private instance)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from zbi_infra.config.base import StrictModel

# Let's Encrypt's ACME directories (https://letsencrypt.org/docs/acme-protocol-updates/).
ACME_SERVERS = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}


class PublicTlsProvider(StrEnum):
    ACM = "acm"
    ACME = "acme"


class AcmeConfig(StrictModel):
    """cert-manager's ACME issuer, per instance namespace (an Issuer, not a ClusterIssuer: an instance's
    administrators manage their own account key)."""

    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,63}$", max_length=254)] = Field(
        description="the ACME account's contact: Let's Encrypt writes to it about expiring certificates"
    )
    server: Annotated[str, StringConstraints(pattern=r"^(letsencrypt|letsencrypt-staging)$")] = Field(
        default="letsencrypt",
        description="letsencrypt (trusted) or letsencrypt-staging (untrusted, generous rate limits: try it first)",
    )
    http01_ingress_class: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")] = Field(
        default="nginx",
        description="the IngressClass of the controller that answers HTTP-01 challenges on port 80 of the hostnames",
    )


class PublicTlsConfig(StrictModel):
    provider: PublicTlsProvider = Field(
        description="acm: an ACM certificate validated through zbi:dns's zone, TLS at the NLB (AWS stacks); "
        "acme: cert-manager and Let's Encrypt, TLS at the pods (any cluster with cert-manager)"
    )
    acme: AcmeConfig | None = Field(default=None, description="the ACME account and challenge (provider acme)")

    @model_validator(mode="after")
    def _provider_has_its_settings(self) -> PublicTlsConfig:
        if self.provider is PublicTlsProvider.ACME and self.acme is None:
            raise ValueError("provider acme needs acme.email. Fix: add acme: {email: you@example.com}")
        if self.provider is PublicTlsProvider.ACM and self.acme is not None:
            raise ValueError("acme settings apply to provider acme only. Fix: remove acme, or set provider: acme")
        return self


def check_endpoints(endpoints: Any) -> None:
    """The instance-level rules: a public certificate needs a public endpoint and names to certify."""
    tls = endpoints.public_tls
    if tls is None:
        return
    if not endpoints.public_grpc:
        raise ValueError("publicTls is for a public endpoint. Fix: set publicGrpc: true, or remove publicTls")
    if not endpoints.hostnames:
        raise ValueError("publicTls: it certifies hostnames, and none is listed. Fix: add hostnames: [lwd.example.com]")
    wildcards = [h for h in endpoints.hostnames if h.startswith("*.")]
    if tls.provider is PublicTlsProvider.ACME and wildcards:
        raise ValueError(
            f"publicTls: {', '.join(wildcards)}: Let's Encrypt issues wildcards only through DNS-01, and zBI's ACME "
            "issuer answers HTTP-01. Fix: list the exact hostnames"
        )


def check_stack(config: Any) -> None:
    """The stack-level rules: ACM validates through the stack's Route 53 zone, on an AWS stack."""
    for name, instance in config.instances.items():
        tls = instance.endpoints.public_tls
        if tls is None or tls.provider is not PublicTlsProvider.ACM:
            continue
        if config.role.value == "local":
            raise ValueError(
                f"zbi:instances.{name}.endpoints.publicTls.provider: acm needs AWS, and this stack is local. "
                "Fix: use provider acme (cert-manager)"
            )
        if config.dns is None:
            raise ValueError(
                f"zbi:instances.{name}.endpoints.publicTls.provider: acm validates the certificate through a Route 53 "
                "zone, and zbi:dns is not set. Fix: set zbi:dns.hostedZoneId to the zone holding the hostnames"
            )


def certificate_summary(tls: PublicTlsConfig | None) -> str:
    """Who signs a public front door's certificate, in a few words (`zbi plan`'s summary)."""
    if tls is None:
        return "the instance's own CA (clients add it: `zbi endpoints`)"
    if tls.provider is PublicTlsProvider.ACM:
        return "ACM, at an NLB of the AWS Load Balancer Controller (ALPN h2)"
    assert tls.acme is not None
    if tls.acme.server == "letsencrypt-staging":
        return "Let's Encrypt staging via cert-manager (untrusted: for trials)"
    return f"Let's Encrypt via cert-manager (HTTP-01 through IngressClass {tls.acme.http01_ingress_class})"
