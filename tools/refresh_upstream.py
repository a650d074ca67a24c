#!/usr/bin/env python3
"""Refresh tests/fixtures/upstream/ from the upstream repositories at their release tags.

Every fixture the tests check zBI against comes from here, and SOURCES.json records, for each file, the repository,
tag, commit, path and licence it was taken from. Files are either copied verbatim (configs, Dockerfiles,
entrypoints, protos) or are facts extracted from source (the field names of a Rust config struct, the constants
of an end-of-support rule), written as JSON next to the path they were read from.

Usage:
    python tools/refresh_upstream.py --checkout zebra=/path/to/zebra --checkout lightwalletd=/path/... \
        --checkout zcash=/path/... --checkout zaino=/path/...

Each checkout is a git repository (a clone, or a bare mirror) that holds the pinned tag; nothing is fetched from the
network (upstream_git.py reads it). Upstreams not given keep their current fixtures. The fixtures taken from charts and
CRDs are upstream_charts.py's.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import add_release  # tools/ is the script's own directory, first on sys.path
from upstream_charts import refresh_cert_manager, refresh_monitoring_charts, refresh_pulumi_kubernetes_operator
from upstream_git import git_commit, git_show, metric_names

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "upstream"
# The library validates zebrad extraOptions against the same key list at run time.
PACKAGE_DATA = ROOT / "zbi_infra" / "data"


@dataclass(frozen=True)
class Upstream:
    repository: str
    tag: str
    licence: str


UPSTREAMS = {
    "zebra": Upstream("ZcashFoundation/zebra", "v6.3.0", "MIT OR Apache-2.0"),
    "lightwalletd": Upstream("zcash/lightwalletd", "v0.5.3", "MIT"),
    "zcash": Upstream("zcash/zcash", "v6.20.0", "MIT"),
    "zaino": Upstream("zingolabs/zaino", "0.8.0", "Apache-2.0"),
    # The exporters whose metric names zBI's alert rules use.
    "go-grpc-prometheus": Upstream("grpc-ecosystem/go-grpc-prometheus", "v1.2.0", "Apache-2.0"),
    "blackbox_exporter": Upstream("prometheus/blackbox_exporter", "v0.28.0", "Apache-2.0"),
    "kube-state-metrics": Upstream("kubernetes/kube-state-metrics", "v2.20.0", "Apache-2.0"),
    # Snapshot freshness: Data Lifecycle Manager's CloudWatch metrics (named in AWS's EC2 user guide, whose source
    # repository was archived after its last content commit), read into Prometheus by the CloudWatch exporter.
    "cloudwatch_exporter": Upstream("prometheus/cloudwatch_exporter", "v0.16.0", "Apache-2.0"),
    "ec2-user-guide": Upstream(
        "awsdocs/amazon-ec2-user-guide", "dcfd52bbc4641d131f5d71feab6457b73976ff6f", "CC-BY-SA-4.0"
    ),
    # The access gateway's images: NGINX's unprivileged build with njs (no release tags in that repository: the
    # commit that made 1.30.4, its stable line), OpenResty's (docker-openresty's release tag), and mtail, which turns
    # the gateway's access log into metrics.
    "nginx-unprivileged": Upstream(
        "nginxinc/docker-nginx-unprivileged", "e26803b6ff7ca01455284231c59f20cb5e3ae82e", "Apache-2.0"
    ),
    "docker-openresty": Upstream("openresty/docker-openresty", "1.27.1.2-12", "BSD-2-Clause"),
    "mtail": Upstream("google/mtail", "v3.0.9", "Apache-2.0"),
    # The in-cluster control plane: the Pulumi Kubernetes Operator's chart and its Stack CRD.
    "pulumi-kubernetes-operator": Upstream(
        "pulumi/pulumi-kubernetes-operator", "pulumi-kubernetes-operator-2.9.0", "Apache-2.0"
    ),
    # The monitoring stack's charts, and with them the Prometheus Operator's CRDs.
    "helm-charts": Upstream("prometheus-community/helm-charts", "kube-prometheus-stack-88.5.3", "Apache-2.0"),
    "cert-manager": Upstream("cert-manager/cert-manager", "v1.21.1", "Apache-2.0"),
}
DLM_METRICS_DOC = "doc_source/monitor-dlm-cw-metrics.md"

# (upstream, path at the tag, fixture file name): copied verbatim.
COPIES = [
    ("zebra", "zebrad/tests/common/configs/v6.3.0.toml", "zebra/zebrad-default-config.toml"),
    ("zebra", "docker/Dockerfile", "zebra/Dockerfile"),
    ("zebra", "docker/entrypoint.sh", "zebra/entrypoint.sh"),
    ("lightwalletd", "Dockerfile", "lightwalletd/Dockerfile"),
    # walletrpc/*.proto are symlinks into the lightwallet-protocol subtree: copy their targets.
    ("lightwalletd", "lightwallet-protocol/walletrpc/service.proto", "lightwalletd/walletrpc/service.proto"),
    (
        "lightwalletd",
        "lightwallet-protocol/walletrpc/compact_formats.proto",
        "lightwalletd/walletrpc/compact_formats.proto",
    ),
    ("zcash", "contrib/docker/Dockerfile", "zcash/Dockerfile"),
    ("zcash", "contrib/docker/entrypoint.sh", "zcash/entrypoint.sh"),
    ("zcash", "contrib/debian/examples/zcash.conf", "zcash/zcash.conf.example"),
    ("zcash", "zcutil/fetch-params.sh", "zcash/fetch-params.sh"),
    ("zaino", "Dockerfile", "zaino/Dockerfile"),
    ("zaino", "entrypoint.sh", "zaino/entrypoint.sh"),
    ("nginx-unprivileged", "stable/debian/Dockerfile", "nginx-unprivileged/Dockerfile"),
    ("docker-openresty", "bookworm/Dockerfile", "openresty/Dockerfile"),
    ("docker-openresty", "COPYRIGHT", "openresty/COPYRIGHT"),
    ("mtail", "Dockerfile.goreleaser", "mtail/Dockerfile.goreleaser"),
    # The blackbox exporter's module schema (yaml tags), for zBI's probe modules.
    ("blackbox_exporter", "config/config.go", "blackbox_exporter/config.go"),
    ("mtail", ".goreleaser.yml", "mtail/goreleaser.yml"),
]

# zebrad.toml sections: the file and struct each section deserializes into (all `deny_unknown_fields`), as the
# release tool reads them for every release (one table: tools/add_release.py).
ZEBRAD_SECTIONS = add_release.UPSTREAMS["zebrad"].sections


def struct_fields(source: str, struct: str) -> list[str]:
    """Field names of `struct <struct> { ... }` (serde renames are not used by these structs)."""
    match = re.search(rf"struct {struct}\s*\{{(.*?)\n\}}", source, flags=re.DOTALL)
    if not match:
        raise SystemExit(f"no `struct {struct}` found")
    return sorted(set(re.findall(r"^\s*(?:pub(?:\(crate\))? )?(\w+):", match.group(1), flags=re.MULTILINE)))


def rust_const(source: str, name: str) -> int:
    match = re.search(rf"const {name}: u32 = ([0-9_]+)", source)
    if not match:
        raise SystemExit(f"no const {name}")
    return int(match.group(1).replace("_", ""))


def lightwalletd_flags(root_go: str) -> dict[str, object]:
    flags = dict(re.findall(r'rootCmd\.Flags\(\)\.\w+\("([a-z0-9-]+)",\s*([^,]+),', root_go))
    return {
        "flags": sorted(flags),
        "defaults": {k: v.strip().strip('"') for k, v in flags.items()},
        "env_binding": {
            "automatic_env": "viper.AutomaticEnv()" in root_go,
            "replacer": 'strings.NewReplacer("-", "_")' in root_go,
            "prefix": None if "SetEnvPrefix" not in root_go else "set",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", action="append", default=[], help="NAME=PATH of a git repository")
    args = parser.parse_args()
    checkouts = {name: Path(path) for name, path in (c.split("=", 1) for c in args.checkout)}
    sources_file = FIXTURES / "SOURCES.json"
    sources = json.loads(sources_file.read_text()) if sources_file.exists() else {}

    def record(fixture: str, name: str, path: str, how: str) -> None:
        upstream = UPSTREAMS[name]
        sources[fixture] = {
            "repository": upstream.repository,
            "tag": upstream.tag,
            "commit": git_commit(checkouts[name], upstream.tag),
            "path": path,
            "licence": upstream.licence,
            "how": how,
        }

    for name, path, fixture in COPIES:
        if name not in checkouts:
            continue
        target = FIXTURES / fixture
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(git_show(checkouts[name], UPSTREAMS[name].tag, path))
        record(fixture, name, path, "copied verbatim")

    if "zebra" in checkouts:
        tag = UPSTREAMS["zebra"].tag
        keys = {
            section: struct_fields(git_show(checkouts["zebra"], tag, path), struct)
            for section, (path, struct) in ZEBRAD_SECTIONS.items()
        }
        write_json("zebra/zebrad-config-keys.json", keys)
        (PACKAGE_DATA / "zebrad-config-keys.json").write_text((FIXTURES / "zebra/zebrad-config-keys.json").read_text())
        record(
            "zebra/zebrad-config-keys.json",
            "zebra",
            ", ".join(path for path, _ in ZEBRAD_SECTIONS.values()),
            "field names of each section's `pub struct Config` (serde deny_unknown_fields)",
        )
        eos_path = "zebrad/src/components/sync/end_of_support.rs"
        eos = git_show(checkouts["zebra"], tag, eos_path)
        write_json(
            "zebra/end-of-support.json",
            {
                "release": tag.removeprefix("v"),
                "estimated_release_height": rust_const(eos, "ESTIMATED_RELEASE_HEIGHT"),
                "eos_panic_after_days": rust_const(eos, "EOS_PANIC_AFTER"),
                "eos_warn_before_days": 14,
                "blocks_per_day": 24 * 60 * 60 // 75,
                "enforced_on": "Mainnet",
            },
        )
        record("zebra/end-of-support.json", "zebra", eos_path, "constants of the end-of-support check")
        cargo = git_show(checkouts["zebra"], tag, "zebrad/Cargo.toml")
        dockerfile = git_show(checkouts["zebra"], tag, "docker/Dockerfile")
        release_features = re.search(r"^default-release-binaries = \[(.*?)\]", cargo, flags=re.MULTILINE)
        write_json(
            "zebra/release-features.json",
            {
                "dockerfile_features": re.search(r'^ARG FEATURES="([^"]+)"', dockerfile, flags=re.MULTILINE).group(1),  # type: ignore[union-attr]
                "default-release-binaries": re.findall(r'"([^"]+)"', release_features.group(1)),  # type: ignore[union-attr]
            },
        )
        record(
            "zebra/release-features.json",
            "zebra",
            "docker/Dockerfile (ARG FEATURES), zebrad/Cargo.toml ([features] default-release-binaries)",
            "the cargo features the released image is built with",
        )
        peers_path = "zebra-network/src/config.rs"
        network = git_show(checkouts["zebra"], tag, peers_path)
        write_json(
            "zebra/regtest-initial-peers.json",
            {
                "regtest_keeps_only_localhost_peers": ".filter(PeerSocketAddr::is_localhost)" in network,
                "localhost_addresses": ["127.0.0.1", "::1"],
            },
        )
        record("zebra/regtest-initial-peers.json", "zebra", peers_path, "Config::initial_peers on Regtest")

    if "zebra" in checkouts:
        tag = UPSTREAMS["zebra"].tag
        methods_rs = "zebra-rpc/src/methods.rs"
        methods = sorted(set(re.findall(r'method\(name = "(\w+)"', git_show(checkouts["zebra"], tag, methods_rs))))
        write_json("zebra/rpc-methods.json", {"methods": methods})
        (PACKAGE_DATA / "zebrad-rpc-methods.json").write_text((FIXTURES / "zebra/rpc-methods.json").read_text())
        record("zebra/rpc-methods.json", "zebra", methods_rs, "JSON-RPC method names (#[method(name = ...)])")
        names = metric_names(checkouts["zebra"], tag, r'(?:gauge|counter|histogram)!\(\s*"([a-z0-9_.]+)"', r".*")
        # metrics-exporter-prometheus writes names with "." as "_".
        write_json("zebra/metrics.json", {"metrics": sorted({n.replace(".", "_") for n in names})})
        record("zebra/metrics.json", "zebra", "*.rs: metrics::{gauge,counter,histogram}! names", "metric names")

    if "lightwalletd" in checkouts:
        own = metric_names(
            checkouts["lightwalletd"], UPSTREAMS["lightwalletd"].tag, r'Name:\s*"([a-z0-9_]+)"', "cmd/", "common/"
        )
        write_json("lightwalletd/metrics.json", {"metrics": own})
        record("lightwalletd/metrics.json", "lightwalletd", "cmd/connstats.go (prometheus Name:)", "metric names")

    if "lightwalletd" in checkouts:
        proto_path = "lightwallet-protocol/walletrpc/service.proto"
        proto = git_show(checkouts["lightwalletd"], UPSTREAMS["lightwalletd"].tag, proto_path)
        package = re.search(r"^package ([\w.]+);", proto, re.MULTILINE).group(1)  # type: ignore[union-attr]
        service = re.search(r"^service (\w+) \{", proto, re.MULTILINE).group(1)  # type: ignore[union-attr]
        rpcs = {
            name: {"client_streaming": bool(client), "server_streaming": bool(server)}
            for name, client, server in re.findall(
                r"^\s*rpc (\w+)\((stream )?\w+\) returns \((stream )?\w+\)", proto, re.MULTILINE
            )
        }
        write_json("lightwalletd/grpc-methods.json", {"service": f"{package}.{service}", "methods": rpcs})
        (PACKAGE_DATA / "lightwalletd-grpc-methods.json").write_text(
            (FIXTURES / "lightwalletd/grpc-methods.json").read_text()
        )
        record("lightwalletd/grpc-methods.json", "lightwalletd", proto_path, "the service's methods and streaming")

    if "go-grpc-prometheus" in checkouts:
        tag = UPSTREAMS["go-grpc-prometheus"].tag
        names = metric_names(
            checkouts["go-grpc-prometheus"], tag, r'Name:\s*"(grpc_server_[a-z_]+)"', r"server_metrics\.go"
        )
        write_json("go-grpc-prometheus/metrics.json", {"metrics": names, "used_by": "lightwalletd v0.5.3 (go.mod)"})
        record("go-grpc-prometheus/metrics.json", "go-grpc-prometheus", "server_metrics.go", "server metric names")

    if "blackbox_exporter" in checkouts:
        tag = UPSTREAMS["blackbox_exporter"].tag
        names = metric_names(checkouts["blackbox_exporter"], tag, r'Name:\s*"(probe_[a-z_]+)"', "prober/")
        write_json("blackbox_exporter/metrics.json", {"metrics": names})
        record("blackbox_exporter/metrics.json", "blackbox_exporter", "prober/*.go (prometheus Name:)", "metric names")

    if "kube-state-metrics" in checkouts:
        tag = UPSTREAMS["kube-state-metrics"].tag
        names = metric_names(checkouts["kube-state-metrics"], tag, r'"(kube_[a-z_]+)"', "internal/store/")
        write_json("kube-state-metrics/metrics.json", {"metrics": names})
        record("kube-state-metrics/metrics.json", "kube-state-metrics", "internal/store/*.go", "metric names")

    if "cloudwatch_exporter" in checkouts:
        tag = UPSTREAMS["cloudwatch_exporter"].tag
        collector = "src/main/java/io/prometheus/cloudwatch/CloudWatchCollector.java"
        source = git_show(checkouts["cloudwatch_exporter"], tag, collector)
        snake = re.search(r'toSnakeCase\(String str\) \{\s*return str\.replaceAll\("([^"]+)", "([^"]+)"\)', source)
        own = sorted(set(re.findall(r'"(cloudwatch_exporter_[a-z_]+)"', source)))
        write_json(
            "cloudwatch_exporter/naming.json",
            {
                "metrics": own,
                # <namespace lowercased, non [a-zA-Z0-9:_] as _>_<snake metric>_<snake statistic>
                "snake_case": {"pattern": snake.group(1), "replacement": snake.group(2)} if snake else None,
            },
        )
        record("cloudwatch_exporter/naming.json", "cloudwatch_exporter", collector, "own metrics; naming rule")

    if "ec2-user-guide" in checkouts:
        upstream = UPSTREAMS["ec2-user-guide"]
        doc = git_show(checkouts["ec2-user-guide"], upstream.tag, DLM_METRICS_DOC)
        snapshot_table = doc.split("#### [ EBS snapshot policies ]", 1)[1].split("------", 1)[0]
        write_json(
            "aws/dlm-cloudwatch-metrics.json",
            {
                "namespace": "AWS/EBS" if "--namespace AWS/EBS" in doc else None,
                "dimension": "DLMPolicyId" if "`DLMPolicyId` dimension" in doc else None,
                "snapshot_policy_metrics": re.findall(r"^\|\s+`(\w+)`", snapshot_table, re.MULTILINE),
            },
        )
        record("aws/dlm-cloudwatch-metrics.json", "ec2-user-guide", DLM_METRICS_DOC, "EBS snapshot policy metrics")

    if "helm-charts" in checkouts:
        refresh_monitoring_charts(checkouts["helm-charts"], UPSTREAMS["helm-charts"].tag, write_json, record)

    if "cert-manager" in checkouts:
        refresh_cert_manager(checkouts["cert-manager"], UPSTREAMS["cert-manager"].tag, write_json, record)

    if "pulumi-kubernetes-operator" in checkouts:
        checkout, tag = checkouts["pulumi-kubernetes-operator"], UPSTREAMS["pulumi-kubernetes-operator"].tag
        refresh_pulumi_kubernetes_operator(checkout, tag, write_json, record)

    if "lightwalletd" in checkouts:
        root_go = git_show(checkouts["lightwalletd"], UPSTREAMS["lightwalletd"].tag, "cmd/root.go")
        write_json("lightwalletd/flags.json", lightwalletd_flags(root_go))
        record("lightwalletd/flags.json", "lightwalletd", "cmd/root.go", "flags, defaults and env binding")

    if "zcash" in checkouts:
        tag = UPSTREAMS["zcash"].tag
        deprecation = git_show(checkouts["zcash"], tag, "src/deprecation.h")
        bitcoind = git_show(checkouts["zcash"], tag, "src/bitcoind.cpp")
        aware = re.search(r'"-(i-am-aware-[a-z0-9-]+)"', bitcoind)
        height = int(re.search(r"APPROX_RELEASE_HEIGHT = (\d+)", deprecation).group(1))  # type: ignore[union-attr]
        weeks = int(re.search(r"RELEASE_TO_DEPRECATION_WEEKS = (\d+)", deprecation).group(1))  # type: ignore[union-attr]
        write_json(
            "zcash/deprecation.json",
            {
                "release": tag.removeprefix("v"),
                "approx_release_height": height,
                "deprecation_height": height + weeks * 7 * 24 * 48,
                "awareness_option": aware.group(1) if aware else None,
                "enforced_on": ["Mainnet"],
            },
        )
        record("zcash/deprecation.json", "zcash", "src/deprecation.h, src/bitcoind.cpp", "deprecation constants")
        # zcashd's JSON-RPC table: every `static const CRPCCommand commands[]` row (category, name), per file. The
        # gateway classifies these methods for Zakura's zcashd sidecar (zbi_infra/config/zcashd_methods.py).
        rpc_files = [
            "src/rpc/blockchain.cpp", "src/rpc/mining.cpp", "src/rpc/misc.cpp", "src/rpc/net.cpp",
            "src/rpc/rawtransaction.cpp", "src/rpc/server.cpp", "src/wallet/rpcwallet.cpp",
        ]  # fmt: skip
        commands = {}
        for path in rpc_files:
            rows = re.findall(r'^\s*\{\s*"([a-z]+)",\s*"(\w+)",\s*&', git_show(checkouts["zcash"], tag, path), re.M)
            commands.update({name: {"category": category, "file": path} for category, name in rows})
        write_json("zcash/rpc-commands.json", {"release": tag.removeprefix("v"), "commands": commands})
        (PACKAGE_DATA / "zcashd-rpc-methods.json").write_text((FIXTURES / "zcash/rpc-commands.json").read_text())
        record("zcash/rpc-commands.json", "zcash", ", ".join(rpc_files), "JSON-RPC table rows (CRPCCommand)")

    sources_file.write_text(json.dumps(dict(sorted(sources.items())), indent=2) + "\n")


def write_json(fixture: str, value: object) -> None:
    target = FIXTURES / fixture
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
