"""`zbi:controlPlane`: the optional in-cluster control plane, the Pulumi Kubernetes Operator keeping zBI stacks
converged from Git."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from zbi_infra.config.base import StrictBool, StrictInt, StrictModel, listed_twice

StackName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}$")]
# An image reference pinned by digest (a tag alone floats: whoever pushes it runs with the reconciler's access).
DIGEST_PINNED_IMAGE = r"^[a-z0-9]([a-z0-9._:/-]{0,254})?(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?@sha256:[0-9a-f]{64}$"


class ControlPlaneConfig(StrictModel):
    # false: no control plane is deployed.
    enabled: StrictBool = True
    # The repository the operator checks out (HTTPS; a private one needs gitAuth, see the README).
    repository: Annotated[str, StringConstraints(pattern=r"^https://[^\s'\"\\]+$", max_length=2048)]
    # The branch the operator deploys from.
    branch: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._/-]{1,200}$")] = "main"
    # Where Pulumi.yaml sits in the repository.
    project_path: Annotated[str, StringConstraints(pattern=r"^(\.|[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*)$")] = "."
    # zBI stacks to keep converged (each a Pulumi.<name>.yaml of the project); empty: this stack alone.
    stacks: list[StackName] = Field(default_factory=list)
    # The Pulumi organization for fully qualified stack names (org/project/stack); None for self-managed backends.
    organization: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}$")] | None = None
    # The workspace image `pulumi up` runs in, by digest (required: zBI cannot read a registry to pick one, and the
    # operator's default, pulumi/pulumi:latest-nonroot, floats). `docker buildx imagetools inspect IMAGE:TAG` shows
    # the digest of the tag you reviewed.
    workspace_image: Annotated[str, StringConstraints(max_length=512)]
    # Minutes between the operator's reconciliations (drift corrected at least this often).
    resync_minutes: StrictInt = Field(default=10, ge=1, le=1440)
    # Self-managed state (s3://bucket/path); None: Pulumi Cloud, with PULUMI_ACCESS_TOKEN from `credentialsSecret`.
    backend: Annotated[str, StringConstraints(pattern=r"^(s3|https)://[^\s'\"\\]+$", max_length=2048)] | None = None
    # awskms://... key that encrypts the stacks' secrets; None: the backend's default provider.
    secrets_provider: Annotated[str, StringConstraints(pattern=r"^awskms://[^\s'\"\\]+$", max_length=2048)] | None = (
        None
    )
    # A Kubernetes Secret in the control plane's namespace, made by hand (never in git): key `accessToken`.
    credentials_secret: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")] = (
        "pulumi-credentials"
    )

    @field_validator("stacks")
    @classmethod
    def _once(cls, stacks: list[str]) -> list[str]:
        if twice := listed_twice(stacks):
            raise ValueError(f"{', '.join(twice)} listed twice. Fix: list each stack once")
        return stacks

    @field_validator("workspace_image")
    @classmethod
    def _pinned(cls, image: str) -> str:
        if not re.fullmatch(DIGEST_PINNED_IMAGE, image):
            raise ValueError(
                f"{image!r} is not pinned by digest. Fix: write IMAGE[:TAG]@sha256:<64 hex digits> "
                "(`docker buildx imagetools inspect IMAGE:TAG` prints the digest of the tag you reviewed)"
            )
        return image

    def uses_pulumi_cloud(self) -> bool:
        return self.backend is None or self.backend.startswith("https://")
