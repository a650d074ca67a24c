"""`image`: which container image a tier runs (shared by instance tiers and the history export)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints, field_validator

from zbi_infra.config.base import StrictModel


class ImageConfig(StrictModel):
    """Override the image of a tier, e.g. for a fork; pin a digest for reproducible deploys."""

    # [registry[:port]/]path: a colon is allowed in the registry part only, so no tag hides in the repository.
    repository: (
        Annotated[str, StringConstraints(pattern=r"^([a-z0-9.-]+(:[0-9]{1,5})?/)?[a-z0-9]+([._/-][a-z0-9]+)*$")] | None
    ) = None
    # The image tag (no `v`, never `latest`); omitted, the release zBI pins.
    tag: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")] | None = None
    # Pin the image by digest (sha256:...), so a retagged image is never pulled.
    digest: Annotated[str, StringConstraints(pattern=r"^sha256:[a-f0-9]{64}$")] | None = None

    @field_validator("repository", mode="before")
    @classmethod
    def _no_tag_in_repository(cls, repository: object) -> object:
        if isinstance(repository, str) and (
            "@" in repository
            or ":" in repository.rsplit("/", 1)[-1]
            or (repository.count(":") and "/" not in repository)
        ):
            raise ValueError(
                f"{repository[:80]!r} carries a tag or digest. Fix: write the repository alone, "
                "and the version under image.tag (or image.digest)"
            )
        return repository

    @field_validator("tag")
    @classmethod
    def _no_latest(cls, tag: str | None) -> str | None:
        if tag == "latest":
            raise ValueError("'latest' changes under a running node. Fix: pin a version tag or a digest")
        return tag
