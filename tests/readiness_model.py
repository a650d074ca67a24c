"""A model of zebrad's `/ready` behind the kubelet's readiness probe, over simulated block arrivals.

zebrad 6.3.0 (tests/fixtures/upstream/zebra/readiness-rule.json cites each line):
- a progress loop runs every 5 s; at each run it estimates the network tip from the wall clock,
  `remaining = max(0, whole_seconds(now - tip block header time) div 75)`, and, when its own height grew since the
  previous run, records that run's instant as the time the tip last grew;
- `/ready` answers from the latest run's `remaining` and from `tip_age = elapsed since the tip last grew`, measured at
  the request: unready if `tip_age > ready_max_tip_age`, else ready if `remaining <= ready_max_blocks_behind`.
  (The peer and `is_close_to_tip` gates are taken as passed: the model looks at a synced node with peers, the case
  where only these two thresholds decide.)
The kubelet (pkg/kubelet/prober): a probe every `periodSeconds` from a random phase; `failureThreshold` consecutive
failures make the pod NotReady (its endpoint leaves the Service), `successThreshold` consecutive successes make it
Ready again; an answer slower than `timeoutSeconds` is a failure. zebrad answers from in-memory values.

Pure Python and event-driven: each replica's `/ready` fails only in few time intervals (one candidate per block), and
only the probes inside those intervals change a pod's state, so a simulated year runs in about a second.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

EVIDENCE = json.loads((Path(__file__).parent / "fixtures" / "upstream" / "zebra" / "readiness-rule.json").read_text())[
    "constants"
]
SPACING = EVIDENCE["post_blossom_target_spacing_seconds"]
LOOP = EVIDENCE["progress_loop_seconds"]
MIN_DIFFICULTY_GAP = SPACING * EVIDENCE["testnet_minimum_difficulty_gap_multiplier"]
DAY = 86_400.0
MONTH = 30 * DAY
# Seconds zebrad takes to answer /ready: it reads two watch channels, no I/O.
ANSWER_SECONDS = 0.001

Interval = tuple[float, float]


@dataclass(frozen=True)
class Thresholds:
    max_blocks_behind: int
    max_tip_age: float


@dataclass(frozen=True)
class Probe:
    period: float
    failure_threshold: int
    success_threshold: int
    timeout: float


@dataclass(frozen=True)
class Replica:
    """When each block reached this replica's state, and the header time of that block."""

    arrivals: list[float]
    headers: list[float]


# --- block arrivals -----------------------------------------------------------------------------------------------


def poisson_chain(rng: random.Random, seconds: float, mean: float = SPACING) -> list[float]:
    """Mainnet: memoryless mining, exponential gaps around the 75 s target."""
    times, t = [], 0.0
    while t < seconds:
        t += rng.expovariate(1 / mean)
        times.append(t)
    return times


def bursty_testnet_chain(rng: random.Random, seconds: float) -> list[float]:
    """Testnet: busy stretches (a large miner on, gaps around 20 s, hours long) alternate with quiet ones (hours long)
    where a block waits either for the little hash rate left (mean 30 min) or for the minimum-difficulty allowance
    (6 x 75 s after the previous block, ZIP 208) and then the first CPU miner to find one (mean 90 s)."""
    times, t = [], 0.0
    busy = True
    while t < seconds:
        stretch_end = t + rng.expovariate(1 / (3 * 3600 if busy else 9 * 3600))
        while t < min(stretch_end, seconds):
            if busy:
                gap = rng.expovariate(1 / 20)
            else:
                gap = min(rng.expovariate(1 / 1800), MIN_DIFFICULTY_GAP + rng.expovariate(1 / 90))
            t += gap
            times.append(t)
        busy = not busy
    return times


def replica_view(rng: random.Random, mined: Sequence[float], *, behind: int = 0) -> Replica:
    """A replica's view: each block arrives 0.5-5 s after it was mined (propagation and verification), `behind`
    blocks late for a replica that lags; headers carry the miner's template time, 0-30 s before the block was found
    (pools refresh templates about that often), which only makes the wall-clock estimate older."""
    arrivals, headers, last = [], [], 0.0
    for height, mined_at in enumerate(mined):
        if height + behind >= len(mined):
            break
        last = max(last, mined[height + behind] + rng.uniform(0.5, 5.0))
        arrivals.append(last)
        headers.append(mined_at - rng.uniform(0.0, 30.0))
    return Replica(arrivals, headers)


# --- zebrad's /ready ----------------------------------------------------------------------------------------------


def ready_failures(replica: Replica, thresholds: Thresholds, loop_phase: float, end: float) -> list[Interval]:
    """The intervals of request times at which `/ready` answers 503, per zebrad 6.3.0's rule."""

    def next_loop(t: float) -> float:  # the first progress-loop run at or after t
        return loop_phase + LOOP * math.ceil((t - loop_phase) / LOOP)

    failing: list[Interval] = []
    grown = [next_loop(a) for a in replica.arrivals]
    for height, grew_at in enumerate(grown):
        until = grown[height + 1] if height + 1 < len(grown) else end
        if until <= grew_at:
            continue  # two blocks arrived between two loop runs: the loop never saw this tip
        # The loop run whose whole-second difference reaches (max + 1) x 75 is the first to report too many blocks.
        lag_fails_from = next_loop(max(grew_at, replica.headers[height] + (thresholds.max_blocks_behind + 1) * SPACING))
        start = min(lag_fails_from, grew_at + thresholds.max_tip_age)
        if start < until:
            failing.append((start, until))
    return failing


# --- the kubelet --------------------------------------------------------------------------------------------------


def _failing_probe_runs(failing: list[Interval], probe: Probe, phase: float) -> list[tuple[int, int]]:
    """Runs of consecutive failing probe indices (probe n at phase + n x period)."""
    runs: list[tuple[int, int]] = []
    for start, stop in failing:
        first = math.ceil((start - phase) / probe.period)
        last = math.ceil((stop - phase) / probe.period) - 1
        if first > last:
            continue
        if runs and first <= runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], max(runs[-1][1], last))
        else:
            runs.append((first, last))
    return runs


def not_ready(failing: list[Interval], probe: Probe, phase: float, end: float) -> list[Interval]:
    """When the pod is NotReady (out of the Service's endpoints), starting Ready."""
    if probe.timeout < ANSWER_SECONDS:
        return [(0.0, end)]
    at = lambda n: phase + n * probe.period  # noqa: E731
    runs = _failing_probe_runs(failing, probe, phase)
    out: list[Interval] = []
    ready, left_at = True, 0.0
    for index, (first, last) in enumerate(runs):
        if ready:
            if last - first + 1 < probe.failure_threshold:
                continue
            ready, left_at = False, at(first + probe.failure_threshold - 1)
        next_first = runs[index + 1][0] if index + 1 < len(runs) else math.inf
        if next_first - (last + 1) >= probe.success_threshold:
            ready = True
            out.append((left_at, min(at(last + probe.success_threshold), end)))
    if not ready:
        out.append((left_at, end))
    return out


def first_removal_after(failing: list[Interval], probe: Probe, phase: float, starts: list[float]) -> list[float]:
    """Seconds from each start (pod Ready then) until the kubelet marks it NotReady."""
    runs = _failing_probe_runs(failing, probe, phase)
    lasts = [last for _, last in runs]
    removals = []
    for t0 in starts:
        start = math.ceil((t0 - phase) / probe.period)
        removal = math.inf
        for first, last in runs[bisect.bisect_left(lasts, start) :]:
            first = max(first, start)
            if last - first + 1 >= probe.failure_threshold:
                removal = phase + (first + probe.failure_threshold - 1) * probe.period - t0
                break
        removals.append(removal)
    return removals


# --- the Service --------------------------------------------------------------------------------------------------


def intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, stop = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < stop:
            out.append((start, stop))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


@dataclass(frozen=True)
class Outage:
    seconds: float
    events: int
    simulated: float

    @property
    def minutes_per_month(self) -> float:
        return self.seconds / 60 * MONTH / self.simulated

    @property
    def events_per_day(self) -> float:
        return self.events * DAY / self.simulated


def empty_service(
    mined: list[float], *, replicas: int, thresholds: Thresholds, probe: Probe, seed: int, days: float
) -> Outage:
    """Time during which no replica is Ready: the RPC Service has no endpoint."""
    rng = random.Random(seed)
    end = days * DAY
    empty: list[Interval] | None = None
    for _ in range(replicas):
        replica = replica_view(rng, mined)
        failing = ready_failures(replica, thresholds, rng.uniform(0, LOOP), end)
        out = not_ready(failing, probe, rng.uniform(0, probe.period), end)
        empty = out if empty is None else intersect(empty, out)
    assert empty is not None
    return Outage(sum(stop - start for start, stop in empty), len(empty), end)


def lagging_removal_times(
    mined: list[float], *, behind: int, thresholds: Thresholds, probe: Probe, seed: int, trials: int
) -> list[float]:
    """A replica that follows `behind` blocks late, Ready at a random moment: seconds until it is NotReady."""
    rng = random.Random(seed)
    end = mined[-1]
    replica = replica_view(rng, mined, behind=behind)
    failing = ready_failures(replica, thresholds, rng.uniform(0, LOOP), end)
    phase = rng.uniform(0, probe.period)
    # Start only once the replica is behind by `behind` blocks (after the first arrivals).
    starts = [rng.uniform(replica.arrivals[0] + DAY, end - DAY) for _ in range(trials)]
    return first_removal_after(failing, probe, phase, starts)


def stalled_removal_times(
    mined: list[float], *, behind: int, thresholds: Thresholds, probe: Probe, seed: int, trials: int
) -> list[float]:
    """A replica that stops receiving blocks at a random moment: seconds from the moment it is `behind` blocks behind
    the network until it is NotReady (negative: it had already left)."""
    rng = random.Random(seed)
    times = []
    for _ in range(trials):
        stall = rng.uniform(DAY, mined[-1] - DAY)
        height = bisect.bisect_left(mined, stall)  # blocks mined before the stall reached the replica
        replica = replica_view(rng, mined[max(0, height - 50) : height])  # the recent past is all the rule reads
        window_end = mined[height + behind - 1] + 3600
        failing = ready_failures(replica, thresholds, rng.uniform(0, LOOP), window_end)
        phase = rng.uniform(0, probe.period)
        behind_at = mined[height + behind - 1]
        (removal,) = first_removal_after(failing, probe, phase, [stall])
        times.append(stall + removal - behind_at)
    return times
