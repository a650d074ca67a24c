"""`zbi endpoints <stack>`: how clients reach each instance, offline from the plan — its public or in-cluster
address, the CA to trust, and ready-to-run `grpcurl` and `curl` commands with a key placeholder."""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from zbi_infra.commands.arguments import add_project_dir, add_stack

# lightwalletd's protos, vendored at their pinned tag (tests/fixtures/upstream/SOURCES.json): grpcurl needs them, as
# the gateway forwards only CompactTxStreamer's methods (no reflection service).
PROTO_DIR = "tests/fixtures/upstream/lightwalletd/walletrpc"
PROTO_FILE = "service.proto"
SERVICE = "cash.z.wallet.sdk.rpc.CompactTxStreamer"
KEY = "<KEY>"
USER = "<USER>"
PRIVILEGED_PORTS = 1024
STAGING = "letsencrypt-staging"


@dataclass
class Endpoint:
    instance: str
    network: str
    public: bool
    address: str  # host:port a client dials
    server_name: str  # the name the certificate is checked against
    front: str  # "gateway" (keys, JSON-RPC and gRPC) or the light-wallet server (gRPC, no keys)
    ca: str  # how to get the CA to trust
    ca_file: str
    commands: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Let's Encrypt staging: the certificate chains to a test root no client trusts.
    insecure: bool = False


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "endpoints",
        help="how clients connect to each instance: address, CA, grpcurl and curl commands (offline, from the plan)",
        description="From the offline plan: each instance's endpoint, the CA to trust, and commands an end user can "
        "run (replace <USER> and <KEY> with a key from `zbi access create-key`). Examples:\n"
        "  zbi endpoints dev\n"
        "  zbi endpoints local --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stack(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_project_dir(parser)
    parser.set_defaults(handler=run)


def _services(plan: Any, namespace: str) -> dict[str, dict[str, Any]]:
    return {
        r.inputs["metadata"]["name"]: r.inputs["spec"]
        for r in plan.of_type("kubernetes:core/v1:Service")
        if r.inputs["metadata"].get("namespace") == namespace
    }


def _certificate_names(plan: Any, instance: str) -> list[str]:
    for resource in plan.of_type("tls:index/certRequest:CertRequest"):
        if resource.name == f"{instance}-grpc-tls-csr":
            return list(resource.inputs.get("dnsNames") or [])
    return []


def endpoints(plan: Any, config: Any, *, stack: str, access: dict[str, Any]) -> list[Endpoint]:
    """One Endpoint per instance with a client-facing service. `access`: instance -> its access file, if any."""
    found = []
    for name, instance in sorted(config.instances.items()):
        namespace = f"zbi-{name}"
        services = _services(plan, namespace)
        gateway = name in access and "gateway" in services
        service = "gateway" if gateway else next((s for s in services if s.endswith("-grpc")), None)
        if service is None:
            continue
        spec = services[service]
        port = int(spec["ports"][0]["port"])
        public = spec.get("type") == "LoadBalancer"
        names = _certificate_names(plan, name)
        in_cluster = f"{service}.{namespace}.svc"
        if public:
            host = instance.endpoints.hostnames[0] if instance.endpoints.hostnames else "<load balancer DNS name>"
            address, server_name = f"{host}:{port}", host
        else:
            # A local port below 1024 needs root: the gateway's 443 is forwarded from 8443.
            local_port = port if port >= PRIVILEGED_PORTS else port + 8000
            address, server_name = f"localhost:{local_port}", in_cluster if in_cluster in names else (names or [""])[0]
        ca_file = f"zbi-{stack}-{name}-ca.pem"
        publicly_trusted = public and instance.endpoints.public_tls is not None
        endpoint = Endpoint(
            instance=name,
            network=instance.network.value,
            public=public,
            address=address,
            server_name=server_name,
            front="gateway" if gateway else instance.lightwallet.kind.value,
            ca=f"pulumi stack output caCertPems -s {stack} --json | jq -r '.\"{name}\"' > {ca_file}",
            ca_file=ca_file,
        )
        if publicly_trusted:
            tls = instance.endpoints.public_tls
            endpoint.ca = f"none to add: a publicly trusted certificate ({tls.provider.value}, endpoints.publicTls)"
            endpoint.ca_file = ""
            if tls.acme is not None and tls.acme.server == STAGING:
                endpoint.ca = (
                    "none that clients hold: Let's Encrypt staging signs with an untrusted test root, so the commands "
                    "skip verification (-insecure, -k); set acme.server: letsencrypt for a trusted certificate"
                )
                endpoint.insecure = True
        if not public:
            endpoint.commands["port-forward"] = (
                f"kubectl -n {namespace} port-forward svc/{service} {address.rsplit(':', 1)[1]}:{port}"
                "   # in another terminal"
            )
            endpoint.notes.append(
                f"private: only inside the cluster ({in_cluster}:{port}); from a laptop, port-forward as below"
            )
        if public and not instance.endpoints.hostnames:
            endpoint.notes.append(
                f"no hostname declared: use the load balancer's name (`kubectl -n {namespace} get svc {service}`), "
                "which the certificate does not cover; declare endpoints.hostnames for a name it does"
            )
        endpoint.commands |= _client_commands(endpoint, gateway=gateway)
        found.append(endpoint)
    return found


def _client_commands(endpoint: Endpoint, *, gateway: bool) -> dict[str, str]:
    tls = ["-cacert", endpoint.ca_file] if endpoint.ca_file else ["-insecure"] if endpoint.insecure else []
    if endpoint.server_name and endpoint.server_name != endpoint.address.rsplit(":", 1)[0]:
        tls += ["-servername", endpoint.server_name]
    key = ["-H", f"authorization: Bearer {KEY}"] if gateway else []
    grpc = ["grpcurl", *tls, "-import-path", PROTO_DIR, "-proto", PROTO_FILE, *key]
    commands = {
        "grpc": shlex.join([*grpc, endpoint.address, f"{SERVICE}/GetLightdInfo"]),
        "grpc-latest-block": shlex.join([*grpc, endpoint.address, f"{SERVICE}/GetLatestBlock"]),
    }
    if gateway:
        host, port = endpoint.address.rsplit(":", 1)
        trust = ["--cacert", endpoint.ca_file] if endpoint.ca_file else ["-k"] if endpoint.insecure else []
        curl = ["curl", "-s", *trust, "--user", f"{USER}:{KEY}"]
        if endpoint.server_name != host:
            curl += ["--connect-to", f"{endpoint.server_name}:{port}:{host}:{port}"]
        body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": "getblockchaininfo", "params": []})
        url = f"https://{endpoint.server_name}:{port}/"
        commands["json-rpc"] = shlex.join([*curl, "-H", "content-type: application/json", "-d", body, url])
    return commands


def report(found: list[Endpoint]) -> str:
    if not found:
        return "no instance has a client endpoint (no light-wallet server and no gateway)"
    lines = []
    for endpoint in found:
        where = "public" if endpoint.public else "private"
        lines.append(f"{endpoint.instance} ({endpoint.network}, {where}, served by {endpoint.front})")
        lines.append(f"  address:   {endpoint.address}  (certificate name {endpoint.server_name})")
        trust = f"the instance's CA: {endpoint.ca}" if endpoint.ca_file else endpoint.ca
        lines.append(f"  trust:     {trust}")
        lines += [f"  note:      {note}" for note in endpoint.notes]
        for label, command in endpoint.commands.items():
            lines.append(f"  {label + ':':<10} {command}")
        lines.append("")
    lines.append(f"grpcurl reads lightwalletd's protos from {PROTO_DIR}/ (run from the repository's root).")
    if any(e.front == "gateway" for e in found):
        lines.append(f"Replace {USER} and {KEY} with a user and the key `zbi access create-key` printed.")
    return "\n".join(lines)


def run(args: argparse.Namespace, project: Any) -> int:
    from zbi_infra.config import load_stack_config
    from zbi_infra.config.access import ACCESS_DIR
    from zbi_infra.plan.engine import evaluate

    stack_file = project.stack_file(args.stack)
    config = load_stack_config(stack_file.config, secret_keys=set(stack_file.secret_keys))
    plan = evaluate(stack_file, program=project.main, project=project.name)
    access = {name: True for name in config.instances if (project.root / ACCESS_DIR / f"{name}.yaml").is_file()}
    found = endpoints(plan, config, stack=args.stack, access=access)
    print(json.dumps([asdict(e) for e in found], indent=2) if args.json else report(found))
    return 0
