"""ZbiVpc as the dev stack builds it, under Pulumi's mocks."""

from __future__ import annotations

import ipaddress
import itertools

from tests.conftest import PlanStack

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"


def test_public_and_private_subnet_in_five_distinct_zones(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    subnets = plan.of_type(SUBNET)
    public = [s for s in subnets if s.inputs["tags"]["zbi.io/tier"] == "public"]
    private = [s for s in subnets if s.inputs["tags"]["zbi.io/tier"] == "private"]
    assert len(public) == len(private) == 5
    assert {s.inputs["availabilityZoneId"] for s in public} == {s.inputs["availabilityZoneId"] for s in private}
    assert len({s.inputs["availabilityZoneId"] for s in public}) == 5
    assert "use1-az3" not in {s.inputs["availabilityZoneId"] for s in subnets}


def test_cidrs_are_inside_the_vpc_and_disjoint(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    vpc = ipaddress.ip_network(plan.of_type(VPC)[0].inputs["cidrBlock"])
    networks = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in plan.of_type(SUBNET)]
    assert all(n.subnet_of(vpc) for n in networks)
    assert not any(a.overlaps(b) for a, b in itertools.combinations(networks, 2))


def test_per_az_nat_keeps_egress_in_the_zone(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    nats = plan.of_type(NAT)
    assert len(nats) == 5
    subnet_zone = {s.id: s.inputs["availabilityZoneId"] for s in plan.of_type(SUBNET)}
    nat_zone = {n.id: subnet_zone[n.inputs["subnetId"]] for n in nats}
    assert len(set(nat_zone.values())) == 5
    # each NAT sits in a public subnet
    public_ids = {s.id for s in plan.of_type(SUBNET) if s.inputs["tags"]["zbi.io/tier"] == "public"}
    assert all(n.inputs["subnetId"] in public_ids for n in nats)
    # each private route table sends 0.0.0.0/0 to the NAT of its own zone
    table_zone = _route_table_zones(plan)
    for table in plan.of_type(ROUTE_TABLE):
        (route,) = table.inputs["routes"]
        assert route["cidrBlock"] == "0.0.0.0/0"
        if "natGatewayId" in route:
            assert nat_zone[route["natGatewayId"]] == table_zone[table.id]
        else:
            assert route["gatewayId"] == plan.of_type("aws:ec2/internetGateway:InternetGateway")[0].id


def test_single_nat_serves_every_zone(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev", merge={"zbi:platform": {"natStrategy": "single"}})
    (nat,) = plan.of_type(NAT)
    private_tables = [t for t in plan.of_type(ROUTE_TABLE) if "natGatewayId" in t.inputs["routes"][0]]
    assert len(private_tables) == 5
    assert {t.inputs["routes"][0]["natGatewayId"] for t in private_tables} == {nat.id}


def test_every_subnet_is_associated_with_a_table_of_its_tier(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    tier_of_subnet = {s.id: s.inputs["tags"]["zbi.io/tier"] for s in plan.of_type(SUBNET)}
    tables = {t.id: t for t in plan.of_type(ROUTE_TABLE)}
    associations = plan.of_type(ASSOCIATION)
    assert sorted(a.inputs["subnetId"] for a in associations) == sorted(tier_of_subnet)
    for association in associations:
        route = tables[association.inputs["routeTableId"]].inputs["routes"][0]
        expected = "gatewayId" if tier_of_subnet[association.inputs["subnetId"]] == "public" else "natGatewayId"
        assert expected in route


def test_eks_load_balancer_discovery_tags(plan_stack: PlanStack) -> None:
    for subnet in plan_stack("dev").of_type(SUBNET):
        tags = subnet.inputs["tags"]
        assert tags["kubernetes.io/cluster/zbi-dev"] == "shared"
        role = "kubernetes.io/role/elb" if tags["zbi.io/tier"] == "public" else "kubernetes.io/role/internal-elb"
        assert tags[role] == "1"


def test_flow_logs_and_s3_endpoint(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    (flow_log,) = plan.of_type("aws:ec2/flowLog:FlowLog")
    assert flow_log.inputs["trafficType"] == "ALL"
    (endpoint,) = plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoint.inputs["serviceName"] == "com.amazonaws.us-east-1.s3"
    private_table_ids = {t.id for t in plan.of_type(ROUTE_TABLE) if "natGatewayId" in t.inputs["routes"][0]}
    assert set(endpoint.inputs["routeTableIds"]) == private_table_ids


def test_children_are_parented_and_named_from_the_component(plan_stack: PlanStack) -> None:
    plan = plan_stack("dev")
    (component,) = plan.of_type("zbi:network:ZbiVpc")
    children = [r for r in plan.resources if r.parent == component.urn]
    assert len(children) > 40
    assert all(r.name.startswith(component.name + "-") for r in children)
    assert all(r.type.startswith("aws:") for r in children)


def test_zone_ids_key_the_resources(plan_stack: PlanStack) -> None:
    names = {r.name for r in plan_stack("dev").of_type(SUBNET)}
    assert "zbi-dev-net-private-use1-az4" in names
    assert not any(n.endswith(("-0", "-1", "-2")) for n in names)


def _route_table_zones(plan) -> dict[str, str]:
    subnet_zone = {s.id: s.inputs["availabilityZoneId"] for s in plan.of_type(SUBNET)}
    return {a.inputs["routeTableId"]: subnet_zone[a.inputs["subnetId"]] for a in plan.of_type(ASSOCIATION)}
