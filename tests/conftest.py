from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zbi_infra import image_digests
from zbi_infra.config.stack import AS_OF_ENV
from zbi_infra.plan.engine import Plan, evaluate
from zbi_infra.plan.project import Project, StackFile, find_project
from zbi_infra.render.gateway_engines import ENGINES, Engine

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream"


# Release support depends on the date (zebrad stops on Mainnet 105 days after its release): the suite evaluates
# every plan as of one fixed day inside 6.3.0's support window, and tests of the date logic pass their own days.
# tests/test_releases.py also plans at the real date (its `real_date` fixture drops this), as a user does.
AS_OF = "2026-09-01"


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers per usable CPU. The live tests spend much of their time waiting (a tip's second to
    pass, a node's delay, nginx starting), so one worker per CPU leaves CPUs idle: on 2 CPUs, 4 workers ran the
    suite in 7 min 27 s where 2 took 9 min 14 s (1,430 tests, same machine)."""
    return 2 * len(os.sched_getaffinity(0))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (a stable sort keeps every other order): started last, one of them would keep a worker
    busy for most of a minute while the others stand idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Engine:
    """The gateway's scripting engine a live gateway test runs with: each such test runs with both (the module's
    gateway is started once per engine)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def digest_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A digest table for every default image, in place of the committed one (test digests: the SHA-256 of the
    reference, not a registry's answer)."""
    digests = {
        image: "sha256:" + hashlib.sha256(image.encode()).hexdigest() for image in image_digests.default_images()
    }
    path = tmp_path / "image-digests.json"
    path.write_text(json.dumps({"images": {i: {"digest": d} for i, d in digests.items()}}))
    monkeypatch.setattr(image_digests, "DIGESTS_FILE", path)
    image_digests.recorded_digests.cache_clear()
    yield digests
    image_digests.recorded_digests.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def _plan_as_of_a_fixed_day() -> Iterator[None]:
    previous = os.environ.get(AS_OF_ENV)
    os.environ[AS_OF_ENV] = AS_OF
    yield
    if previous is None:
        os.environ.pop(AS_OF_ENV, None)
    else:
        os.environ[AS_OF_ENV] = previous


@pytest.fixture(scope="session")
def project() -> Project:
    return find_project(ROOT)


PlanStack = Callable[..., Plan]


@pytest.fixture(scope="session")
def plan_stack(project: Project) -> PlanStack:
    """Evaluate a stack of this repo under mocks, optionally with some config keys replaced or deep-merged."""
    cache: dict[str, Plan] = {}

    def run(stack: str, *, merge: dict[str, Any] | None = None, stack_outputs: dict | None = None) -> Plan:
        stack_file = project.stack_file(stack)
        if not merge and not stack_outputs and stack in cache:
            return cache[stack]
        config = copy.deepcopy(stack_file.config)
        for key, patch in (merge or {}).items():
            base = config.get(key)
            if patch is None:
                config.pop(key, None)
            elif isinstance(base, dict) and isinstance(patch, dict):
                config[key] = deep_merge(base, patch)
            else:
                config[key] = patch
        plan = evaluate(
            StackFile(stack=stack, config=config, secret_keys=stack_file.secret_keys),
            program=project.main,
            project=project.name,
            stack_outputs=stack_outputs,
        )
        if not merge and not stack_outputs:
            cache[stack] = plan
        return plan

    return run


def uv_binary() -> str | None:
    """The uv running this suite: `uv run` names itself in $UV (uvw's pinned uv is in a cache directory, not on
    PATH), else uv from PATH."""
    return os.environ.get("UV") or shutil.which("uv")


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge `patch` into `base`; a value of None deletes the key."""
    result = dict(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = value
    return result
