"""ZbiVpc: a VPC across N availability zones with per-zone public and private subnets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from zbi_infra.config.platform import FlowLogsConfig, NatStrategy
from zbi_infra.iam import service_trust_policy
from zbi_infra.network_plan import plan_subnets
from zbi_infra.zones import AvailabilityZone


@dataclass(frozen=True)
class ZbiVpcArgs:
    region: str
    zones: list[AvailabilityZone]
    cidr: str = "10.20.0.0/16"
    nat_strategy: NatStrategy = NatStrategy.PER_AZ
    flow_logs: FlowLogsConfig = field(default_factory=FlowLogsConfig)
    # Subnets are tagged for this cluster so the AWS load balancer controller and in-tree service controller
    # find them (EKS "subnet requirements": kubernetes.io/role/elb, kubernetes.io/role/internal-elb).
    cluster_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


class ZbiVpc(pulumi.ComponentResource):
    """Every child is parented here and named `<name>-<purpose>[-<zone id>]`."""

    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids_by_zone: dict[str, pulumi.Output[str]]
    availability_zones: list[str]
    zone_ids: list[str]

    def __init__(self, name: str, args: ZbiVpcArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:network:ZbiVpc", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        plan = plan_subnets(args.cidr, args.zones)
        tags = {**args.tags, "zbi.io/component": name}

        def tagged(suffix: str, **extra: str) -> dict[str, str]:
            return {**tags, "Name": f"{name}-{suffix}", **extra}

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tagged("vpc"),
            opts=child,
        )
        # A VPC's default security group allows all traffic between its members; nothing of ours uses it, so it is
        # emptied rather than left open (CIS AWS 5.4).
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, tags=tagged("default-sg"), opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tagged("igw"), opts=child)

        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"} if args.cluster_name else {}
        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        nat_gateways: dict[str, aws.ec2.NatGateway] = {}
        private_route_tables: list[aws.ec2.RouteTable] = []

        for zone_plan in plan:
            zone = zone_plan.zone
            public = aws.ec2.Subnet(
                f"{name}-public-{zone.key}",
                vpc_id=vpc.id,
                cidr_block=zone_plan.public_cidr,
                availability_zone_id=zone.zone_id,
                map_public_ip_on_launch=False,
                tags=tagged(
                    f"public-{zone.key}", **cluster_tag, **{"kubernetes.io/role/elb": "1", "zbi.io/tier": "public"}
                ),
                opts=child,
            )
            private = aws.ec2.Subnet(
                f"{name}-private-{zone.key}",
                vpc_id=vpc.id,
                cidr_block=zone_plan.private_cidr,
                availability_zone_id=zone.zone_id,
                tags=tagged(
                    f"private-{zone.key}",
                    **cluster_tag,
                    **{"kubernetes.io/role/internal-elb": "1", "zbi.io/tier": "private"},
                ),
                opts=child,
            )
            public_subnets.append(public)
            private_subnets.append(private)

            public_rt = aws.ec2.RouteTable(
                f"{name}-public-rt-{zone.key}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
                tags=tagged(f"public-rt-{zone.key}"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-rta-{zone.key}", subnet_id=public.id, route_table_id=public_rt.id, opts=child
            )

            first_zone = zone_plan is plan[0]
            if args.nat_strategy is NatStrategy.PER_AZ or first_zone:
                eip = aws.ec2.Eip(
                    f"{name}-nat-eip-{zone.key}", domain="vpc", tags=tagged(f"nat-eip-{zone.key}"), opts=child
                )
                nat_gateways[zone.key] = aws.ec2.NatGateway(
                    f"{name}-nat-{zone.key}",
                    allocation_id=eip.id,
                    subnet_id=public.id,
                    tags=tagged(f"nat-{zone.key}"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            # With a single NAT, every zone routes through the first zone's gateway: cheaper, but an outage of that
            # zone cuts egress everywhere. per-az keeps each zone's egress inside the zone.
            nat = nat_gateways.get(zone.key) or nat_gateways[plan[0].zone.key]
            private_rt = aws.ec2.RouteTable(
                f"{name}-private-rt-{zone.key}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                tags=tagged(f"private-rt-{zone.key}"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-rta-{zone.key}", subnet_id=private.id, route_table_id=private_rt.id, opts=child
            )
            private_route_tables.append(private_rt)

        # Image pulls from ECR and snapshot traffic go to S3; a gateway endpoint keeps it off the NAT bill.
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_route_tables],
            tags=tagged("s3"),
            opts=child,
        )

        if args.flow_logs.enabled:
            self._flow_logs(name, vpc, args.flow_logs, args.region, tagged)

        self.vpc_id = vpc.id
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.private_subnet_ids_by_zone = {p.zone.zone_id: s.id for p, s in zip(plan, private_subnets, strict=True)}
        self.availability_zones = [p.zone.name for p in plan]
        self.zone_ids = [p.zone.zone_id for p in plan]
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
                "availabilityZones": self.availability_zones,
                "zoneIds": self.zone_ids,
            }
        )

    def _flow_logs(self, name: str, vpc: aws.ec2.Vpc, config: FlowLogsConfig, region: str, tagged) -> None:
        child = pulumi.ResourceOptions(parent=self)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/zbi/vpc/{name}/flow-logs",
            retention_in_days=config.retention_days,
            tags=tagged("flow-logs"),
            opts=child,
        )
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        role = aws.iam.Role(
            f"{name}-flow-logs-role",
            # Only for flow logs of this account in this region (VPC user guide, "IAM role for publishing flow logs
            # to CloudWatch Logs": confused-deputy conditions).
            assume_role_policy=account.apply(
                lambda account_id: service_trust_policy(
                    "vpc-flow-logs.amazonaws.com",
                    source_account=account_id,
                    source_arn=f"arn:aws:ec2:{region}:{account_id}:vpc-flow-log/*",
                )
            ),
            tags=tagged("flow-logs-role"),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-policy",
            role=role.id,
            policy=log_group.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                                "Resource": [arn, f"{arn}:*"],
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            tags=tagged("flow-log"),
            opts=child,
        )
