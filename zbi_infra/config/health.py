"""`node.readiness`: the thresholds of a Zebra-family node's `/ready` (zebrad, and forks with the same `[health]`).

zebrad 6.3.0 estimates its lag from the wall clock: `(now - tip block time) div 75 s`, and also fails `/ready` when its
own tip has not grown for `ready_max_tip_age` (tests/fixtures/upstream/zebra/readiness-rule.json). Both clocks run on
every replica at once during an ordinary gap between blocks, so a threshold is the length of block gap after which
*every* replica leaves the RPC Service together. Zcash gaps are exponential (mean 75 s): the bounds below keep that
rare enough for the 99.9% SLO, by the model in tests/readiness_model.py (docs in README, "Monitoring, self-healing and
availability"), while a replica that is itself behind still leaves within two minutes.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from zbi_infra.config.base import StrictInt, StrictModel

# Below these the model gives minutes a month with no ready replica at all (10 blocks ≈ 13.75 min of gap, which one
# gap in ~60,000 reaches); above them a replica a hundred blocks behind (past Zebra's finality depth, 99) would serve.
MIN_BLOCKS_BEHIND, MAX_BLOCKS_BEHIND = 10, 99
MIN_TIP_AGE_SECONDS, MAX_TIP_AGE_SECONDS = 15 * 60, 2 * 3600
_DURATION = re.compile(r"^([1-9][0-9]{0,5})(s|m|h)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def duration_seconds(text: str) -> int:
    """Seconds of a humantime duration as zBI writes it ("15m", "900s", "1h"); zebrad reads the same text."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration. Fix: write a whole number of s, m or h, e.g. 15m")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class ReadinessConfig(StrictModel):
    """Tunable within bounds; omitted, the network's defaults apply (`default_readiness`)."""

    # zebrad's /ready fails when its estimated lag is more blocks than this.
    ready_max_blocks_behind: StrictInt = Field(ge=MIN_BLOCKS_BEHIND, le=MAX_BLOCKS_BEHIND)
    # zebrad's /ready fails when its tip has not grown for this long (e.g. 15m).
    ready_max_tip_age: Annotated[str, StringConstraints(max_length=8)]

    @field_validator("ready_max_tip_age")
    @classmethod
    def _tip_age_in_bounds(cls, text: str) -> str:
        seconds = duration_seconds(text)
        if not MIN_TIP_AGE_SECONDS <= seconds <= MAX_TIP_AGE_SECONDS:
            raise ValueError(
                f"{text} is outside {MIN_TIP_AGE_SECONDS // 60}m..{MAX_TIP_AGE_SECONDS // 3600}h: shorter, every "
                "replica leaves the RPC Service together during ordinary block gaps; longer, a stalled node keeps "
                "serving. Fix: pick a value in that range"
            )
        return text

    @property
    def tip_age_seconds(self) -> int:
        return duration_seconds(self.ready_max_tip_age)


# Mainnet: gaps are exponential around 75 s. Testnet: hash rate comes in bursts, and in quiet stretches a block often
# waits for the minimum-difficulty allowance (6 x 75 s = 7.5 min, ZIP 208), so it gets twice the room.
MAINNET_READINESS = ReadinessConfig(ready_max_blocks_behind=10, ready_max_tip_age="15m")
TESTNET_READINESS = ReadinessConfig(ready_max_blocks_behind=24, ready_max_tip_age="30m")


def default_readiness(mainnet: bool) -> ReadinessConfig:
    return MAINNET_READINESS if mainnet else TESTNET_READINESS
