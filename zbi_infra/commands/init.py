"""`zbi init <stack>`: the smallest useful stack file — one Zcash testnet full node and one light-wallet server — on a
cluster you already run (kind, k3s, minikube), or with `--aws` on its own small EKS platform. The file is validated
and planned (offline) before it is written, and its header states the footprint the plan asks for."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from zbi_infra.commands.arguments import add_project_dir, add_stack
from zbi_infra.errors import ConfigError

LOCAL = """\
# Stack {stack}: the smallest useful zBI stack on a Kubernetes cluster you already run (kind, k3s, minikube): one
# Zcash testnet full node (zebrad) and one light-wallet server (lightwalletd) in front of it. No AWS resource.
# Footprint (from its plan): its Zcash pods request {footprint}.
# One replica each, so no high availability (zbi plan warns): raise node.replicas to 2 for it.
#   zbi plan {stack}                          what it creates, offline
#   pulumi login --local && pulumi stack init {stack} && pulumi up -s {stack}   (state on this machine)
config:
  zbi:role: local
  zbi:local:
    kubeconfigContext: {context}              # `kubectl config get-contexts` lists yours
  zbi:instances:
{instance}"""

AWS = """\
# Stack {stack}: the smallest useful zBI platform on AWS: a VPC over two availability zones (one NAT gateway), an EKS
# cluster with one m7i.large node per zone, and one Zcash testnet full node (zebrad) with one light-wallet server
# (lightwalletd) in front of it. About ${monthly:,.0f} a month on demand (`zbi cost {stack}`).
# Footprint (from its plan): its Zcash pods request {footprint}.
# One replica each, so no high availability (zbi plan warns): raise node.replicas to 2 for it.
#   zbi plan {stack}                          what it creates, offline
#   pulumi stack init {stack} && pulumi preview -s {stack} && pulumi up -s {stack}   (needs AWS credentials)
config:
  aws:region: {region}
  zbi:role: primary
  zbi:platform:
    region: {region}
    availabilityZoneCount: 2
    vpcCidr: 10.40.0.0/16
    natStrategy: single                       # one NAT gateway: cheaper, one zone's outage stops egress
  zbi:cluster:
    name: {stack}
    nodeGroups:
      general:
        instanceTypes: [m7i.large]
        minSize: 1
        desiredSize: 1
        maxSize: 2
  zbi:instances:
{instance}"""

# Named apart from the example stacks' instances: an access file of the same name (access/<instance>.yaml) would put
# a gateway in front of it that the header does not describe.
INSTANCE = """\
    starter:
      network: testnet
      node:
        kind: zebrad
        replicas: 1
        resources: {cpu: "1", memory: 4Gi}
        storage: {sizeGib: 100}               # the Testnet chain state, with room to grow
      lightwallet:
        kind: lightwalletd
        minReplicas: 1
        maxReplicas: 1
        resources: {cpu: 100m, memory: 256Mi}
        cacheSizeGib: 5
      # endpoints: {publicGrpc: true, hostnames: [testnet.lwd.example.com]}   # a public load balancer on 443
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "init",
        help="write the smallest useful stack file: one testnet node and one light-wallet server",
        description="Writes Pulumi.<stack>.yaml: one Zcash testnet full node (zebrad) and one light-wallet server "
        "(lightwalletd), on an existing cluster (default) or on a small EKS platform (--aws). The file is validated "
        "and planned offline before it is written. Examples:\n"
        "  zbi init testnet                       on the cluster of kubeconfig context kind-zbi\n"
        "  zbi init testnet --context k3d-zbi\n"
        "  zbi init testnet-aws --aws --region us-east-1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stack(parser, name="the new stack's name", file_use="writes", type=_stack_name)
    parser.add_argument("--aws", action="store_true", help="an AWS platform (VPC, EKS) instead of an existing cluster")
    parser.add_argument("--context", default="kind-zbi", help="the kubeconfig context (default kind-zbi)")
    parser.add_argument("--region", default="us-east-1", help="with --aws: the AWS region (default us-east-1)")
    add_project_dir(parser)
    parser.set_defaults(handler=run)


def _stack_name(text: str) -> str:
    import re

    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?", text):
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}{'…' if len(text) > 40 else ''} ({len(text)} characters) is not a stack name: at most 40 "
            "lowercase letters, digits and -, starting and ending with a letter or digit"
        )
    return text


def stack_text(stack: str, *, aws: bool, context: str, region: str, footprint: str, monthly: float) -> str:
    template = AWS if aws else LOCAL
    return template.format(
        stack=stack, context=context, region=region, footprint=footprint, monthly=monthly, instance=INSTANCE
    )


def footprint(plan: Any) -> str:
    """What the instances' workloads (namespaces zbi-*) request at their starting replica counts, and their
    volumes; the platform's own add-ons (monitoring, autoscaler) are not counted."""
    from zbi_infra.config.resources import cpu_millis, memory_mib

    millis = mib = 0
    volumes = 0.0
    for resource in plan.resources:
        if resource.type not in ("kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:Deployment"):
            continue
        if not str(resource.inputs["metadata"].get("namespace", "")).startswith("zbi-"):
            continue
        spec = resource.inputs["spec"]
        replicas = int(spec.get("replicas", 1))
        for container in spec["template"]["spec"]["containers"]:
            requests = (container.get("resources") or {}).get("requests") or {}
            millis += replicas * cpu_millis(str(requests.get("cpu", "0")))
            mib += replicas * memory_mib(str(requests.get("memory", "0Mi")))
        for claim in spec.get("volumeClaimTemplates") or []:
            volumes += replicas * float(claim["spec"]["resources"]["requests"]["storage"].removesuffix("Gi"))
    return f"{millis / 1000:g} CPU, {mib / 1024:.2f} GiB of memory and {volumes:g} GiB of volumes"


def run(args: argparse.Namespace, project: Any) -> int:
    from zbi_infra.config import load_stack_config
    from zbi_infra.config.stack_file import StackFile
    from zbi_infra.plan.engine import evaluate
    from zbi_infra.plan.summary import monthly_cost
    from zbi_infra.yaml_roundtrip import replace_file

    path = project.root / f"Pulumi.{args.stack}.yaml"
    if path.exists():
        raise ConfigError(
            [f"{path.name} exists (nothing was written). Fix: pick another stack name, or remove the file first"],
            what="init request",
        )

    # Planned before anything is written: the draft differs from the file only in its header's figures.
    draft = stack_text(args.stack, aws=args.aws, context=args.context, region=args.region, footprint="", monthly=0)
    values = yaml.safe_load(draft)["config"]
    config = load_stack_config(values)
    plan = evaluate(StackFile(stack=args.stack, config=values), program=project.main, project=project.name)
    cost = monthly_cost(plan, config)
    text = stack_text(
        args.stack,
        aws=args.aws,
        context=args.context,
        region=args.region,
        footprint=footprint(plan),
        monthly=cost[0] if cost else 0.0,
    )
    replace_file(path, text)
    print(f"wrote {path.name}: its Zcash pods request {footprint(plan)}", file=sys.stderr)
    print(f"next: zbi plan {args.stack}", file=sys.stderr)
    return 0
