"""The edges of zBI's alert rules under `promtool test rules` (two failed probes of 120 in an hour page, one does
not; gRPC INTERNAL and UNAVAILABLE are gateway errors; a failed CloudWatch scrape does not reset `for:`), and the
mutant rules, written the way issues found them, that these edges fail against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.alert_harness import GROUPS, run_cases
from tests.alert_series import BOUNDARY, CASES


def test_the_edges_of_the_alerts(tmp_path: Path) -> None:
    result = run_cases(tmp_path, GROUPS, BOUNDARY)
    assert result.returncode == 0, result.stdout + result.stderr


def mutated(alert: str, old: str, new: str) -> list[dict[str, Any]]:
    groups = json.loads(json.dumps(GROUPS))
    for group in groups:
        for rule in group["rules"]:
            if rule["alert"] == alert:
                assert old in rule["expr"], (alert, old)
                rule["expr"] = rule["expr"].replace(old, new)
    return groups


def test_the_edge_cases_kill_their_mutants(tmp_path: Path) -> None:
    """Each edge case fails against the rule it guards, written the way the issue found it."""
    mutants = {
        # GatewayErrors without gRPC INTERNAL/UNAVAILABLE.
        "GatewayErrors": mutated("GatewayErrors", '"5[0-9][0-9]|13|14"', '"5[0-9][0-9]"'),
        # The CloudWatch exporter's series read bare, at the mercy of the lookback.
        "CloudWatchExporterFailing": mutated(
            "CloudWatchExporterFailing",
            'max(max_over_time(cloudwatch_exporter_scrape_error{job="cloudwatch-exporter"}[15m]))',
            'max(cloudwatch_exporter_scrape_error{job="cloudwatch-exporter"})',
        ),
        # No absent(): a lost Probe is silent.
        "EndpointProbesMissing": mutated("EndpointProbesMissing", ' or on () absent(up{job="zbi-endpoints"})', ""),
    }
    for alert, groups in mutants.items():
        cases = [c for c in BOUNDARY if c[0] == alert and c[4] is not None]
        assert cases, alert
        for case in cases:
            assert run_cases(tmp_path, groups, [case]).returncode != 0, (alert, case)
    # The light-wallet maximum read across every HPA of the namespace pages for the gateway's autoscaler.
    everyone = mutated("LightWalletAtMaxReplicas", ', horizontalpodautoscaler=~"lightwalletd|zaino"', "")
    interval, at, _, _, quiet = CASES["LightWalletAtMaxReplicas"]
    case = ("LightWalletAtMaxReplicas", interval, at, quiet, None)
    assert run_cases(tmp_path, everyone, [case]).returncode != 0
