from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zbi_infra.plan.engine import Plan, evaluate
from zbi_infra.plan.project import Project, StackFile, find_project

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "fixtures" / "upstream"


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
