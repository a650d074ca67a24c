"""The images zBI runs by default, and when each release stops being usable.

Zebra halts on Mainnet once the chain passes its end-of-support height: `ESTIMATED_RELEASE_HEIGHT` plus
`EOS_PANIC_AFTER` (105) days of blocks, warning 14 days before (zebrad/src/components/sync/end_of_support.rs). zBI
turns that height into a date with Zebra's own estimate (the release height is reached on the release day, 1,152
blocks a day after it), warns 30 days ahead and refuses a Mainnet instance past it: a platform that pins versions
must upgrade before the chain outruns them. Test networks never halt. zcashd is end of life (see `ZCASHD`).

Every fact here is backed by a file in tests/fixtures/upstream/ (SOURCES.json names its tag and path), and the
tests compare them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class ZebradRelease:
    version: str
    released: date
    estimated_release_height: int
    eos_after_days: int = 105

    @property
    def end_of_support_height(self) -> int:
        return self.estimated_release_height + self.eos_after_days * BLOCKS_PER_DAY

    @property
    def end_of_support(self) -> date:
        return self.released + timedelta(days=self.eos_after_days)


BLOCKS_PER_DAY = 24 * 60 * 60 // 75  # post-Blossom target spacing
WARN_DAYS_BEFORE_END_OF_SUPPORT = 30

# Supported zebrad releases, newest first (tag dates and estimated heights from ZcashFoundation/zebra).
ZEBRAD_RELEASES = {
    r.version: r
    for r in (
        ZebradRelease("6.3.0", date(2026, 8, 10), 3_444_000),
        ZebradRelease("6.2.3", date(2026, 7, 28), 3_425_000),
    )
}


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
# The access gateway: NGINX 1.27.4 with njs 0.8.9 (its Dockerfile installs nginx-module-njs), as its unprivileged
# user 101. The same image is on ECR Public (public.ecr.aws/nginx/nginx-unprivileged), which EKS pulls without
# Docker Hub's rate limits.
GATEWAY = Image("nginxinc/nginx-unprivileged", "1.27.4", "2025-02-13", "nginx", 101, "nginx")
# The gateway's metrics sidecar: a static binary in a scratch image that names no user, so zBI picks one.
MTAIL = Image("ghcr.io/google/mtail", "3.0.9", "2024-08-09", "nobody", 65534, "/mtail")
# Forwards a regtest node's localhost peer ports to its siblings (Zebra keeps only localhost peers on Regtest).
SOCAT = Image("alpine/socat", "1.8.0.3", "not checked here (a Docker Hub tag)", "nobody", 65534, "/usr/bin/socat")


@dataclass(frozen=True)
class SupportStatus:
    ok: bool
    warning: str | None
    error: str | None


def zebrad_support(version: str, *, mainnet: bool, today: date) -> SupportStatus:
    """Whether a pinned zebrad may run on the network today, and what to tell the platform administrator."""
    release = ZEBRAD_RELEASES.get(version.removeprefix("v"))
    if not mainnet:
        return SupportStatus(True, None, None)
    newest = max(ZEBRAD_RELEASES.values(), key=lambda r: r.released)
    if release is None:
        return SupportStatus(
            True,
            f"zebrad {version} is not in zBI's release table: its Mainnet end of support is not checked",
            None,
        )
    end = release.end_of_support
    if today > end:
        return SupportStatus(
            False,
            None,
            f"zebrad {release.version} reached its Mainnet end of support on about {end} (height "
            f"{release.end_of_support_height}) and refuses to run past it. Fix: upgrade node.image.tag "
            f"(newest known: {newest.version}; see README, 'Upgrading zebrad')",
        )
    if today >= end - timedelta(days=WARN_DAYS_BEFORE_END_OF_SUPPORT):
        return SupportStatus(
            True,
            f"zebrad {release.version} stops on Mainnet around {end} ({(end - today).days} days): plan the upgrade",
            None,
        )
    return SupportStatus(True, None, None)
