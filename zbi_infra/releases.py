"""The images zBI runs by default, and the release table that says when each node release stops being usable.

Zebra halts on Mainnet once the chain passes its end-of-support height: `ESTIMATED_RELEASE_HEIGHT` plus
`EOS_PANIC_AFTER` (105) days of blocks at 1,152 a day, warning 14 days before (zebrad/src/components/sync/
end_of_support.rs); Zakura does the same with a 40-day window (crates/zakurad/src/components/sync/end_of_support.rs).
The table (zbi_infra/data/releases.json, written by tools/add_release.py from the tagged sources, evidence in
tests/fixtures/upstream/*/releases/) holds each release's height; zBI turns heights into dates from one chain anchor,
a (height, day) pair the table cites, at the 75 s target spacing. zbi_infra/release_check.py applies it.
zcashd is end of life (see `ZCASHD`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources

TARGET_SPACING_SECONDS = 75  # post-Blossom
BLOCKS_PER_DAY = 24 * 60 * 60 // TARGET_SPACING_SECONDS
WARN_DAYS_BEFORE_END_OF_SUPPORT = 30


@dataclass(frozen=True)
class ChainAnchor:
    """A Mainnet height and the day the chain was there: heights become dates by counting 75 s blocks from it."""

    height: int
    day: date
    source: str

    def date_of(self, height: int) -> date:
        return self.day + timedelta(seconds=(height - self.height) * TARGET_SPACING_SECONDS)

    def height_on(self, day: date) -> int:
        return self.height + (day - self.day).days * BLOCKS_PER_DAY


@dataclass(frozen=True)
class NodeRelease:
    kind: str
    version: str
    released: date
    estimated_release_height: int
    eos_after_days: int
    anchor: ChainAnchor
    # The keys each config section accepts (deny_unknown_fields); None when zBI has not read this release's source.
    config_keys: Mapping[str, frozenset[str]] | None
    source: str

    @property
    def end_of_support_height(self) -> int:
        """The last height the release runs at: it halts when the tip goes past it."""
        return self.estimated_release_height + self.eos_after_days * BLOCKS_PER_DAY

    @property
    def end_of_support(self) -> date:
        return self.anchor.date_of(self.end_of_support_height)


@dataclass(frozen=True)
class NodeReleases:
    """One node kind's releases, newest first."""

    kind: str
    repository: str  # the source repository on GitHub
    image: str
    end_of_support_path: str
    releases: Mapping[str, NodeRelease]

    @property
    def newest(self) -> NodeRelease:
        return next(iter(self.releases.values()))


END_OF_SUPPORT_PATHS = {
    "zebrad": "zebrad/src/components/sync/end_of_support.rs",
    "zakurad": "crates/zakurad/src/components/sync/end_of_support.rs",
}


@cache
def release_table() -> dict[str, NodeReleases]:
    table = json.loads(resources.files("zbi_infra.data").joinpath("releases.json").read_text())
    anchor = ChainAnchor(
        table["anchor"]["height"], date.fromisoformat(table["anchor"]["date"]), table["anchor"]["source"]
    )
    kinds = {}
    for kind, entry in table["kinds"].items():
        releases = {
            version: NodeRelease(
                kind=kind,
                version=version,
                released=date.fromisoformat(data["released"]),
                estimated_release_height=data["estimated_release_height"],
                eos_after_days=data["eos_panic_after_days"],
                anchor=anchor,
                config_keys={section: frozenset(keys) for section, keys in data["config_keys"].items()},
                source=f"{entry['repository']} {data['tag']} ({data['commit'][:12]})",
            )
            for version, data in sorted(
                entry["releases"].items(), key=lambda item: tuple(map(int, item[0].split("."))), reverse=True
            )
        }
        kinds[kind] = NodeReleases(kind, entry["repository"], entry["image"], END_OF_SUPPORT_PATHS[kind], releases)
    return kinds


def chain_anchor() -> ChainAnchor:
    return release_table()["zebrad"].newest.anchor


# Known zebrad releases, newest first (kept under this name for the image tests).
ZEBRAD_RELEASES = release_table()["zebrad"].releases


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str
    # The release's tag date where the upstream repository shows it, else what the evidence bounds it by.
    released: str
    user: str
    uid: int
    # How the container starts in zBI: the image's binary, run directly as its own user (never its entrypoint
    # script, which would chown or write outside the mounted volumes under a read-only root filesystem).
    binary: str


ZEBRAD = Image("zfnd/zebra", "6.3.0", "2026-08-10", "zebra", 10001, "/usr/local/bin/zebrad")
# Zakura's newest stable release (v1.3.0-rc1 is a pre-release); its image runs as Zebra's user (docker/Dockerfile).
ZAKURAD = Image("zakuracore/zakura", "1.2.0", "2026-08-14", "zebra", 10001, "/usr/local/bin/zakurad")
# zcashd v6.20.0 is the last release; it passed its deprecation height (3,417,100) on Mainnet and cannot follow
# NU6.3. zBI runs it only on regtest, for legacy RPC testing.
ZCASHD = Image("electriccoinco/zcashd", "v6.20.0", "2026-06-03", "zcashd", 2001, "zcashd")
ZCASHD_AWARENESS_OPTION = "i-am-aware-zcashd-will-be-replaced-by-zebrad-and-zallet-in-2025"
LIGHTWALLETD = Image(
    "electriccoinco/lightwalletd", "v0.5.3", "2026-08-04", "lightwalletd", 2002, "/usr/local/bin/lightwalletd"
)
# Zaino's TLS build; the -no-tls build serves plaintext gRPC for when TLS terminates in front of it.
ZAINO = Image(
    "zingodevops/zaino",
    "0.8.0",
    "by 2026-08-21 (pinned then by zecrocks/zcash-stack)",
    "container_user",
    1000,
    "/usr/local/bin/zainod",
)
ZAINO_NO_TLS_TAG = "0.8.0-no-tls"
# The access gateway on njs, and the RPC guard beside zebrad: NGINX 1.30.4, the stable line, with njs 1.0.0 (its
# Dockerfile, stable/debian/Dockerfile at the commit that made it, 2026-07-15, installs nginx-module-njs on
# debian:trixie-slim), as its unprivileged user 101. 1.30.4 carries nginx's 2026 security fixes through 1.31.3's
# (nginx's docs/xml/nginx/changes.xml; README, "Images"). The same image is on ECR Public
# (public.ecr.aws/nginx/nginx-unprivileged), which EKS pulls without Docker Hub's rate limits.
GATEWAY = Image("nginxinc/nginx-unprivileged", "1.30.4", "2026-07-15", "nginx", 101, "nginx")
# The gateway's Lua engine (gateway.engine: lua, the default): OpenResty 1.27.1.2 (released 2025-03-14, openresty.org's
# changelog-1027001), nginx 1.27.1 with lua-nginx-module 0.10.28, LuaJIT 2.1-20250117 and lua-cjson 2.1.0.14 built
# in: the release whose components ran zBI's suite here. It predates nginx's 2026 security releases; of their fixes
# only CVE-2026-1642's (plain text injected into a TLS upstream's answer by a machine in the middle) is on a path
# zBI uses, and the configuration shapes of the others are tested absent (test_gateway_cve_shapes.py). OpenResty
# 1.31.1.1 (image 1.31.1.1-0-bookworm, 2026-06-05) carries most of them; it waits for its LuaJIT and lua-resty-core
# tags, which could not be fetched here, to run the suite. docker-openresty's bookworm flavor at its tag
# 1.27.1.2-12 (2026-04-19, CHANGELOG.md) installs OpenResty's own Debian package (openresty=1.27.1.2-1~bookworm1)
# on debian:bookworm-slim and names no USER (it would run as root): zBI runs it as Debian's nobody (65534,
# base-passwd), a uid the image has, above the 10000 that checkov asks for, and owning nothing in the image
# (nginx.conf keeps every file nginx writes in the /tmp emptyDir). The binary is the package's nginx
# (/usr/bin/openresty links to it: openresty.org's deb-packages page), run directly, not the image's CMD. Its
# STOPSIGNAL is SIGQUIT, nginx's graceful stop, as nginx-unprivileged's. The tag is <openresty>-<image>-<flavor>,
# the full pin docker-openresty's README recommends.
OPENRESTY = Image(
    "openresty/openresty",
    "1.27.1.2-12-bookworm",
    "2026-04-19",
    "nobody",
    65534,
    "/usr/local/openresty/nginx/sbin/nginx",
)
# The gateway's image per engine (config/instance.py's GatewayEngine).
GATEWAY_ENGINE_IMAGES = {"njs": GATEWAY, "lua": OPENRESTY}
# The gateway's metrics sidecar: a static binary in a scratch image that names no user, so zBI picks one.
MTAIL = Image("ghcr.io/google/mtail", "3.0.9", "2024-08-09", "nobody", 65534, "/mtail")
# Forwards a regtest node's localhost peer ports to its siblings (Zebra keeps only localhost peers on Regtest).
SOCAT = Image("alpine/socat", "1.8.0.3", "not checked here (a Docker Hub tag)", "nobody", 65534, "/usr/bin/socat")
