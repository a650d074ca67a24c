"""The README's first two commands, as a new user runs them: Debian's own Python (externally managed, PEP 668), an
empty HOME, a copy of the repository with nothing beside it, and no uv on PATH."""

from __future__ import annotations

import hashlib
import http.server
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import uv_binary
from tests.debian import debian_tool

ROOT = Path(__file__).resolve().parents[1]
# What the host trusts and how it reaches PyPI: the machine's settings, not the user's HOME.
PASSED_THROUGH = ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY")


def readme_commands() -> list[str]:
    block = (ROOT / "README.md").read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def load_uvw() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("uvw", str(ROOT / "uvw"))
    spec = importlib.util.spec_from_loader("uvw", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def copy_of_the_repository(target: Path) -> Path:
    """The tracked and new (not ignored) files of the working tree: what a clone of this commit would hold."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_the_readme_starts_with_the_two_commands_and_ci_runs_exactly_them() -> None:
    first, second = readme_commands()
    assert first.startswith("python3 uvw run zbi plan ") and second == "python3 uvw run pytest"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert any(line.startswith(first) for line in ci) and second in ci
    assert "pip install" not in (ROOT / ".ci" / "run").read_text()
    assert os.access(ROOT / "uvw", os.X_OK)  # ./uvw works too


@pytest.mark.slow
def test_the_first_command_runs_with_debians_externally_managed_python_in_an_empty_home(tmp_path: Path) -> None:
    python = debian_tool("/usr/bin/python3", ["python3"])
    stdlib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"], capture_output=True, text=True
    ).stdout.strip()
    assert (Path(stdlib) / "EXTERNALLY-MANAGED").exists(), "not Debian's externally managed Python"
    home = tmp_path / "home"
    home.mkdir()
    repo = copy_of_the_repository(tmp_path / "repo")
    env = {"HOME": str(home), "PATH": str(Path(python).parent) + ":/bin", "LANG": "C.UTF-8"}
    env |= {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    # The packages come from the host's uv cache (no re-download); uv itself is fetched by uvw like a new user's.
    env["UV_CACHE_DIR"] = subprocess.run(
        [uv_binary() or "uv", "cache", "dir"], capture_output=True, text=True
    ).stdout.strip()
    assert shutil.which("uv", path=env["PATH"]) is None

    # What the README said before: pip refuses (or is absent) on this Python.
    refused = subprocess.run(
        [python, "-m", "pip", "install", "uv"], cwd=repo, env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0
    assert "externally-managed-environment" in refused.stderr or "No module named pip" in refused.stderr

    first, _ = readme_commands()
    result = subprocess.run(["sh", "-c", first], cwd=repo, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Plan for stack 'dev'" in result.stdout
    assert (home / ".cache" / "zbi-uvw").is_dir()  # uv fetched into the user's cache, not installed system-wide
    assert (repo / ".venv").is_dir()


def test_uvw_uses_uv_from_path_when_there_is_one() -> None:
    uv = uv_binary()
    assert uv, "the suite runs under uv"
    env = {"PATH": str(Path(uv).parent), "HOME": "/nonexistent"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "uvw"), "--version"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and result.stdout.startswith("uv ")


def test_uvw_refuses_a_wheel_whose_hash_is_not_the_pinned_one(tmp_path: Path, monkeypatch) -> None:
    uvw = load_uvw()
    key = ("Linux", "x86_64", "glibc")
    tampered = b"not the uv wheel"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(tampered)))
            self.end_headers()
            self.wfile.write(tampered)

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(uvw, "FILES", f"http://127.0.0.1:{server.server_port}/")
        with pytest.raises(SystemExit, match="refusing to run it"):
            uvw.download(key, tmp_path / "uv")
    finally:
        server.shutdown()
    assert not (tmp_path / "uv").exists()
    assert hashlib.sha256(tampered).hexdigest() != uvw.WHEELS[key][1]


def test_uvw_pins_one_uv_release_for_the_common_platforms() -> None:
    uvw = load_uvw()
    for key in [("Linux", "x86_64", "glibc"), ("Linux", "aarch64", "glibc"), ("Darwin", "arm64", "")]:
        path, sha256 = uvw.WHEELS[key]
        assert path.split("/")[-1].startswith(f"uv-{uvw.UV_VERSION}-") and len(sha256) == 64
    assert uvw.platform_key() in uvw.WHEELS  # this machine's


def test_uvw_passes_over_a_uv_on_path_older_than_the_pinned_one(tmp_path: Path) -> None:
    uvw = load_uvw()
    old = tmp_path / "bin" / "uv"
    old.parent.mkdir()
    old.write_text("#!/bin/sh\necho 'uv 0.1.0'\n")
    old.chmod(0o755)
    assert uvw.version_of(str(old)) == (0, 1, 0)
    cached = tmp_path / "cache" / "zbi-uvw" / uvw.UV_VERSION / "uv"
    cached.parent.mkdir(parents=True)
    cached.write_text("")  # as if downloaded earlier
    env = {"PATH": str(old.parent), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    import unittest.mock

    with unittest.mock.patch.dict(os.environ, env, clear=True):
        assert uvw.find_uv() == str(cached)
