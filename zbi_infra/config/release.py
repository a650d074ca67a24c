"""Release data an operator supplies for a node release zBI's table does not hold yet (`node.release`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import Field, StrictInt, StringConstraints

from zbi_infra.config.base import StrictModel


class SuppliedReleaseConfig(StrictModel):
    """What Mainnet needs to know about `node.image.tag` when zbi_infra/data/releases.json does not list it.

    Read from the release's own source: `ESTIMATED_RELEASE_HEIGHT` in `end_of_support.rs` at the tag (zebrad:
    zebrad/src/components/sync/end_of_support.rs, zakurad: crates/zakurad/src/components/sync/end_of_support.rs),
    and the day the tag was published. zBI checks the height against the chain anchor it holds, so a typo is
    refused rather than silently moving the end of support by months."""

    # ESTIMATED_RELEASE_HEIGHT in zebrad's end_of_support.rs at the tag.
    estimated_release_height: StrictInt = Field(ge=1_000_000, le=100_000_000)
    # The day the tag was published (not after today).
    released: date
    # Where the height and date were read: the end_of_support.rs at the tag, or its release page.
    source: Annotated[str, StringConstraints(pattern=r"^https://[^\s'\"\\]+$", max_length=2048)]
