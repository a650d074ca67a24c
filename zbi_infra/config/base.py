"""Shared base for every config model: strict, camelCase in YAML, snake_case in Python."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StringConstraints
from pydantic.alias_generators import to_camel


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in a stack file must never be silently ignored."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        str_strip_whitespace=True,
        # Cross-field checks must also see defaults: minSize 3 against a default desiredSize of 1 is an error.
        validate_default=True,
    )


# Numbers and switches are never coerced: `replicas: true` is a mistake, not 1, and `publicGrpc: "no"` is not false.
# (Stack-file values reach the models typed as YAML wrote them: every zBI key is nested in a mapping.)
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]


def listed_twice(values: list[str]) -> list[str]:
    """The values a list holds more than once, sorted: each one a mistake that AWS or Kubernetes refuses late."""
    return sorted({value for value in values if values.count(value) > 1})


# A GitHub user (@login) or team (@org/team), as CODEOWNERS names them.
GitHubOwner = Annotated[
    str, StringConstraints(pattern=r"^@[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9_.-]{1,100})?$")
]

# Kubernetes and AWS both accept DNS-label names; the stricter of the two rules fits both.
DNS_LABEL_PATTERN = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)]


def _aws_region(region: str) -> str:
    from zbi_infra.regions import region_problem

    problem = region_problem(region)
    if problem:
        raise ValueError(problem)
    return region


AwsRegion = Annotated[str, AfterValidator(_aws_region)]


def _aws_tags(tags: dict[str, str]) -> dict[str, str]:
    from zbi_infra.config.names import check_aws_tags

    check_aws_tags(tags)
    return tags


# AWS tag rules (EC2 user guide, "Tag restrictions"): checked on every tag map a user writes.
Tags = Annotated[dict[str, str], AfterValidator(_aws_tags), Field(default_factory=dict)]

LABEL_KEY_PATTERN = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
