"""The history cache's alerts and dashboard panels: accepted by promtool, each proven by `promtool test rules` to fire
on series that should fire it and to stay quiet on the nearest series that should not; only instances whose gateway
caches get them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests import alert_harness
from tests.alert_harness import promtool
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.monitoring.alerts import alert_rules
from zbi_infra.monitoring.dashboards import instance_dashboard
from zbi_infra.render.gateway_metrics import metric_names, mtail_program

INSTANCES = {
    "history": InstanceConfig.model_validate({"network": "mainnet", "history": {"cache": {"sizeGib": 10}}}),
    "plain": InstanceConfig.model_validate({"network": "testnet"}),
}
GROUPS = alert_rules(INSTANCES, probed_endpoints=False, gateways=["history", "plain"])
NS = 'namespace="zbi-history"'
GIB = 1024**3


RULES = {rule["alert"]: rule for group in GROUPS for rule in group["rules"]}


def run_cases(tmp_path: Path, cases: list[tuple[str, str, str, list[tuple[str, str]], Any]]) -> None:
    """promtool check and test of the rules with these (alert, interval, eval time, series, labels or None) cases."""
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": GROUPS}, sort_keys=False))
    checked = subprocess.run(
        [promtool(), "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    result = alert_harness.run_cases(tmp_path, GROUPS, cases, rules=RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def cache_series(outcome: str) -> str:
    return (
        f'zbi_gateway_cache_requests_total{{{NS}, pod="gateway-0", user="exchange", method="getblock", '
        f'outcome="{outcome}"}}'
    )


def volume(kind: str) -> str:
    return f'kubelet_volume_stats_{kind}_bytes{{{NS}, persistentvolumeclaim="gateway-0-history-cache"}}'


def per_minute(per_second: float, minutes: int = 120) -> str:
    return f"0+{per_second * 60:g}x{minutes}"


def test_only_caching_instances_get_the_cache_alerts() -> None:
    (group,) = [g for g in GROUPS if g["name"] == "zbi-gateway-cache"]
    assert all('namespace=~"zbi-history"' in rule["expr"] for rule in group["rules"])
    assert not [g for g in alert_rules(INSTANCES, probed_endpoints=False, gateways=["plain"]) if "cache" in g["name"]]
    # The metrics the rules read are the ones the gateway's mtail program exports (live: test_history_cache_live).
    assert "zbi_gateway_cache_stored_bytes_total" in metric_names()
    assert "counter zbi_gateway_cache_requests_total by user, method, outcome" in mtail_program()


def test_the_cache_alerts_fire_when_they_should(tmp_path: Path) -> None:
    full = [(volume("capacity"), f"{10 * GIB}x120"), (volume("used"), f"{int(8.4 * GIB)}x120")]
    half_full = [(volume("capacity"), f"{10 * GIB}x120"), (volume("used"), f"{5 * GIB}x120")]
    missing_a_lot = [(cache_series("hit"), per_minute(1)), (cache_series("miss"), per_minute(4))]
    mostly_hits = [(cache_series("hit"), per_minute(4)), (cache_series("miss"), per_minute(1))]
    quiet_traffic = [(cache_series("hit"), per_minute(0.1)), (cache_series("miss"), per_minute(0.4))]
    labels = {"namespace": "zbi-history"}
    cases = [
        ("GatewayCacheTooSmall", "1m", "100m", full + missing_a_lot, labels),
        ("GatewayCacheTooSmall", "1m", "100m", half_full + missing_a_lot, None),  # not evicting: still warming up
        ("GatewayCacheTooSmall", "1m", "100m", full + mostly_hits, None),
        ("GatewayCacheTooSmall", "1m", "100m", full + quiet_traffic, None),
        ("GatewayCacheVolumeFull", "1m", "30m",
         [(volume("capacity"), f"{10 * GIB}x40"), (volume("used"), f"{int(9.7 * GIB)}x40")], labels),
        ("GatewayCacheVolumeFull", "1m", "30m", full, None),  # at nginx's max_size: as designed
    ]  # fmt: skip
    run_cases(tmp_path, cases)


def test_the_dashboard_charts_the_cache_of_caching_instances_only() -> None:
    cached = json.dumps(instance_dashboard("history", INSTANCES["history"], gateway=True))
    plain = json.dumps(instance_dashboard("plain", INSTANCES["plain"], gateway=True))
    for title in ("History cache hit ratio", "History cache volume", "History cache stored and evicted"):
        assert title in cached and title not in plain
    assert 'outcome=\\"hit\\"' in cached and "kubelet_volume_stats_used_bytes" in cached
