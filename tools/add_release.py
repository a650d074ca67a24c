#!/usr/bin/env python3
"""Add a zebrad or zakurad release to zBI's release table, with its evidence, from a copy of its repository.

    python tools/add_release.py --kind zebrad --tag v6.4.0 --git-dir /path/to/zebra(.git)
    python tools/add_release.py --kind zakurad --tag v1.2.0 --git-dir /path/to/zakura(.git)

Reads, at the tag, and nothing from the network:
- `end_of_support.rs`: ESTIMATED_RELEASE_HEIGHT, EOS_PANIC_AFTER (days), EOS_WARN_AFTER and the block spacing;
- the config structs of every zebrad.toml / zakurad.toml section (all `deny_unknown_fields`): the keys the node
  accepts;
- `docker/Dockerfile`: the runtime user, its UID and where the binary is installed;
- the tag's date (the annotated tag's date, else its commit's).

Writes the release into zbi_infra/data/releases.json (sorted, so that re-running is a no-op and a release bump is a
reviewed diff of data), and its evidence under tests/fixtures/upstream/<repo>/releases/<tag>.json with a
SOURCES.json entry. The chain anchor that turns heights into dates is the newest zebrad release's estimated height
at its tag date: Zebra's release checklist sets ESTIMATED_RELEASE_HEIGHT to "the height you estimate the release
will be tagged" (.github/PULL_REQUEST_TEMPLATE/release-checklist-legacy.md).

`--root` points at another checkout of zBI (the tests regenerate into a copy).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Upstream:
    repository: str
    image: str
    licence: str
    fixtures: str  # directory under tests/fixtures/upstream
    end_of_support: str
    binary: str
    # zebrad.toml / zakurad.toml section -> (file, struct) it deserializes into.
    sections: dict[str, tuple[str, str]]
    # The workflow that publishes the release image, and the line in it that names the image tag.
    docker_workflow: str
    docker_tag_rule: str
    # Where the release keeps its generated default config (`<dir>/<tag>.toml`), vendored verbatim.
    default_configs: str


UPSTREAMS = {
    "zebrad": Upstream(
        "ZcashFoundation/zebra",
        "zfnd/zebra",
        "MIT OR Apache-2.0",
        "zebra",
        "zebrad/src/components/sync/end_of_support.rs",
        "zebrad",
        {
            "consensus": ("zebra-consensus/src/config.rs", "Config"),
            "health": ("zebrad/src/components/health/config.rs", "Config"),
            "mempool": ("zebrad/src/components/mempool/config.rs", "Config"),
            "metrics": ("zebrad/src/components/metrics.rs", "Config"),
            "mining": ("zebra-rpc/src/config/mining.rs", "Config"),
            "network": ("zebra-network/src/config.rs", "DConfig"),
            "notify": ("zebrad/src/components/notify.rs", "Config"),
            "rpc": ("zebra-rpc/src/config/rpc.rs", "Config"),
            "state": ("zebra-state/src/config.rs", "Config"),
            "sync": ("zebrad/src/components/sync.rs", "Config"),
            "tracing": ("zebrad/src/components/tracing.rs", "InnerConfig"),
            "zcashd_compat": ("zebrad/src/components/zcashd_compat/config.rs", "Config"),
        },
        # docker/metadata-action's {{version}} is the semver without the git tag's "v".
        ".github/workflows/zfnd-build-docker-image.yml",
        "type=semver,pattern={{version}}",
        "zebrad/tests/common/configs",
    ),
    "zakurad": Upstream(
        "zakura-core/zakura",
        "zakuracore/zakura",
        "MIT OR Apache-2.0",
        "zakura",
        "crates/zakurad/src/components/sync/end_of_support.rs",
        "zakurad",
        {
            "consensus": ("crates/zakura-consensus/src/config.rs", "Config"),
            "health": ("crates/zakurad/src/components/health/config.rs", "Config"),
            "mempool": ("crates/zakurad/src/components/mempool/config.rs", "Config"),
            "metrics": ("crates/zakurad/src/components/metrics.rs", "Config"),
            "mining": ("crates/zakura-rpc/src/config/mining.rs", "Config"),
            "network": ("crates/zakura-network/src/config.rs", "DConfig"),
            "rpc": ("crates/zakura-rpc/src/config/rpc.rs", "Config"),
            "state": ("crates/zakura-state/src/config.rs", "Config"),
            "sync": ("crates/zakurad/src/components/sync.rs", "Config"),
            "tracing": ("crates/zakurad/src/components/tracing.rs", "InnerConfig"),
            "zcashd_compat": ("crates/zakurad/src/components/zcashd_compat/config.rs", "Config"),
        },
        ".github/workflows/release-binaries.yml",
        'image_version="${RELEASE_TAG#v}"',
        "crates/zakurad/tests/common/configs",
    ),
}
CHECKLIST = ".github/PULL_REQUEST_TEMPLATE/release-checklist-legacy.md"


def git(git_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def show(git_dir: Path, tag: str, path: str) -> str | None:
    done = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{tag}:{path}"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def rust_u32(source: str, name: str) -> int:
    match = re.search(rf"const {name}: u32 = ([0-9_]+);", source)
    if not match:
        raise SystemExit(f"end_of_support.rs: no `const {name}: u32 = <number>;`")
    return int(match.group(1).replace("_", ""))


def end_of_support(source: str) -> dict[str, int]:
    panic_after = rust_u32(source, "EOS_PANIC_AFTER")
    warn = re.search(r"const EOS_WARN_AFTER: u32 = EOS_PANIC_AFTER - ([0-9]+);", source)
    if not warn:
        raise SystemExit("end_of_support.rs: EOS_WARN_AFTER is not `EOS_PANIC_AFTER - <days>`; read it by hand")
    # A day of blocks at the post-Blossom 75 s spacing: newer releases spell it `24 * 60 * 60 /
    # POST_BLOSSOM_POW_TARGET_SPACING`, older ones ask `target_spacing_for_height` at the (post-Blossom) tip.
    if not any(
        rule in source for rule in ("24 * 60 * 60 / POST_BLOSSOM_POW_TARGET_SPACING", "target_spacing_for_height")
    ):
        raise SystemExit("end_of_support.rs: the blocks-per-day rule changed; read it by hand")
    return {
        "estimated_release_height": rust_u32(source, "ESTIMATED_RELEASE_HEIGHT"),
        "eos_panic_after_days": panic_after,
        "eos_warn_before_days": int(warn.group(1)),
        "target_spacing_seconds": 75,
    }


def struct_fields(source: str, struct: str) -> list[str]:
    match = re.search(rf"struct {struct}\s*\{{(.*?)\n\}}", source, flags=re.DOTALL)
    if not match:
        raise SystemExit(f"no `struct {struct}` found")
    return sorted(set(re.findall(r"^\s*(?:pub(?:\(crate\))? )?(\w+):", match.group(1), flags=re.MULTILINE)))


def config_keys(git_dir: Path, tag: str, upstream: Upstream) -> dict[str, list[str]]:
    keys = {}
    for section, (path, struct) in upstream.sections.items():
        source = show(git_dir, tag, path)
        if source is not None:  # a section this release does not have yet
            keys[section] = struct_fields(source, struct)
    return keys


def dockerfile_facts(dockerfile: str, binary: str) -> dict[str, object]:
    def arg(name: str) -> str:
        match = re.search(rf"^ARG {name}=\"?([^\"\n]+)\"?$", dockerfile, flags=re.MULTILINE)
        if not match:
            raise SystemExit(f"docker/Dockerfile: no ARG {name}=")
        return match.group(1)

    installed = re.search(rf"COPY [^\n]*--from=release \S*/{binary} (\S+)", dockerfile)
    if not installed:
        raise SystemExit(f"docker/Dockerfile: the runtime stage does not COPY {binary} from the release stage")
    directory = installed.group(1).rstrip("/")
    entrypoint = re.findall(r"^ENTRYPOINT (.+)$", dockerfile, flags=re.MULTILINE)
    return {
        "user": arg("USER"),
        "uid": int(arg("UID")),
        "binary": f"{directory}/{binary}",
        "entrypoint": json.loads(entrypoint[-1]) if entrypoint else None,
    }


METRIC = re.compile(r'(?:gauge|counter|histogram)!\(\s*"([a-z0-9_.]+)"')


def metric_names(git_dir: Path, tag: str) -> list[str]:
    """Every metric the node's Rust sources register at the tag, as Prometheus names (metrics-exporter-prometheus
    writes "." as "_"): the names zBI's alert rules may read."""
    found: set[str] = set()
    for path in git(git_dir, "ls-tree", "-r", "--name-only", tag).split():
        if path.endswith(".rs") and "/tests" not in path:
            found.update(METRIC.findall(show(git_dir, tag, path) or ""))
    return sorted({name.replace(".", "_") for name in found})


def tag_date(git_dir: Path, tag: str) -> str:
    return git(git_dir, "for-each-ref", "--format=%(creatordate:short)", f"refs/tags/{tag}")


def add_release(kind: str, tag: str, git_dir: Path, root: Path = ROOT) -> dict[str, object]:
    upstream = UPSTREAMS[kind]
    if not re.fullmatch(r"v[0-9]+\.[0-9]+\.[0-9]+", tag):
        raise SystemExit(f"{tag!r}: give a release tag as the repository spells it, e.g. v6.3.0 (no pre-releases)")
    if not tag_date(git_dir, tag):
        raise SystemExit(f"{git_dir} has no tag {tag}")
    eos_source = show(git_dir, tag, upstream.end_of_support)
    dockerfile = show(git_dir, tag, "docker/Dockerfile")
    if eos_source is None or dockerfile is None:
        raise SystemExit(f"{tag}: {upstream.end_of_support} or docker/Dockerfile is missing")
    version = tag.removeprefix("v")
    workflow = show(git_dir, tag, upstream.docker_workflow) or ""
    if upstream.docker_tag_rule not in workflow:
        raise SystemExit(f"{upstream.docker_workflow} no longer says {upstream.docker_tag_rule!r}: read the image tag")
    release: dict[str, object] = {
        "tag": tag,
        "commit": git(git_dir, "rev-parse", f"{tag}^{{commit}}"),
        "released": tag_date(git_dir, tag),
        **end_of_support(eos_source),
        "image": dockerfile_facts(dockerfile, upstream.binary),
        "docker_tag": {"tag": version, "rule": upstream.docker_tag_rule, "path": upstream.docker_workflow},
        "config_keys": config_keys(git_dir, tag, upstream),
    }
    data_file = root / "zbi_infra" / "data" / "releases.json"
    table = json.loads(data_file.read_text()) if data_file.exists() else {}
    kinds = table.setdefault("kinds", {})
    entry = kinds.setdefault(kind, {"repository": upstream.repository, "image": upstream.image, "releases": {}})
    entry["releases"][version] = release
    table["anchor"] = _anchor(table)
    _write_json(data_file, table)

    fixture = f"{upstream.fixtures}/releases/{tag}.json"
    evidence = {**{k: release[k] for k in sorted(release) if k != "commit"}, "metrics": metric_names(git_dir, tag)}
    _write_json(root / "tests" / "fixtures" / "upstream" / fixture, evidence)
    sources_file = root / "tests" / "fixtures" / "upstream" / "SOURCES.json"
    sources = json.loads(sources_file.read_text()) if sources_file.exists() else {}
    default_config = show(git_dir, tag, f"{upstream.default_configs}/{tag}.toml")
    if default_config is not None:
        copied = f"{upstream.fixtures}/releases/{tag}.toml"
        (root / "tests" / "fixtures" / "upstream" / copied).write_text(default_config)
        sources[copied] = {
            "repository": upstream.repository,
            "tag": tag,
            "commit": release["commit"],
            "path": f"{upstream.default_configs}/{tag}.toml",
            "licence": upstream.licence,
            "how": "copied verbatim (tools/add_release.py)",
        }
    sources[fixture] = {
        "repository": upstream.repository,
        "tag": tag,
        "commit": release["commit"],
        "path": ", ".join([upstream.end_of_support, "docker/Dockerfile", *(p for p, _ in upstream.sections.values())]),
        "licence": upstream.licence,
        "how": "tools/add_release.py: end-of-support constants, tag date, Dockerfile user/UID/binary, the image "
        "tag its release workflow publishes, config struct field names, metric names (*.rs gauge!/counter!/"
        "histogram!)",
    }
    _write_json(sources_file, dict(sorted(sources.items())), sort_keys=False)
    return release


def newer_tags(kind: str, git_dir: Path, root: Path = ROOT) -> list[str]:
    """The repository's release tags (vX.Y.Z, no pre-releases) newer than the newest release the table holds."""
    table = json.loads((root / "zbi_infra" / "data" / "releases.json").read_text())
    known = table["kinds"].get(kind, {}).get("releases", {})
    newest = max((_version_key(v) for v in known), default=(0,))
    tags = [t for t in git(git_dir, "tag", "--list", "v*").split() if re.fullmatch(r"v[0-9]+\.[0-9]+\.[0-9]+", t)]
    return sorted((t for t in tags if _version_key(t[1:]) > newest), key=lambda t: _version_key(t[1:]))


def _anchor(table: dict) -> dict[str, object]:
    """The newest zebrad release's (estimated height, tag date): the most recent chain observation zBI holds."""
    zebrad = table["kinds"].get("zebrad", {}).get("releases", {})
    if not zebrad:
        raise SystemExit("add a zebrad release first: the date anchor comes from Zebra's release checklist")
    _version, newest = max(zebrad.items(), key=lambda item: (item[1]["released"], _version_key(item[0])))
    return {
        "height": newest["estimated_release_height"],
        "date": newest["released"],
        "source": f"ZcashFoundation/zebra {newest['tag']}: ESTIMATED_RELEASE_HEIGHT in "
        f"{UPSTREAMS['zebrad'].end_of_support} is 'the height you estimate the release will be tagged' "
        f"({CHECKLIST}); tagged {newest['released']}",
    }


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _write_json(path: Path, value: object, *, sort_keys: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(value, indent=2, sort_keys=sort_keys) + "\n"
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=sorted(UPSTREAMS), required=True)
    tags = parser.add_mutually_exclusive_group(required=True)
    tags.add_argument("--tag", action="append", help="a release tag, e.g. v6.3.0 (repeatable)")
    tags.add_argument("--new", action="store_true", help="every release tag newer than the table's newest")
    parser.add_argument("--git-dir", type=Path, required=True, help="a clone's .git, or a bare/fetched mirror")
    parser.add_argument("--root", type=Path, default=ROOT, help="the zBI checkout to update")
    args = parser.parse_args(argv)
    for tag in args.tag or newer_tags(args.kind, args.git_dir, args.root):
        release = add_release(args.kind, tag, args.git_dir, args.root)
        print(f"{args.kind} {tag}: height {release['estimated_release_height']}, released {release['released']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
