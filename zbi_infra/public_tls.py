"""Publicly trusted certificates for public instances (`endpoints.publicTls`), which wallets accept as they are.

- **acm** (AWS stacks): an ACM certificate for the instance's hostnames, validated by DNS records in the stack's
  Route 53 zone (`zbi:dns.hostedZoneId`), and terminated at an NLB of the AWS Load Balancer Controller
  (zbi_infra/load_balancer_controller.py): a TLS listener on 443 that offers ALPN h2. The NLB opens TLS again to
  the pods, which keep the instance CA's certificate (the NLB does not verify targets). ACM renews a DNS-validated
  certificate by itself while the validation records exist, and the NLB serves the renewed one: nothing rolls.
- **acme** (any cluster with cert-manager): an Issuer in the instance's namespace with Let's Encrypt's ACME
  directory, answering HTTP-01 through an ingress controller, and a Certificate whose Secret the instance's front
  door (the gateway, else the light-wallet server) serves. cert-manager renews it a third of its lifetime before
  expiry (Let's Encrypt: 90 days, so at 60).
Without `publicTls` nothing here is created: the instance's own CA signs the certificate (private instances).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from zbi_infra.config.instance import InstanceConfig
from zbi_infra.config.public_tls import ACME_SERVERS, PublicTlsProvider
from zbi_infra.config.recovery import DnsConfig
from zbi_infra.policies import ACM_CERTIFICATE_ANNOTATION

# The Secret cert-manager writes the instance's public certificate into (tls.crt, tls.key).
PUBLIC_TLS_SECRET = "public-tls"
CERT_MANAGER_API = "cert-manager.io/v1"


def acm_certificate(
    name: str, hostnames: list[str], dns: DnsConfig, *, opts: pulumi.ResourceOptions
) -> pulumi.Output[str]:
    """The ARN of an ACM certificate for `hostnames`, once ACM has validated it through `dns`'s zone."""
    certificate = aws.acm.Certificate(
        f"{name}-public-tls",
        domain_name=hostnames[0],
        subject_alternative_names=hostnames[1:] or None,
        validation_method="DNS",
        key_algorithm="EC_prime256v1",
        tags={"Name": f"zbi {name} public TLS"},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=False)),
    )
    records = []
    for hostname in hostnames:
        option = certificate.domain_validation_options.apply(_option_for(hostname))
        records.append(
            aws.route53.Record(
                f"{name}-public-tls-{hostname}",
                zone_id=dns.hosted_zone_id,
                name=option.apply(lambda o: o.resource_record_name),
                type=option.apply(lambda o: o.resource_record_type),
                records=[option.apply(lambda o: o.resource_record_value)],
                ttl=dns.record_ttl,
                # The record must outlive renewals: ACM renews only while it resolves.
                allow_overwrite=True,
                opts=opts,
            )
        )
    validation = aws.acm.CertificateValidation(
        f"{name}-public-tls",
        certificate_arn=certificate.arn,
        validation_record_fqdns=[record.fqdn for record in records],
        opts=opts,
    )
    return validation.certificate_arn


def _option_for(hostname: str) -> Any:
    def pick(options: list[Any]) -> Any:
        return next(o for o in options if o.domain_name == hostname)

    return pick


# The Service annotations of an ACM front door, each documented for the AWS Load Balancer Controller v3.5.0
# (docs/guide/service/annotations.md, vendored; tests/test_load_balancer_controller.py checks names and values).
CONTROLLER_ANNOTATIONS = {
    # The controller's, not the cloud provider's: the cloud provider ignores a Service of type external.
    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
    # instance targets with externalTrafficPolicy Local, as the cloud provider's NLB had: client addresses reach
    # the pods (the allowlist NetworkPolicy and per-address rate limits rely on them) and the NLB health-checks
    # each node's kube-proxy (spec.healthCheckNodePort), which answers only where a ready pod runs.
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "instance",
    # The controller's default is internal.
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
    "service.beta.kubernetes.io/aws-load-balancer-attributes": "load_balancing.cross_zone.enabled=true",
    "service.beta.kubernetes.io/aws-load-balancer-ssl-ports": "443",
    # TLS onwards to the pods, which keep serving the instance CA's certificate (the NLB does not verify it).
    "service.beta.kubernetes.io/aws-load-balancer-backend-protocol": "ssl",
    "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
    # gRPC clients that insist on ALPN h2 (grpc-go since 1.67): the listener offers h2 first.
    "service.beta.kubernetes.io/aws-load-balancer-alpn-policy": "HTTP2Preferred",
}


def uses_acm(instance: InstanceConfig) -> bool:
    tls = instance.endpoints.public_tls
    return tls is not None and tls.provider is PublicTlsProvider.ACM


def front_door_annotations(
    name: str,
    instance: InstanceConfig,
    base: Mapping[str, str],
    dns: DnsConfig | None,
    *,
    opts: pulumi.ResourceOptions,
) -> dict[str, Any]:
    """The annotations of the instance's public front door: `base` (the cloud provider's NLB), or with ACM an NLB
    of the AWS Load Balancer Controller with a TLS listener on 443 holding the ACM certificate. A P2P load balancer
    of the same instance keeps `base`: plain TCP, from the cloud provider."""
    if not uses_acm(instance):
        return dict(base)
    assert dns is not None  # config.public_tls.check_stack
    arn = acm_certificate(name, list(instance.endpoints.hostnames), dns, opts=opts)
    return {**CONTROLLER_ANNOTATIONS, ACM_CERTIFICATE_ANNOTATION: arn}


def acme_certificate(
    name: str,
    instance: InstanceConfig,
    *,
    namespace: str,
    labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> str | None:
    """With `publicTls.provider: acme`, the Issuer and Certificate of the instance; returns the Secret's name
    (None otherwise)."""
    tls = instance.endpoints.public_tls
    if tls is None or tls.provider is not PublicTlsProvider.ACME:
        return None
    assert tls.acme is not None
    issuer = k8s.apiextensions.CustomResource(
        f"{name}-acme-issuer",
        api_version=CERT_MANAGER_API,
        kind="Issuer",
        metadata=k8s.meta.v1.ObjectMetaArgs(name="acme", namespace=namespace, labels=dict(labels)),
        spec=issuer_spec(tls.acme.email, ACME_SERVERS[tls.acme.server], tls.acme.http01_ingress_class),
        opts=opts,
    )
    k8s.apiextensions.CustomResource(
        f"{name}-public-certificate",
        api_version=CERT_MANAGER_API,
        kind="Certificate",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=PUBLIC_TLS_SECRET, namespace=namespace, labels=dict(labels)),
        spec=certificate_spec(list(instance.endpoints.hostnames)),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[issuer])),
    )
    return PUBLIC_TLS_SECRET


def issuer_spec(email: str, server: str, ingress_class: str) -> dict[str, Any]:
    return {
        "acme": {
            "email": email,
            "server": server,
            # The ACME account's key, generated by cert-manager into this Secret.
            "privateKeySecretRef": {"name": "acme-account-key"},
            "solvers": [{"http01": {"ingress": {"ingressClassName": ingress_class}}}],
        }
    }


def certificate_spec(hostnames: list[str]) -> dict[str, Any]:
    return {
        "secretName": PUBLIC_TLS_SECRET,
        "dnsNames": hostnames,
        "issuerRef": {"name": "acme", "kind": "Issuer", "group": "cert-manager.io"},
        # A new key at every renewal; ECDSA P-256, which every wallet's TLS stack speaks.
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "usages": ["server auth", "digital signature"],
        "secretTemplate": {"labels": {"app.kubernetes.io/part-of": "zbi"}},
    }


def tls_volume(private_secret: str, public_secret: str | None) -> k8s.core.v1.VolumeArgs:
    """The gateway's `tls` volume: the instance CA's Secret (tls.crt, tls.key, and the ca.crt it verifies the
    light-wallet tier with); with a public certificate, its tls.crt and tls.key beside the private ca.crt."""
    if public_secret is None:
        return k8s.core.v1.VolumeArgs(name="tls", secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=private_secret))
    return k8s.core.v1.VolumeArgs(
        name="tls",
        projected=k8s.core.v1.ProjectedVolumeSourceArgs(
            sources=[
                k8s.core.v1.VolumeProjectionArgs(
                    secret=k8s.core.v1.SecretProjectionArgs(
                        name=public_secret,
                        items=[
                            k8s.core.v1.KeyToPathArgs(key="tls.crt", path="tls.crt"),
                            k8s.core.v1.KeyToPathArgs(key="tls.key", path="tls.key"),
                        ],
                    )
                ),
                k8s.core.v1.VolumeProjectionArgs(
                    secret=k8s.core.v1.SecretProjectionArgs(
                        name=private_secret, items=[k8s.core.v1.KeyToPathArgs(key="ca.crt", path="ca.crt")]
                    )
                ),
            ]
        ),
    )
