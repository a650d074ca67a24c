"""History scaling, as Prometheus and `zbi cost` see it: the scaler's query and the per-replica panel run in promtool,
each scaling alert fires when it should and stays quiet otherwise, every metric read is named by its exporter's
source, and fast snapshot restore is priced from AWS's figures."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.alert_harness import evidence, promtool
from tests.archive_instance import ARCHIVE
from tests.conftest import UPSTREAM, PlanStack
from tests.test_cost import config_of
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.cost import Assumptions, estimate, load_prices
from zbi_infra.monitoring.history_scaling import (
    elastic_pods,
    history_scaling_panels,
    history_scaling_rules,
    modelled_seconds,
    per_replica_load,
)
from zbi_infra.monitoring.keda import hpa_name, load_query, replica_pods
from zbi_infra.node.history_scaling import claim_name
from zbi_infra.plan.engine import Plan
from zbi_infra.plan.render import manifest

P = load_prices(None)


@pytest.fixture(scope="module")
def plan(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:instances": {"archive": ARCHIVE}})


@pytest.fixture(scope="module")
def objects(plan: Plan) -> list[dict[str, Any]]:
    return [manifest(r) for r in plan.kubernetes_objects()]


# ---- promtool: the load query, the alerts -------------------------------------------------------------------


def rpc_series(pod: str, per_second: float, minutes: int = 10) -> dict[str, str]:
    step = per_second * 30  # the PodMonitor scrapes every 30 s
    return {
        "series": f'rpc_requests_total{{namespace="zbi-archive", pod="{pod}", method="getblock", status="success"}}',
        "values": f"0+{step:g}x{minutes * 2}",
    }


def ready_series(pod: str, ready: bool) -> list[dict[str, str]]:
    return [
        {
            "series": f'kube_pod_status_ready{{namespace="zbi-archive", pod="{pod}", condition="{c}"}}',
            "values": f"{int(ready == (c == 'true'))}x20",
        }
        for c in ("true", "false")
    ]


def run_promtool(tmp_path: Path, groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> str:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    unit = tmp_path / "unit.yml"
    unit.write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "tests": tests}, sort_keys=False))
    result = subprocess.run([promtool(), "test", "rules", str(unit)], capture_output=True, text=True, cwd=tmp_path)
    return result.stdout + result.stderr if result.returncode else ""


def test_the_scalers_query_is_the_instances_total_rate_and_the_panel_the_per_replica_load(tmp_path: Path) -> None:
    up = [{"series": f'up{{namespace="zbi-archive", pod="zebrad-{i}"}}', "values": "1x20"} for i in range(3)]
    busy = [rpc_series("zebrad-0", 10), rpc_series("zebrad-1", 20), rpc_series("zebrad-2", 30)]
    # Another instance's node and another workload's counter in this namespace do not count.
    busy.append({**rpc_series("zebrad-0", 99), "series": busy[0]["series"].replace("zbi-archive", "zbi-other")})
    busy.append({**rpc_series("lightwalletd-0", 99), "series": busy[0]["series"].replace("zebrad-0", "lightwalletd-0")})
    ready = [s for i in range(3) for s in ready_series(f"zebrad-{i}", i < 2)]
    cases = [
        # 60 requests/s in all: with a threshold of 50 per replica, the HPA wants ceil(60/50) = 2 replicas.
        (busy + up, load_query("archive", "zebrad"), 60),
        # Per ready replica: zebrad-2 is not ready (it is catching up and out of the Service): 60 / 2.
        (busy + up + ready, per_replica_load("archive", "zebrad"), 30),
        # Scraped, and no RPC call yet (zebrad's counter appears at the first): zero load, not an error.
        (up, load_query("archive", "zebrad"), 0),
    ]
    tests = [
        {
            "interval": "30s",
            "input_series": series,
            "promql_expr_test": [{"expr": expr, "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": value}]}],
        }
        for series, expr, value in cases
    ]
    # Not scraped at all: no answer, which KEDA (ignoreNullValues false) reports as an error and its fallback holds.
    tests.append(
        {
            "interval": "30s",
            "input_series": [{"series": 'up{namespace="zbi-other", pod="zebrad-0"}', "values": "1x20"}],
            "promql_expr_test": [{"expr": load_query("archive", "zebrad"), "eval_time": "5m", "exp_samples": []}],
        }
    )
    assert run_promtool(tmp_path, [], tests) == ""


RULES = history_scaling_rules(
    {"archive": InstanceConfig.model_validate({"network": "mainnet", "history": {"scaling": {"maxReplicas": 5}}})}
)
HPA = f'namespace="zbi-archive", horizontalpodautoscaler="{hpa_name("zebrad")}"'


def alert_test(alert: str, series: list[dict[str, str]], at: str, labels: dict[str, str] | None) -> dict[str, Any]:
    (rule,) = [r for r in RULES if r["alert"] == alert]
    expected = []
    if labels is not None:
        summary = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], rule["annotations"]["summary"])
        expected = [{"exp_labels": {**labels, **rule["labels"]}, "exp_annotations": {"summary": summary}}]
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}],
    }


def test_the_scaling_alerts_fire_when_they_should_and_not_otherwise(tmp_path: Path) -> None:
    seconds = modelled_seconds(InstanceConfig.model_validate({"network": "mainnet", "history": {}}))
    assert seconds is not None
    minutes = seconds // 60
    hpa_labels = {"namespace": "zbi-archive", "horizontalpodautoscaler": hpa_name("zebrad")}

    def hpa(current: int, maximum: int = 5) -> list[dict[str, str]]:
        return [
            {"series": f"kube_horizontalpodautoscaler_status_current_replicas{{{HPA}}}", "values": f"{current}x60"},
            {"series": f"kube_horizontalpodautoscaler_spec_max_replicas{{{HPA}}}", "values": f"{maximum}x60"},
        ]

    def pod(name: str, *, created_minutes_ago: int, ready: bool, at: int) -> list[dict[str, str]]:
        created = (at - created_minutes_ago) * 60
        return [
            {"series": f'kube_pod_created{{namespace="zbi-archive", pod="{name}"}}', "values": f"{created}x{at + 5}"},
            {
                "series": f'kube_pod_status_ready{{namespace="zbi-archive", pod="{name}", condition="false"}}',
                "values": f"{0 if ready else 1}x{at + 5}",
            },
        ]

    at = minutes + 30
    stale = 2 * 6 * 3600
    rotation = 'namespace="zbi-archive", cronjob="chain-snapshot-rotation"'
    scaler = f'{HPA}, condition="ScalingActive", status="false"'
    tests = [
        alert_test("HistoryReplicasAtCeiling", hpa(5), "40m", hpa_labels),
        alert_test("HistoryReplicasAtCeiling", hpa(4), "40m", None),
        # An added replica (ordinal 2, above the floor of 2), not ready past the modelled time: fires.
        alert_test(
            "HistoryScaleUpSlow",
            pod("zebrad-2", created_minutes_ago=minutes + 10, ready=False, at=at),
            f"{at}m",
            {"namespace": "zbi-archive", "pod": "zebrad-2"},
        ),
        # Within the modelled time, ready, or a floor replica (its own alerts cover it): quiet.
        alert_test(
            "HistoryScaleUpSlow", pod("zebrad-2", created_minutes_ago=minutes - 3, ready=False, at=at), f"{at}m", None
        ),
        alert_test(
            "HistoryScaleUpSlow", pod("zebrad-2", created_minutes_ago=minutes + 10, ready=True, at=at), f"{at}m", None
        ),
        alert_test(
            "HistoryScaleUpSlow", pod("zebrad-1", created_minutes_ago=minutes + 10, ready=False, at=at), f"{at}m", None
        ),
        alert_test(
            "HistoryScalerFailing",
            [{"series": f"kube_horizontalpodautoscaler_status_condition{{{scaler}}}", "values": "1x30"}],
            "20m",
            {**hpa_labels, "condition": "ScalingActive", "status": "false"},
        ),
        alert_test(
            "HistoryScalerFailing",
            [{"series": f"kube_horizontalpodautoscaler_status_condition{{{scaler}}}", "values": "0x30"}],
            "20m",
            None,
        ),
        # The last successful rotation 12 h + 1 min before, held 40 minutes: fires; a fresh one does not.
        alert_test(
            "HistorySnapshotStale",
            [{"series": f"kube_cronjob_status_last_successful_time{{{rotation}}}", "values": "-43260x60"}],
            "40m",
            {"namespace": "zbi-archive", "cronjob": "chain-snapshot-rotation"},
        ),
        alert_test(
            "HistorySnapshotStale",
            [{"series": f"kube_cronjob_status_last_successful_time{{{rotation}}}", "values": f"{-stale + 3600}x60"}],
            "40m",
            None,
        ),
        # Never succeeded, created 12 h + 1 min before: fires; created an hour before (the first run may take
        # hours): quiet.
        alert_test(
            "HistorySnapshotStale",
            [{"series": f"kube_cronjob_created{{{rotation}}}", "values": "-43260x60"}],
            "40m",
            {"namespace": "zbi-archive", "cronjob": "chain-snapshot-rotation"},
        ),
        alert_test(
            "HistorySnapshotStale",
            [{"series": f"kube_cronjob_created{{{rotation}}}", "values": "-3600x60"}],
            "40m",
            None,
        ),
        # Created long ago and succeeded recently: quiet.
        alert_test(
            "HistorySnapshotStale",
            [
                {"series": f"kube_cronjob_created{{{rotation}}}", "values": "-999999x60"},
                {"series": f"kube_cronjob_status_last_successful_time{{{rotation}}}", "values": "0x60"},
            ],
            "40m",
            None,
        ),
    ]
    assert run_promtool(tmp_path, [{"name": "zbi-history-scaling", "rules": RULES}], tests) == ""


def test_floor_claims_bear_the_names_the_statefulset_controller_looks_for() -> None:
    """The controller uses a claim that already has its replica's name; zBI's floor claims must be exactly those."""
    names = json.loads((UPSTREAM / "kubernetes" / "statefulset-names.json").read_text())
    for ordinal in (0, 1, 7):
        assert claim_name("zebrad", ordinal) == names["claim_name"] % ("data", "zebrad", ordinal)
        assert re.fullmatch(replica_pods("zebrad"), names["pod_name"] % ("zebrad", ordinal))


def test_the_elastic_pods_are_the_ordinals_above_the_floor() -> None:
    pattern = re.compile(elastic_pods("zebrad", 2, 5))
    assert [p for p in (f"zebrad-{i}" for i in range(7)) if pattern.fullmatch(p)] == [
        "zebrad-2",
        "zebrad-3",
        "zebrad-4",
    ]


def test_every_metric_the_scaling_rules_and_panels_read_is_named_by_its_source() -> None:
    config = InstanceConfig.model_validate({"network": "mainnet", "history": {}})
    exprs = [r["expr"] for r in history_scaling_rules({"archive": config})]
    exprs += [q for _, _, queries in history_scaling_panels("archive", config) for q, _ in queries]
    exprs.append(load_query("archive", "zebrad"))
    names = {m for e in exprs for m in re.findall(r"([a-z_:]+)\{", e)}
    assert names and names <= evidence(), names - evidence()


def test_the_dashboard_shows_replicas_against_the_ceiling_and_time_to_ready() -> None:
    config = InstanceConfig.model_validate({"network": "mainnet", "history": {}})
    titles = [title for title, _, _ in history_scaling_panels("archive", config)]
    assert any("ceiling" in t for t in titles) and any("scale-up to ready" in t for t in titles)
    assert history_scaling_panels("archive", InstanceConfig.model_validate({"network": "mainnet"})) == []


# ---- cost ---------------------------------------------------------------------------------------------------


def test_fast_snapshot_restore_is_priced_per_zone_hour_with_an_hour_per_rotation(
    plan: Plan, plan_stack: PlanStack
) -> None:
    config = config_of("dev", {"zbi:instances": {"archive": ARCHIVE}})
    lines = [
        line for line in estimate(plan, config, prices=P, assumptions=Assumptions()).lines if line.owner == "archive"
    ]
    (fsr,) = [line for line in lines if line.service == "EBS fast snapshot restore"]
    fast = [o for o in (manifest(r) for r in plan.kubernetes_objects()) if o.get("kind") == "VolumeSnapshotClass"]
    (zones,) = [
        o["parameters"]["fastSnapshotRestoreAvailabilityZones"].split(",")
        for o in fast
        if "fsr" in o["metadata"]["name"]
    ]
    hours = P["hoursPerMonth"]
    assert fsr.monthly_usd == pytest.approx(len(zones) * (hours + hours / 6) * P["ebsFastSnapshotRestoreHour"])
    assert (
        P["ebsFastSnapshotRestoreHour"]
        == json.loads((UPSTREAM / "aws" / "ebs-fast-snapshot-restore.json").read_text())[
            "price_per_snapshot_zone_hour_usd"
        ]
    )
    (stored,) = [line for line in lines if "rotating newest snapshot" in line.item]
    assert stored.monthly_usd == pytest.approx(500 * 0.7 * P["snapshotGibMonth"])
    # Off by default: no fast snapshot restore line, the snapshot still stored.
    plain = plan_stack("dev", merge={"zbi:instances": {"archive": {"network": "mainnet", "history": {}}}})
    plain_config = config_of("dev", {"zbi:instances": {"archive": {"network": "mainnet", "history": {}}}})
    services = {
        line.service
        for line in estimate(plain, plain_config, prices=P, assumptions=Assumptions()).lines
        if line.owner == "archive"
    }
    assert "EBS fast snapshot restore" not in services and "EBS snapshots" in services
