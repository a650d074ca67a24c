"""History scaling's settings and its time-to-serving model: the floor and the ceiling a history instance may set,
refused with the field named when wrong or when the stack cannot scale, and the model of how long a new replica
takes to serve, checked for its arithmetic, its direction, AWS's fast snapshot restore formulas and the alert
threshold it sets. The rendered objects are tests/test_history_scaling_objects.py's."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import ValidationError

from tests.conftest import UPSTREAM
from tests.test_cost import config_of
from tests.test_history_scaling_objects import ARCHIVE
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.errors import ConfigError
from zbi_infra.monitoring.history_scaling import (
    history_scaling_rules,
    modelled_seconds,
)
from zbi_infra.scale_up_model import (
    BLOCK_SPACING_SECONDS,
    ScaleUpInputs,
    fsr_bucket,
    fsr_fill_per_hour,
    fsr_first_credit_seconds,
    fsr_volumes_at_once,
    scale_up,
)

# ---- config ----------------------------------------------------------------------------------------------------


def instance(history: dict[str, Any], **node: Any) -> InstanceConfig:
    return InstanceConfig.model_validate({"network": "mainnet", "node": node, "history": history})


def test_the_floor_is_the_higher_of_min_replicas_and_node_replicas() -> None:
    assert instance({"scaling": {"minReplicas": 3}}, replicas=2).history.scaling.floor(2) == 3
    assert instance({"scaling": {"minReplicas": 2}}, replicas=4).history.scaling.floor(4) == 4


@pytest.mark.parametrize(
    ("history", "node", "words"),
    [
        ({"scaling": {"minReplicas": 1}}, {}, "minReplicas"),
        ({"scaling": {"minReplicas": 4, "maxReplicas": 3}}, {}, "maxReplicas (3) is below minReplicas (4)"),
        ({"scaling": {"maxReplicas": 3}}, {"replicas": 5}, "below node.replicas (5)"),
        ({"scaling": {"catchUpBlocksPerSecond": 0}}, {}, "catchUpBlocksPerSecond"),
        ({"scaling": {"catchUpBlocksPerSecond": "fast"}}, {}, "catchUpBlocksPerSecond"),
        ({"scaling": {"snapshotIntervalHours": 25}}, {}, "snapshotIntervalHours"),
    ],
)
def test_bad_scaling_settings_are_refused_naming_the_field(history: dict, node: dict, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        instance(history, **node)
    assert words in str(caught.value)


def test_scaling_needs_the_stacks_prometheus_and_fsr_needs_ebs() -> None:
    with pytest.raises(ConfigError, match=r"zbi:monitoring\.enabled is false"):
        config_of("dev", {"zbi:instances": {"archive": ARCHIVE}, "zbi:monitoring": {"enabled": False}})
    with pytest.raises(ConfigError, match="fastSnapshotRestore: an EBS feature"):
        config_of("local", {"zbi:instances": {"archive": ARCHIVE}})


# ---- the time-to-serving model -------------------------------------------------------------------------------


def inputs(**overrides: Any) -> ScaleUpInputs:
    base: dict[str, Any] = {
        "volume_gib": 500,
        "snapshot_interval_hours": 6,
        "catch_up_blocks_per_second": 1.0,
        "fast_snapshot_restore": False,
    }
    return ScaleUpInputs(**{**base, **overrides})


def test_the_model_adds_its_terms_as_a_hand_computation_does() -> None:
    estimate = scale_up(inputs())
    terms = {t.name: t.seconds for t in estimate.terms}
    # 120 s rate window + 30 s KEDA poll + 15 s HPA sync; a 240 s node; a 60 s volume; 5 GiB at 40 MiB/s lazily.
    assert terms["detect"] == 165 and terms["node"] == 240 and terms["volume"] == 60
    assert terms["cold reads"] == pytest.approx(5 * 1024 / 40)
    before = 165 + 240 + 60 + 128
    # The snapshot is up to 6 h plus a 15 min rotation old.
    blocks = math.ceil((6 * 3600 + 900 + before) / 75) - 10
    assert estimate.blocks_behind == blocks == 298
    # The chain keeps growing by one block per 75 s while the replica catches up.
    assert terms["catch-up"] == pytest.approx(blocks / (1.0 - 1 / 75))
    assert estimate.serving_seconds == pytest.approx(before + blocks / (1 - 1 / 75) + 15)


def test_the_model_moves_the_right_way() -> None:
    def total(**overrides: Any) -> float:
        return scale_up(inputs(**overrides)).serving_seconds

    intervals = [total(snapshot_interval_hours=h) for h in (1, 2, 6, 12, 24)]
    assert intervals == sorted(intervals) and len(set(intervals)) == 5
    rates = [total(catch_up_blocks_per_second=r) for r in (0.05, 0.2, 1, 5, 50)]
    assert rates == sorted(rates, reverse=True) and len(set(rates)) == 5
    assert total(fast_snapshot_restore=True) < total()
    # Spare room saves the node's 240 s and the blocks mined meanwhile.
    assert total(needs_new_node=False) < total() - 240
    # A looser readiness threshold serves sooner (fewer blocks to fetch).
    assert total(ready_max_blocks_behind=24) < total(ready_max_blocks_behind=10)


def test_a_catch_up_rate_at_or_below_the_chains_own_is_refused() -> None:
    with pytest.raises(ValueError, match="never catch up"):
        inputs(catch_up_blocks_per_second=1 / BLOCK_SPACING_SECONDS)
    assert scale_up(inputs(catch_up_blocks_per_second=0.05)).serving_seconds > 6 * 3600 / 75 / 0.05 * 0.9


def test_fast_snapshot_restore_credits_follow_awss_formulas() -> None:
    facts = json.loads((UPSTREAM / "aws" / "ebs-fast-snapshot-restore.json").read_text())
    example = facts["examples"]
    assert fsr_fill_per_hour(example["snapshot_gib"]) == example["fill_per_hour"]
    assert fsr_bucket(example["snapshot_gib"]) == example["bucket"]
    # 100 GiB: the 10-credit cap; 4 TiB: one credit every four hours, a bucket of one.
    assert fsr_bucket(100) == 10 and fsr_fill_per_hour(100) == 10
    assert fsr_bucket(4096) == 1 and fsr_fill_per_hour(4096) == 0.25
    assert fsr_volumes_at_once(500) == 2
    # 500 GiB: optimising takes 500/1024 h, the first credit 500/1024 h more.
    assert fsr_first_credit_seconds(500) == pytest.approx(2 * 3600 * 500 / 1024)
    assert facts["optimizing_minutes_per_tib"] * 60 == 3600


def test_the_default_catch_up_rate_is_well_below_zebras_published_sync_average() -> None:
    """Past the last checkpoint zebrad verifies every block in full: the default assumes a tenth of the average rate
    of Zebra's published mainnet sync, or less."""
    sync = json.loads((UPSTREAM / "zebra" / "sync-time.json").read_text())
    average = sync["mainnet_height_at_release"] / (sync["mainnet_days"] * 86400)
    assert 13 < average < 14
    default = instance({}).history.scaling.catch_up_blocks_per_second
    assert default <= average / 10


def test_the_alert_threshold_is_the_models_total_from_the_pods_creation() -> None:
    config = instance({"scaling": {"snapshotIntervalHours": 12}})
    seconds = modelled_seconds(config)
    (slow,) = [r for r in history_scaling_rules({"archive": config}) if r["alert"] == "HistoryScaleUpSlow"]
    assert f"> {seconds} " in slow["expr"] and "kube_pod_created" in slow["expr"]
    # The detection term passes before the pod exists; the alert counts from the pod's creation.
    total = scale_up(inputs(snapshot_interval_hours=12, throughput_mibps=250)).serving_seconds
    assert seconds == round(total - 165)
