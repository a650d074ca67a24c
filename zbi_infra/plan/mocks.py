"""Realistic stand-ins for what AWS, EKS and Kubernetes would answer, so a stack program runs offline.

Values are derived from resource names (never random) so a plan is identical run to run.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pulumi

from zbi_infra.regions import COMMERCIAL_REGIONS, zone_ids
from zbi_infra.snapshots import POLICY_TAG, claim_volume_tags, volume_tags

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"

# Zone name -> zone ID as one real account sees them; the mapping differs per account, which is why zBI keys
# everything by zone ID. us-east-1e (use1-az3) is the zone where EKS cannot place a control plane. Other regions
# get their published zone IDs (zbi_infra/regions.py) under names shuffled the same way, deterministically.
_NAMED_ZONES: dict[str, list[tuple[str, str]]] = {
    "us-east-1": [
        ("us-east-1a", "use1-az4"),
        ("us-east-1b", "use1-az6"),
        ("us-east-1c", "use1-az1"),
        ("us-east-1d", "use1-az2"),
        ("us-east-1e", "use1-az3"),
        ("us-east-1f", "use1-az5"),
    ],
    "us-west-2": [
        ("us-west-2a", "usw2-az2"),
        ("us-west-2b", "usw2-az1"),
        ("us-west-2c", "usw2-az3"),
        ("us-west-2d", "usw2-az4"),
    ],
    "eu-central-1": [
        ("eu-central-1a", "euc1-az2"),
        ("eu-central-1b", "euc1-az3"),
        ("eu-central-1c", "euc1-az1"),
    ],
}


def zones_of(region: str) -> list[tuple[str, str]]:
    """(name, zone ID) pairs as an account in `region` would see them."""
    if region in _NAMED_ZONES:
        return _NAMED_ZONES[region]
    if region not in COMMERCIAL_REGIONS:
        raise UnknownInvokeError(f"no zone data for region {region!r} (zbi_infra/regions.py)")
    ids = zone_ids(region)
    shift = int(_digest(region, length=2), 16) % len(ids)
    shuffled = ids[shift:] + ids[:shift]
    return [(f"{region}{letter}", zone_id) for letter, zone_id in zip("abcdefgh", shuffled, strict=False)]


@dataclass(frozen=True)
class Snapshot:
    id: str
    tags: dict[str, str]
    status: str
    created: int


def _matches(snapshot: Snapshot, filters: list[dict[str, Any]]) -> bool:
    """EC2 DescribeSnapshots filter semantics: every filter must match, any of its values."""
    for item in filters:
        name, values = item["name"], item["values"]
        if name.startswith("tag:"):
            # EC2 filter values take * and ? wildcards.
            tag = snapshot.tags.get(name.removeprefix("tag:"))
            if tag is None or not any(fnmatch.fnmatchcase(tag, value) for value in values):
                return False
        elif name == "status":
            if snapshot.status not in values:
                return False
        else:
            raise UnknownInvokeError(f"snapshot filter {name!r} is not modelled by the offline plan")
    return True


class UnknownInvokeError(Exception):
    """An invoke the offline plan has no realistic answer for: failing beats answering with nothing."""


_ID_PREFIXES = {
    "aws:ec2/vpc:Vpc": "vpc-",
    "aws:ec2/subnet:Subnet": "subnet-",
    "aws:ec2/internetGateway:InternetGateway": "igw-",
    "aws:ec2/natGateway:NatGateway": "nat-",
    "aws:ec2/eip:Eip": "eipalloc-",
    "aws:ec2/routeTable:RouteTable": "rtb-",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc-",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce-",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt-",
    "aws:ec2/securityGroup:SecurityGroup": "sg-",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg-",
    "aws:ec2/flowLog:FlowLog": "fl-",
}


def _digest(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def fake_kubeconfig(cluster_name: str, region: str) -> dict[str, Any]:
    endpoint = f"https://{_digest(cluster_name, length=32).upper()}.gr7.{region}.eks.amazonaws.com"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": "bW9jaw=="}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "users": [
            {
                "name": cluster_name,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region],
                    }
                },
            }
        ],
    }


class PlanMocks(pulumi.runtime.Mocks):
    """Answers resource registrations and invokes the way the real providers would, minus the cloud."""

    def __init__(self, stack_outputs: dict[str, dict[str, Any]] | None = None, *, stack: str = "stack") -> None:
        self._provider_regions: dict[str, str] = {}
        self.stack = stack
        # StackReference outputs by stack name, for programs that read another stack.
        self.stack_outputs = stack_outputs or {}

    def _region_of(self, provider: str | None, inputs: dict[str, Any]) -> str:
        if inputs.get("region"):
            return str(inputs["region"])
        if provider:
            provider_id = provider.split("::")[-1]
            if provider_id in self._provider_regions:
                return self._provider_regions[provider_id]
        return DEFAULT_REGION

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        region = self._region_of(args.provider, args.args)
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            zones = zones_of(region)
            return {
                "id": region,
                "names": [n for n, _ in zones],
                "zoneIds": [i for _, i in zones],
                "groupNames": [region] * len(zones),
                "state": "available",
            }
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/zbi-plan",
                "id": ACCOUNT_ID,
                "userId": "AIDAZBIPLAN",
            }
        if args.token == "aws:index/getRegion:getRegion":
            return {"id": region, "name": region, "region": region, "endpoint": f"ec2.{region}.amazonaws.com"}
        if args.token == "aws:ebs/getSnapshotIds:getSnapshotIds":
            matching = [s for s in self.snapshots_in(region) if _matches(s, args.args.get("filters", []))]
            # The real data source sorts by creation time, newest first.
            return {"id": region, "ids": [s.id for s in sorted(matching, key=lambda s: s.created, reverse=True)]}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        raise UnknownInvokeError(f"the offline plan has no answer for invoke {args.token}; add one to PlanMocks.call")

    def snapshots_in(self, region: str) -> list[Snapshot]:
        """The snapshot copies DLM would have made in `region` for the primary stacks this plan references: two per
        instance, each carrying its volume's tags (DLM's copy_tags) and the policy's own tag."""
        found = []
        for stack, outputs in self.stack_outputs.items():
            recovery = outputs.get("disasterRecovery") or {}
            if recovery.get("drRegion", region) != region:
                continue
            for instance in recovery.get("instances", []):
                volume = claim_volume_tags(
                    volume_tags(stack=stack, instance=instance), namespace=f"zbi-{instance}", claim="data-zebrad-0"
                )
                tags = {**volume, POLICY_TAG: f"{stack}-backups"}
                for created in (1, 2):
                    snapshot_id = f"snap-{_digest(stack, instance, str(created), region)}"
                    found.append(Snapshot(snapshot_id, tags, "completed", created))
        return found

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        typ = args.typ
        if typ == "pulumi:providers:aws":
            resource_id = f"{args.name}-provider-id"
            self._provider_regions[resource_id] = str(inputs.get("region", DEFAULT_REGION))
            return resource_id, inputs
        if typ.startswith("pulumi:providers:"):
            return f"{args.name}-provider-id", inputs
        if typ == "pulumi:pulumi:StackReference":
            name = inputs.get("name", args.name)
            return name, {"name": name, "outputs": self.stack_outputs.get(name, {}), "secretOutputNames": []}

        region = self._region_of(args.provider, inputs)
        resource_id = _ID_PREFIXES.get(typ, "") + _digest(typ, args.name)
        outputs = {**inputs, "id": resource_id}
        service = typ.split(":")[1].split("/")[0] if ":" in typ else "x"
        if typ.startswith("aws:"):
            outputs.setdefault("arn", f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{args.name}")
            outputs.setdefault("tagsAll", inputs.get("tags", {}))
        if typ == "aws:kms/key:Key":
            key_id = f"{_digest(args.name, length=8)}-0000-4000-8000-{_digest(args.name, 'k', length=12)}"
            outputs.update(arn=f"arn:aws:kms:{region}:{ACCOUNT_ID}:key/{key_id}", keyId=key_id)
            resource_id = key_id
        elif typ == "aws:iam/role:Role":
            role_name = inputs.get("name") or f"{args.name}-{_digest(args.name, length=7)}"
            outputs.update(name=role_name, arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{role_name}")
            resource_id = role_name
        elif typ == "aws:ec2/launchTemplate:LaunchTemplate":
            outputs.update(latestVersion=1, defaultVersion=1)
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            outputs["arn"] = f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{inputs.get('name', args.name)}"
        elif typ == "aws:dlm/lifecyclePolicy:LifecyclePolicy":
            outputs["arn"] = f"arn:aws:dlm:{region}:{ACCOUNT_ID}:policy/{resource_id}"
        elif typ == "aws:route53/healthCheck:HealthCheck":
            outputs["id"] = resource_id
        elif typ == "aws:acm/certificate:Certificate":
            # ACM's DNS validation: one CNAME per name, `_<hash>.<name>.` -> `_<hash>.<token>.acm-validations.aws.`
            names = [inputs["domainName"], *(inputs.get("subjectAlternativeNames") or [])]
            outputs["domainValidationOptions"] = [
                {
                    "domainName": name,
                    "resourceRecordName": f"_{_digest(name, length=32)}.{name}.",
                    "resourceRecordType": "CNAME",
                    "resourceRecordValue": f"_{_digest(name, 'v', length=32)}.{_digest(name, length=10)}"
                    ".acm-validations.aws.",
                }
                for name in names
            ]
        elif typ == "aws:route53/record:Record":
            outputs["fqdn"] = str(inputs.get("name", "")).rstrip(".")
        elif typ == "aws:acm/certificateValidation:CertificateValidation":
            outputs["certificateArn"] = inputs.get("certificateArn")
        elif typ == "eks:index:Cluster":
            outputs.update(self._eks_cluster_outputs(inputs, region))
        elif typ == "kubernetes:core/v1:Service":
            spec = dict(outputs.get("spec") or {})
            if spec.get("clusterIP") != "None":
                digest = int(_digest(args.name, length=4), 16)
                spec["clusterIP"] = f"172.20.{digest >> 8}.{digest & 0xFF or 1}"
            outputs["spec"] = spec
            if spec.get("type") == "LoadBalancer":
                # Kubernetes objects carry no region; the stack's first AWS provider names it.
                lb_region = next(iter(self._provider_regions.values()), region)
                host = (
                    f"a{_digest(self.stack, args.name, length=31)}-{_digest(args.name, length=16)}"
                    f".elb.{lb_region}.amazonaws.com"
                )
                outputs["status"] = {"loadBalancer": {"ingress": [{"hostname": host}]}}
        elif typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = _digest(args.name, "password", length=32)
        elif typ == "tls:index/privateKey:PrivateKey":
            outputs.update(
                privateKeyPem=f"-----BEGIN PRIVATE KEY-----\nmock-{_digest(args.name)}\n-----END PRIVATE KEY-----\n",
                publicKeyPem="-----BEGIN PUBLIC KEY-----\nmock\n-----END PUBLIC KEY-----\n",
            )
        elif typ in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
            outputs["certPem"] = f"-----BEGIN CERTIFICATE-----\nmock-{_digest(args.name)}\n-----END CERTIFICATE-----\n"
        elif typ == "tls:index/certRequest:CertRequest":
            outputs["certRequestPem"] = "-----BEGIN CERTIFICATE REQUEST-----\nmock\n-----END CERTIFICATE REQUEST-----\n"
        return resource_id, outputs

    @staticmethod
    def _eks_cluster_outputs(inputs: dict[str, Any], region: str) -> dict[str, Any]:
        # pulumi-eks is a remote component: its plugin never runs under mocks, so these are the outputs zBI reads.
        name = str(inputs.get("name", "cluster"))
        oidc_id = _digest(name, "oidc", length=32).upper()
        kubeconfig = fake_kubeconfig(name, region)
        return {
            "kubeconfig": kubeconfig,
            "kubeconfigJson": json.dumps(kubeconfig),
            "oidcProviderArn": f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/oidc.eks.{region}.amazonaws.com/id/{oidc_id}",
            "oidcProviderUrl": f"oidc.eks.{region}.amazonaws.com/id/{oidc_id}",
            "oidcIssuer": f"oidc.eks.{region}.amazonaws.com/id/{oidc_id}",
            "clusterSecurityGroupId": f"sg-{_digest(name, 'cluster')}",
            "nodeSecurityGroupId": f"sg-{_digest(name, 'node')}",
        }
