"""tools/add_release.py regenerates the release table and its evidence from a repository, byte for byte.

The repositories are synthetic and built here (no network): for each release in the table, a commit whose
end_of_support.rs, Dockerfile, publishing workflow and config structs say what that release's evidence says, tagged
on its release day. Running the tool over them must give back exactly the committed files, up to the commit ids.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, UPSTREAM

sys.path.insert(0, str(ROOT / "tools"))
import add_release

DATA = ROOT / "zbi_infra" / "data" / "releases.json"


def git(repo: Path, *args: str, day: str = "2026-01-01") -> str:
    stamp = f"{day}T12:00:00+00:00"
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
    }
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


def end_of_support_rs(evidence: dict[str, Any], project: str) -> str:
    height = f"{evidence['estimated_release_height']:_}"
    return (
        f"//! End of support checking task.\n\n"
        f"/// The estimated height that this release will be published.\n"
        f"pub const ESTIMATED_RELEASE_HEIGHT: u32 = {height};\n\n"
        f"pub const ESTIMATED_BLOCKS_PER_DAY: u32 = 24 * 60 * 60 / POST_BLOSSOM_POW_TARGET_SPACING;\n\n"
        f"pub const EOS_PANIC_AFTER: u32 = {evidence['eos_panic_after_days']};\n\n"
        f"pub const EOS_WARN_AFTER: u32 = EOS_PANIC_AFTER - {evidence['eos_warn_before_days']};\n\n"
        f'pub const EOS_PANIC_MESSAGE_HEADER: &str = "{project} refuses to run";\n'
    )


def dockerfile(image: dict[str, Any]) -> str:
    directory, binary = image["binary"].rsplit("/", 1)
    return (
        "FROM rust AS release\nRUN cargo build --release\n\nFROM debian:bookworm-slim AS runtime\n"
        f'ARG UID={image["uid"]}\nARG USER="{image["user"]}"\n'
        f"COPY --link --from=release /usr/local/bin/{binary} {directory}/\n"
        f"ENTRYPOINT {json.dumps(image['entrypoint']).replace('[', '[ ').replace(']', ' ]')}\n"
    )


def struct(name: str, fields: list[str]) -> str:
    body = "".join(f"    /// The {field} setting.\n    pub {field}: String,\n" for field in fields)
    return f"#[serde(deny_unknown_fields)]\npub struct {name} {{\n{body}}}\n"


def synthetic_repository(tmp_path: Path, kind: str) -> tuple[Path, list[str]]:
    """A repository with one tagged commit per release of `kind` in the table, oldest first."""
    upstream = add_release.UPSTREAMS[kind]
    repo = tmp_path / kind
    repo.mkdir()
    git(repo, "init", "-q")
    releases = json.loads(DATA.read_text())["kinds"][kind]["releases"]
    tags = []
    for version, _release in sorted(releases.items(), key=lambda item: item[1]["released"]):
        evidence = json.loads((UPSTREAM / upstream.fixtures / "releases" / f"v{version}.json").read_text())
        for child in repo.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        files = {
            upstream.end_of_support: end_of_support_rs(evidence, kind),
            "docker/Dockerfile": dockerfile(evidence["image"]),
            upstream.docker_workflow: f"          tags: |\n            {upstream.docker_tag_rule}\n",
        }
        default_config = UPSTREAM / upstream.fixtures / "releases" / f"v{version}.toml"
        if default_config.exists():
            files[f"{upstream.default_configs}/v{version}.toml"] = default_config.read_text()
        files["src/metrics.rs"] = "".join(f'    metrics::gauge!("{name}").set(1.0);\n' for name in evidence["metrics"])
        for section, (path, name) in upstream.sections.items():
            if section in evidence["config_keys"]:
                files[path] = files.get(path, "") + struct(name, evidence["config_keys"][section])
        for path, text in files.items():
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(text)
        git(repo, "add", "-A", day=evidence["released"])
        git(repo, "commit", "-q", "--allow-empty", "-m", version, day=evidence["released"])
        git(repo, "tag", "-a", f"v{version}", "-m", version, day=evidence["released"])
        tags.append(f"v{version}")
    return repo / ".git", tags


def zbi_copy(tmp_path: Path) -> Path:
    """The files the tool writes, copied out of the repository, minus every release fixture it must recreate."""
    root = tmp_path / "zbi"
    (root / "zbi_infra" / "data").mkdir(parents=True)
    (root / "tests" / "fixtures" / "upstream").mkdir(parents=True)
    sources = json.loads((UPSTREAM / "SOURCES.json").read_text())
    kept = {k: v for k, v in sources.items() if "/releases/" not in k}
    (root / "tests" / "fixtures" / "upstream" / "SOURCES.json").write_text(json.dumps(kept, indent=2) + "\n")
    return root


def without_commits(text: str) -> Any:
    value = json.loads(text)

    def scrub(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: "<commit>" if k == "commit" else scrub(v) for k, v in node.items()}
        if isinstance(node, list):
            return [scrub(v) for v in node]
        return node

    return scrub(value)


def test_the_tool_regenerates_the_table_and_evidence_identically(tmp_path: Path) -> None:
    root = zbi_copy(tmp_path)
    for kind in ("zebrad", "zakurad"):  # zebrad first: the date anchor is its newest release
        git_dir, tags = synthetic_repository(tmp_path, kind)
        argv = ["--kind", kind, "--git-dir", str(git_dir), "--root", str(root)]
        for tag in tags:
            argv += ["--tag", tag]
        assert add_release.main(argv) == 0
    regenerated = root / "zbi_infra" / "data" / "releases.json"
    assert without_commits(regenerated.read_text()) == without_commits(DATA.read_text())
    for fixture in [*UPSTREAM.glob("zebra/releases/*"), *UPSTREAM.glob("zakura/releases/*")]:
        relative = fixture.relative_to(UPSTREAM)
        assert (root / "tests" / "fixtures" / "upstream" / relative).read_bytes() == fixture.read_bytes(), relative
    sources = (root / "tests" / "fixtures" / "upstream" / "SOURCES.json").read_text()
    assert without_commits(sources) == without_commits((UPSTREAM / "SOURCES.json").read_text())
    # Running it again changes nothing.
    before = regenerated.read_bytes()
    git_dir, tags = tmp_path / "zebrad" / ".git", ["v6.3.0"]
    add_release.main(["--kind", "zebrad", "--git-dir", str(git_dir), "--root", str(root), "--tag", tags[0]])
    assert regenerated.read_bytes() == before


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        ("pub const EOS_WARN_AFTER: u32 = 91;", "EOS_WARN_AFTER is not `EOS_PANIC_AFTER - <days>`"),
        ("pub const ESTIMATED_BLOCKS_PER_DAY: u32 = 576;", "the blocks-per-day rule changed"),
    ],
)
def test_the_tool_refuses_a_rule_it_cannot_read(tmp_path: Path, breakage: str, expected: str) -> None:
    git_dir, _ = synthetic_repository(tmp_path, "zebrad")
    repo = git_dir.parent
    path = repo / add_release.UPSTREAMS["zebrad"].end_of_support
    lines = path.read_text().splitlines()
    prefix = breakage.split("=")[0]
    path.write_text("\n".join(breakage if line.startswith(prefix) else line for line in lines) + "\n")
    git(repo, "commit", "-qam", "changed", day="2026-12-01")
    git(repo, "tag", "-a", "v6.5.0", "-m", "6.5.0", day="2026-12-01")
    with pytest.raises(SystemExit, match=expected):
        add_release.add_release("zebrad", "v6.5.0", git_dir, zbi_copy(tmp_path))


def test_new_finds_only_the_release_tags_after_the_tables_newest(tmp_path: Path) -> None:
    git_dir, _ = synthetic_repository(tmp_path, "zebrad")
    repo = git_dir.parent
    for tag, day in (("v6.4.0-rc.1", "2026-11-01"), ("v6.4.0", "2026-11-20"), ("zebra-chain-v13.0.0", "2026-11-20")):
        git(repo, "commit", "-q", "--allow-empty", "-m", tag, day=day)
        git(repo, "tag", "-a", tag, "-m", tag, day=day)
    assert add_release.newer_tags("zebrad", git_dir) == ["v6.4.0"]
    root = zbi_copy(tmp_path)
    shutil.copy(DATA, root / "zbi_infra" / "data" / "releases.json")
    assert add_release.main(["--kind", "zebrad", "--new", "--git-dir", str(git_dir), "--root", str(root)]) == 0
    table = json.loads((root / "zbi_infra" / "data" / "releases.json").read_text())
    assert table["kinds"]["zebrad"]["releases"]["6.4.0"]["released"] == "2026-11-20"
    # The newest zebrad release becomes the date anchor.
    assert table["anchor"]["date"] == "2026-11-20" and "v6.4.0" in table["anchor"]["source"]
    assert add_release.newer_tags("zebrad", git_dir, root) == []


def test_the_release_watch_workflow_runs_the_tool_for_every_kind_it_knows() -> None:
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release-watch.yml").read_text())
    assert workflow[True]["schedule"]  # PyYAML reads the `on:` key as True
    steps = "\n".join(step.get("run", "") for step in workflow["jobs"]["new-releases"]["steps"])
    for kind, upstream in add_release.UPSTREAMS.items():
        assert f"tools/add_release.py --kind {kind} --new" in steps
        assert f"https://github.com/{upstream.repository}.git" in steps
