"""Shared base for every config model: strict, camelCase in YAML, snake_case in Python."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
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


# Kubernetes and AWS both accept DNS-label names; the stricter of the two rules fits both.
DNS_LABEL_PATTERN = r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN)]


def _aws_region(region: str) -> str:
    from zbi_infra.zones import is_region

    if not is_region(region):
        raise ValueError(f"'{region}' is not an AWS region name. Fix: use a name such as us-east-1 or us-west-2")
    return region


AwsRegion = Annotated[str, AfterValidator(_aws_region)]

TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TagValue = Annotated[str, StringConstraints(max_length=256)]
Tags = Annotated[dict[TagKey, TagValue], Field(default_factory=dict)]

LABEL_KEY_PATTERN = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
