#!/usr/bin/env python3
"""Pin every image zBI renders by default to the digest its registry serves for the tag today.

    python tools/pin_images.py            # resolve every default image, rewrite zbi_infra/data/image-digests.json
    python tools/pin_images.py --check    # exit 1 if a recorded tag now resolves to another digest (it moved)
    python tools/pin_images.py --image 127.0.0.1:5000/zbi/x:1.0 --table /tmp/t.json   # any image, any table
    python tools/pin_images.py --chart https://prometheus-community.github.io/helm-charts/kube-prometheus-stack:88.5.3

For each `repository:tag` it speaks the registry HTTP API v2 (the OCI distribution spec) as `docker pull` does:
`GET /v2/<name>/manifests/<tag>` accepting an OCI image index, a Docker manifest list and both single manifests (so
a multi-platform tag resolves to its index, the digest every platform's node pulls by); on `401` it follows the
`WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge to the token service (Docker Hub, ghcr.io, ECR
Public) and retries with the anonymous pull token. The digest is the SHA-256 of the manifest bytes received; a
`Docker-Content-Digest` header that disagrees with them is refused, so a proxy or registry cannot substitute
another manifest. Loopback registries are spoken to over HTTP (as Docker does), every other over HTTPS.

Charts: an OCI chart (`oci://…`) resolves like an image; a classic repository's chart is the SHA-256 its
`index.yaml` lists for the version, checked against the archive it points to. Rendering reads the images' digests
(zbi_infra/image_digests.py); chart digests are recorded and `--check`ed (docs/supply-chain.md says why they are not
enforced at install). The table holds only what this tool read. Standard library, and PyYAML for index.yaml.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "zbi_infra" / "data" / "image-digests.json"
# Multi-platform first: a tag that is an index resolves to the index, never to one platform's manifest.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DOCKER_HUB = "registry-1.docker.io"
LOOPBACK = {"localhost", "127.0.0.1", "[::1]"}
# Manifests are small (an index of a dozen platforms is a few KiB); anything larger is not one.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
# A chart archive (kube-prometheus-stack's is under 1 MiB); a classic repository's index.yaml lists every version.
MAX_CHART_BYTES = 64 * 1024 * 1024
CHART_ARCHIVE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


class RegistryError(Exception):
    """The registry did not give a manifest this tool can trust; the message names the image and why."""


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port] as the API is reached
    name: str  # the repository path in the API
    tag: str

    @classmethod
    def parse(cls, image: str) -> Reference:
        """`[registry/]path:tag` by Docker's rules: the first component is a registry if it has a dot or a port or is
        localhost; otherwise Docker Hub, where a one-component name lives under `library/`."""
        if "@" in image:
            raise RegistryError(f"{image}: already pinned by digest; give repository:tag")
        path, _, tag = image.rpartition(":")
        if not path or "/" in tag:
            raise RegistryError(f"{image}: no tag. Fix: give repository:tag (never latest)")
        first, _, rest = path.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return cls(first, rest, tag)
        return cls(DOCKER_HUB, path if "/" in path else f"library/{path}", tag)

    @property
    def base_url(self) -> str:
        host = (
            self.registry.rsplit(":", 1)[0] if not self.registry.startswith("[") else self.registry.split("]")[0] + "]"
        )
        return f"{'http' if host in LOOPBACK else 'https'}://{self.registry}"


@dataclass(frozen=True)
class Resolved:
    digest: str
    media_type: str


def _get(
    url: str, headers: dict[str, str], timeout: float, limit: int = MAX_MANIFEST_BYTES
) -> tuple[int, dict[str, str], bytes]:
    # A token realm comes from the registry's answer: never let it name a file or another scheme.
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise RegistryError(f"{url}: not an http(s) URL")
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked above)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(limit + 1),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read(limit + 1)


def _bearer_token(challenge: str, image: str, timeout: float) -> str:
    """An anonymous token from the realm the registry's Bearer challenge names, for the scope it names."""
    scheme, _, params = challenge.partition(" ")
    if scheme.lower() != "bearer":
        raise RegistryError(f"{image}: the registry asks for {scheme} authentication; only anonymous pulls are read")
    fields = dict(CHALLENGE_PARAM.findall(params))
    if "realm" not in fields:
        raise RegistryError(f"{image}: the registry's Bearer challenge names no realm")
    query = urllib.parse.urlencode({k: fields[k] for k in ("service", "scope") if k in fields})
    status, _, body = _get(f"{fields['realm']}?{query}" if query else fields["realm"], {}, timeout)
    if status != 200:
        raise RegistryError(f"{image}: the token service answered {status}")
    answer = json.loads(body)
    token = answer.get("token") or answer.get("access_token")
    if not token:
        raise RegistryError(f"{image}: the token service gave no token")
    return str(token)


def resolve(image: str, *, timeout: float = 30.0) -> Resolved:
    reference = Reference.parse(image)
    url = f"{reference.base_url}/v2/{reference.name}/manifests/{urllib.parse.quote(reference.tag)}"
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    status, answer, body = _get(url, headers, timeout)
    if status == 401 and "www-authenticate" in answer:
        token = _bearer_token(answer["www-authenticate"], image, timeout)
        status, answer, body = _get(url, {**headers, "Authorization": f"Bearer {token}"}, timeout)
    if status != 200:
        raise RegistryError(f"{image}: the registry answered {status} for the tag's manifest")
    if len(body) > MAX_MANIFEST_BYTES:
        raise RegistryError(f"{image}: the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    media_type = answer.get("content-type", "").split(";")[0].strip()
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{image}: the registry served {media_type or 'no media type'}, not a v2/OCI manifest")
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    claimed = answer.get("docker-content-digest")
    if claimed is not None and claimed != digest:
        raise RegistryError(
            f"{image}: Docker-Content-Digest {claimed} is not the SHA-256 of the bytes served ({digest})"
        )
    return Resolved(digest, media_type)


def resolve_chart(chart: str, *, timeout: float = 30.0) -> Resolved:
    """`oci://registry/path/name:version`: the chart's OCI manifest, as for an image. `https://repo/name:version`: the
    archive's SHA-256 the repository's index.yaml lists for that version, checked against the archive itself."""
    location, _, version = chart.rpartition(":")
    if not location or "/" in version:
        raise RegistryError(f"{chart}: no version. Fix: give LOCATION:VERSION")
    if location.startswith("oci://"):
        return resolve(f"{location.removeprefix('oci://')}:{version}", timeout=timeout)
    repository, _, name = location.rpartition("/")
    split = urllib.parse.urlsplit(repository)
    if split.scheme != "https" and not (split.scheme == "http" and split.hostname in {"localhost", "127.0.0.1", "::1"}):
        raise RegistryError(f"{chart}: a chart repository is read over https (http on loopback only)")
    status, _, body = _get(f"{repository}/index.yaml", {}, timeout, MAX_CHART_BYTES)
    if status != 200:
        raise RegistryError(f"{chart}: the chart repository answered {status} for index.yaml")
    import yaml  # PyYAML, a dependency of zBI (classic chart repositories only)

    entries = (yaml.safe_load(body) or {}).get("entries", {}).get(name, [])
    entry = next((e for e in entries if str(e.get("version")) == version), None)
    if entry is None:
        raise RegistryError(f"{chart}: index.yaml lists no version {version} of {name}")
    listed = f"sha256:{entry.get('digest', '')}"
    status, _, archive = _get(urllib.parse.urljoin(f"{repository}/", entry["urls"][0]), {}, timeout, MAX_CHART_BYTES)
    if status != 200:
        raise RegistryError(f"{chart}: the archive answered {status}")
    digest = "sha256:" + hashlib.sha256(archive).hexdigest()
    if digest != listed:
        raise RegistryError(f"{chart}: index.yaml lists {listed}, the archive served is {digest}")
    return Resolved(digest, CHART_ARCHIVE)


def read_table(path: Path) -> dict[str, Any]:
    table = json.loads(path.read_text()) if path.exists() else {}
    return {"images": table.get("images", {}), "charts": table.get("charts", {})}


def write_table(path: Path, table: dict[str, Any]) -> None:
    path.write_text(json.dumps({k: dict(sorted(v.items())) for k, v in table.items()}, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", action="append", help="repository:tag (repeatable)")
    parser.add_argument("--chart", action="append", help="oci://…/name:version or https://repo/name:version")
    parser.add_argument("--table", type=Path, default=TABLE, help="the digest table to update")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a recorded tag moved")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    if args.image or args.chart:
        wanted = {"images": args.image or [], "charts": args.chart or []}
    else:  # everything zBI renders by default
        sys.path.insert(0, str(ROOT))
        from zbi_infra.image_digests import default_charts, default_images

        wanted = {"images": default_images(), "charts": default_charts()}
    table = read_table(args.table)
    moved, failed = [], []
    today = datetime.date.today().isoformat()
    for section, resolver in (("images", resolve), ("charts", resolve_chart)):
        for item in wanted[section]:
            try:
                resolved = resolver(item, timeout=args.timeout)
            except (RegistryError, OSError, ValueError) as error:
                failed.append(f"{item}: {error}")
                continue
            recorded = table[section].get(item, {}).get("digest")
            if recorded and recorded != resolved.digest:
                moved.append(f"{item}: {recorded} -> {resolved.digest}")
            if recorded != resolved.digest:
                table[section][item] = {"digest": resolved.digest, "mediaType": resolved.media_type, "resolved": today}
            print(f"{item}@{resolved.digest}  ({resolved.media_type})")
    for line in moved:
        print(f"moved: {line}", file=sys.stderr)
    for line in failed:
        print(f"not resolved: {line}", file=sys.stderr)
    if args.check:
        return 1 if moved or failed else 0
    write_table(args.table, table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
