"""`zbi plan`'s summary: what a person reads first, checked against the plan it summarises."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

from tests.conftest import ROOT, deep_merge
from zbi_infra import cost
from zbi_infra.cli import main
from zbi_infra.config import load_stack_config
from zbi_infra.plan.summary import facts, monthly_cost, summary
from zbi_infra.releases import LIGHTWALLETD, ZEBRAD


def config_of(plan_stack, project, stack: str, merge: dict | None = None):
    plan = plan_stack(stack, merge=merge) if merge else plan_stack(stack)
    values = dict(project.stack_file(stack).config)
    for key, patch in (merge or {}).items():
        values[key] = deep_merge(values[key], patch)
    return plan, load_stack_config(values)


def test_the_dev_summary_states_instances_nodes_volumes_endpoints_and_cost(plan_stack, project) -> None:
    plan, config = config_of(plan_stack, project, "dev")
    text = summary(plan, config, monthly_usd=monthly_cost(plan, config))
    testnet = config.instances["testnet"]
    node = f"{testnet.node.replicas} x zebrad {ZEBRAD.tag} ({testnet.node.storage.size_gib} GiB chain each)"
    assert f"  testnet: testnet, {node}, 2-6 x lightwalletd {LIGHTWALLETD.tag} (20 GiB cache each)" in text
    assert "public: testnet.lwd.zbi.example port 443" in text
    group = config.cluster.node_groups["general"]
    zones = len(plan.of_type("eks:index:ManagedNodeGroup"))
    assert f"general: {'/'.join(group.instance_types)} on-demand, {zones} zones x {group.desired_size} node" in text
    # Volumes: the sum over the StatefulSets' claim templates times their replicas, as the plan has them.
    total = 0.0
    for statefulset in plan.of_type("kubernetes:apps/v1:StatefulSet"):
        for claim in statefulset.inputs["spec"].get("volumeClaimTemplates", []):
            size = claim["spec"]["resources"]["requests"]["storage"]
            total += float(size.removesuffix("Gi")) * statefulset.inputs["spec"]["replicas"]
    assert f"{total:,.0f} GiB" in text
    estimate = cost.estimate(plan, config, prices=cost.load_prices(None), assumptions=cost.Assumptions())
    assert f"about ${estimate.total(reserved=False):,.0f} on demand" in text
    assert len(text.splitlines()) < 30  # a screenful, where the tree is 200 lines


def test_the_summary_follows_the_stack(plan_stack, project) -> None:
    merge = {"zbi:instances": {"testnet": {"network": "testnet", "node": {"replicas": 3, "storage": {"sizeGib": 200}}}}}
    plan, config = config_of(plan_stack, project, "dev", merge)
    text = summary(plan, config, monthly_usd=None)
    assert f"testnet: testnet, 3 x zebrad {ZEBRAD.tag} (200 GiB chain each)" in text
    assert "3 x 200 GiB data (zbi-testnet/zebrad)" in text
    assert "Monthly cost" not in text


def test_the_summary_says_whether_a_history_instance_caches_at_a_gateway(plan_stack, project) -> None:
    # The dev testnet instance has an access file, so a gateway to cache in; the cache's size is the config's.
    merge = {"zbi:instances": {"testnet": {"history": {"cache": {"sizeGib": 30}}}}}
    plan, config = config_of(plan_stack, project, "dev", merge)
    assert "cache: answers about final blocks (1,000 deep) at the gateway, 30 GiB per replica" in summary(
        plan, config, monthly_usd=None
    )
    # Turned off, the summary says nothing of a cache.
    merge = {"zbi:instances": {"testnet": {"history": {"cache": {"enabled": False}}}}}
    plan, config = config_of(plan_stack, project, "dev", merge)
    assert "cache:" not in summary(plan, config, monthly_usd=None)
    # An instance without an access file has no gateway: the summary says so, and how to give it one.
    merge = {"zbi:instances": {"archive": {"network": "testnet", "lightwallet": {"kind": "none"}, "history": {}}}}
    plan, config = config_of(plan_stack, project, "dev", merge)
    assert "cache: none (no access file, so no gateway to cache in: `zbi access init archive`)" in summary(
        plan, config, monthly_usd=None
    )


def test_a_local_stack_has_no_node_groups_and_no_aws_cost(plan_stack, project) -> None:
    plan, config = config_of(plan_stack, project, "local")
    assert monthly_cost(plan, config) is None and facts(plan).node_groups == []
    text = summary(plan, config, monthly_usd=None)
    assert "Nodes: the existing cluster's" in text and "pulumi up -s local" in text
    assert "private: reachable inside the cluster only (namespace zbi-regnet)" in text  # no LoadBalancer


def test_plan_prints_the_summary_and_the_tree_only_when_asked(capsys) -> None:
    assert main(["plan", "local"]) == 0
    short = capsys.readouterr().out
    assert "Instances:" in short and "resources to create" not in short and "├─ " not in short
    assert main(["plan", "local", "--tree"]) == 0
    full = capsys.readouterr().out
    assert full.startswith(short.split("\n\n", 1)[0])
    assert re.search(r"^\d+ resources to create:$", full, re.MULTILINE) and "├─ " in full


def test_version_is_the_packages_and_the_changelog_knows_it(capsys) -> None:
    try:
        main(["--version"])
    except SystemExit as exited:
        assert exited.code == 0
    printed = capsys.readouterr().out.strip()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert printed == f"zbi {version('zbi-infra')}" == f"zbi {declared}"
    assert f"\n## {declared}\n" in (ROOT / "CHANGELOG.md").read_text()
