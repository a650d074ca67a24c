"""Route 53 failover for public instance endpoints: the primary region answers while its health check passes."""

from __future__ import annotations

from enum import StrEnum

import pulumi
import pulumi_aws as aws

from zbi_infra.config.recovery import DnsConfig


class FailoverRole(StrEnum):
    PRIMARY = "PRIMARY"
    SECONDARY = "SECONDARY"


def published_address(address: str) -> str:
    """A load balancer's DNS name, refusing an empty one: a record is never published with a placeholder."""
    if not address:
        raise ValueError(
            "the load balancer has no address yet, so no DNS record is published; run `pulumi up` again once the "
            "Service shows an address (kubectl get svc)"
        )
    return address


def failover_record(
    name: str,
    *,
    dns: DnsConfig,
    hostname: str,
    target: pulumi.Input[str],
    role: FailoverRole,
    port: int = 443,
    opts: pulumi.ResourceOptions | None = None,
) -> aws.route53.Record:
    """A CNAME of `hostname` to `target` (a load balancer's DNS name) in a failover pair.

    The PRIMARY record carries a TCP health check on the endpoint: when it fails, Route 53 answers with the
    SECONDARY record that the DR stack writes once it is activated.
    """
    target = pulumi.Output.from_input(target).apply(published_address)
    health_check_id = None
    if role is FailoverRole.PRIMARY:
        check = aws.route53.HealthCheck(
            f"{name}-health",
            type="TCP",
            fqdn=target,
            port=port,
            request_interval=dns.health_check_interval,
            failure_threshold=3,
            regions=["us-east-1", "us-west-1", "us-west-2", "eu-west-1"],
            tags={"Name": f"zbi {hostname} primary"},
            opts=opts,
        )
        health_check_id = check.id
    return aws.route53.Record(
        f"{name}-{role.value.lower()}",
        zone_id=dns.hosted_zone_id,
        name=hostname,
        type="CNAME",
        ttl=dns.record_ttl,
        records=[target],
        set_identifier=f"{hostname}-{role.value.lower()}",
        failover_routing_policies=[aws.route53.RecordFailoverRoutingPolicyArgs(type=role.value)],
        health_check_id=health_check_id,
        opts=opts,
    )
