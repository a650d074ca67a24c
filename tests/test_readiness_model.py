"""zebrad's /ready behind the rendered readiness probe, over simulated months of blocks (tests/readiness_model.py).

Every input of the model that zBI chooses — the probe's period, thresholds and timeout, the replicas, and zebrad's
`ready_max_blocks_behind` / `ready_max_tip_age` — is read from the plan, so a change to any of them changes these
results. The upstream constants come from tests/fixtures/upstream/zebra/readiness-rule.json (zebra v6.3.0).
"""

from __future__ import annotations

import random
import tomllib
from typing import Any

import pytest

from tests.conftest import PlanStack
from tests.k8s_objects import one, pod_spec
from tests.readiness_model import (
    DAY,
    EVIDENCE,
    LOOP,
    Probe,
    Replica,
    Thresholds,
    bursty_testnet_chain,
    empty_service,
    lagging_removal_times,
    not_ready,
    poisson_chain,
    ready_failures,
    stalled_removal_times,
)
from zbi_infra.config.health import duration_seconds

MAINNET = {"zbi:instances": {"main": {"network": "mainnet", "lightwallet": {"kind": "none"}}}}


def rendered(plan: Any, namespace: str) -> tuple[Thresholds, Probe, int]:
    """The model's inputs, as the plan renders them: zebrad.toml's [health] and the StatefulSet's readiness probe."""
    health = tomllib.loads(one(plan, "ConfigMap", "zebrad-config", namespace)["data"]["zebrad.toml"])["health"]
    sts = one(plan, "StatefulSet", "zebrad", namespace)
    (container,) = [c for c in pod_spec(sts)["containers"] if c["name"] == "zebrad"]
    probe = container["readinessProbe"]
    assert probe["httpGet"]["path"] == "/ready"
    return (
        Thresholds(health["ready_max_blocks_behind"], duration_seconds(health["ready_max_tip_age"])),
        # Kubernetes defaults: period 10, failureThreshold 3, successThreshold 1, timeout 1.
        Probe(
            probe.get("periodSeconds", 10),
            probe.get("failureThreshold", 3),
            probe.get("successThreshold", 1),
            probe.get("timeoutSeconds", 1),
        ),
        sts["spec"]["replicas"],
    )


@pytest.fixture(scope="module")
def mainnet(plan_stack: PlanStack) -> tuple[Thresholds, Probe, int]:
    return rendered(plan_stack("dev", merge=MAINNET), "zbi-main")


@pytest.fixture(scope="module")
def testnet(plan_stack: PlanStack) -> tuple[Thresholds, Probe, int]:
    return rendered(plan_stack("dev"), "zbi-testnet")


@pytest.fixture(scope="module")
def mainnet_year() -> list[float]:
    return poisson_chain(random.Random(17), 360 * DAY)


def test_the_rule_as_upstream_writes_it() -> None:
    """One block, hand-computed: header at 0 s, in the state at 2 s, progress loop runs at 0, 5, 10, ... s."""
    replica = Replica(arrivals=[2.0, 1000.0], headers=[0.0, 990.0])
    failing = ready_failures(replica, Thresholds(2, 300), loop_phase=0.0, end=2000.0)
    # The loop sees the tip at 5 s. Whole seconds since the header reach 3 x 75 = 225 at the run at 225 s; the tip
    # age (since 5 s) exceeds 300 s only after 305 s. The next tip is seen at 1000 s; from there, 990 + 225 = 1215.
    assert failing == [(225.0, 1000.0), (1215.0, 2000.0)]
    # The tip-age rule decides when it comes first: 5 + 120 s.
    assert ready_failures(replica, Thresholds(2, 120), 0.0, 2000.0)[0] == (125.0, 1000.0)
    # The kubelet: probes at 1, 16, 31, ... s; the third failing one (at 256 s) removes the pod, the first
    # success after the gap (at 1006 s) brings it back.
    out = not_ready(failing, Probe(15, 3, 1, 5), phase=1.0, end=2000.0)
    assert out == [(256.0, 1006.0), (1246.0, 2000.0)]
    assert not_ready(failing, Probe(15, 3, 2, 5), phase=1.0, end=2000.0)[0] == (256.0, 1021.0)


def test_the_old_thresholds_empty_the_service_every_day(mainnet: tuple[Thresholds, Probe, int]) -> None:
    """zebrad's own defaults (2 blocks, 5 min) — what zBI rendered before — behind the same probe: the model shows the
    outage the issue describes, so it can tell a bad setting from a good one."""
    _, probe, replicas = mainnet
    upstream = Thresholds(EVIDENCE["default_ready_max_blocks_behind"], EVIDENCE["default_ready_max_tip_age_seconds"])
    mined = poisson_chain(random.Random(1), 30 * DAY)
    outage = empty_service(mined, replicas=replicas, thresholds=upstream, probe=probe, seed=2, days=30)
    assert outage.events_per_day > 20
    assert outage.minutes_per_month > 600  # against an error budget of 43.2 minutes


def test_mainnet_service_is_almost_never_empty(
    mainnet: tuple[Thresholds, Probe, int], mainnet_year: list[float]
) -> None:
    thresholds, probe, replicas = mainnet
    outage = empty_service(mainnet_year, replicas=replicas, thresholds=thresholds, probe=probe, seed=2, days=360)
    assert outage.minutes_per_month <= 1.0, outage


def test_testnet_bursts_do_not_empty_the_service(testnet: tuple[Thresholds, Probe, int]) -> None:
    thresholds, probe, replicas = testnet
    mined = bursty_testnet_chain(random.Random(3), 180 * DAY)
    outage = empty_service(mined, replicas=replicas, thresholds=thresholds, probe=probe, seed=4, days=180)
    assert outage.minutes_per_month <= 1.0, outage
    # Mainnet's thresholds would not do on testnet: its quiet stretches wait for minimum-difficulty blocks.
    tight = Thresholds(10, 900)
    assert (
        empty_service(mined, replicas=replicas, thresholds=tight, probe=probe, seed=4, days=180).minutes_per_month > 5
    )


def test_a_replica_twenty_blocks_behind_leaves_within_two_minutes(
    mainnet: tuple[Thresholds, Probe, int], mainnet_year: list[float]
) -> None:
    thresholds, probe, _ = mainnet
    mined = mainnet_year[: 60 * 1152]
    # A slow replica that keeps 20 blocks behind, Ready at a random moment.
    slow = sorted(lagging_removal_times(mined, behind=20, thresholds=thresholds, probe=probe, seed=6, trials=2000))
    assert sum(t <= 120 for t in slow) / len(slow) >= 0.99, slow[-25:]
    # Its fastest removal is the progress loop plus failureThreshold probes.
    assert slow[0] <= LOOP + probe.failure_threshold * probe.period
    # A replica that stalls: from the moment the network is 20 blocks ahead (it left before, mostly).
    stalled = sorted(stalled_removal_times(mined, behind=20, thresholds=thresholds, probe=probe, seed=7, trials=2000))
    assert sum(t <= 120 for t in stalled) / len(stalled) >= 0.99, stalled[-25:]


def test_looser_rendered_thresholds_show_in_the_model(
    plan_stack: PlanStack, mainnet: tuple[Thresholds, Probe, int], mainnet_year: list[float]
) -> None:
    """The model reads what the plan renders: raised thresholds, within their bounds, slow the removal of a lagging
    replica beyond two minutes, which the test above would catch."""
    merge = {"zbi:instances": {"main": {**MAINNET["zbi:instances"]["main"], "node": {"readiness": {
        "readyMaxBlocksBehind": 19, "readyMaxTipAge": "1h"}}}}}  # fmt: skip
    loose, probe, _ = rendered(plan_stack("dev", merge=merge), "zbi-main")
    assert loose == Thresholds(19, 3600)
    mined = mainnet_year[: 60 * 1152]
    slow = lagging_removal_times(mined, behind=20, thresholds=loose, probe=probe, seed=6, trials=500)
    assert sum(t <= 120 for t in slow) / len(slow) < 0.9
