"""The digest table: which manifest each image zBI renders by default resolves to, read from its registry by
`tools/pin_images.py` and written to `zbi_infra/data/image-digests.json`.

Rendering (`kube.image_ref`) appends a recorded digest to the image it names, so a retagged image is never pulled;
an instance's `image.digest` wins over the table. zBI never invents an entry: an image the tool has not resolved
renders by tag alone, and `zbi:requireImageDigests` (docs/supply-chain.md) turns that into a refusal.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from zbi_infra.releases import (
    GATEWAY,
    LIGHTWALLETD,
    MTAIL,
    OPENRESTY,
    SOCAT,
    ZAINO,
    ZAINO_NO_TLS_TAG,
    ZAKURAD,
    ZCASHD,
    ZEBRAD,
)
from zbi_infra.render.zcashd_compat import image_tag as zcashd_compat_tag

DIGESTS_FILE = Path(__file__).parent / "data" / "image-digests.json"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def default_images() -> list[str]:
    """Every `repository:tag` zBI renders when an instance overrides nothing: what the tool resolves."""
    from zbi_infra.node.public_tls_renewal import KUBECTL  # the node package renders through kube, which imports this

    listed = (ZEBRAD, ZAKURAD, ZCASHD, LIGHTWALLETD, ZAINO, GATEWAY, OPENRESTY, MTAIL, SOCAT, KUBECTL)
    images = {f"{i.repository}:{i.tag}" for i in listed}
    images |= {f"{ZAINO.repository}:{ZAINO_NO_TLS_TAG}", f"{ZAKURAD.repository}:{zcashd_compat_tag(ZAKURAD.tag)}"}
    return sorted(images)


@cache
def recorded_digests() -> dict[str, str]:
    """`repository:tag` -> `sha256:…`; a malformed table is an error, never a silent tag-only render."""
    path = DIGESTS_FILE
    table = json.loads(path.read_text())
    digests = {}
    for image, entry in table.get("images", {}).items():
        if not DIGEST.match(entry.get("digest", "")):
            raise ValueError(f"{path.name}: {image} has no valid digest. Fix: re-run tools/pin_images.py")
        digests[image] = entry["digest"]
    return digests


def recorded_digest(repository: str, tag: str) -> str | None:
    return recorded_digests().get(f"{repository}:{tag}")


def default_charts() -> list[str]:
    """Every chart zBI installs, as `oci://registry/path/name:version` or `https://repository/name:version`."""
    from zbi_infra import autoscaler
    from zbi_infra.control_plane import OPERATOR_CHART
    from zbi_infra.monitoring.component import BLACKBOX_EXPORTER, CHART_REPOSITORY, KUBE_PROMETHEUS_STACK
    from zbi_infra.monitoring.snapshot_freshness import CLOUDWATCH_EXPORTER

    monitoring = [f"{CHART_REPOSITORY}/{name}:{version}"
                  for name, version in (KUBE_PROMETHEUS_STACK, BLACKBOX_EXPORTER, CLOUDWATCH_EXPORTER)]  # fmt: skip
    return sorted(
        [
            *monitoring,
            f"{autoscaler.CHART_REPOSITORY}/{autoscaler.CHART}:{autoscaler.CHART_VERSION}",
            ":".join(OPERATOR_CHART),
        ]
    )
